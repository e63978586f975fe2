// The isolated host really is another machine as far as files, processes and the network go:
// its root filesystem is not this one, only SSH reaches it, a host behind a jump host cannot be
// reached from here at all, and a write to the canary on this machine fails the test.
import assert from "node:assert/strict";
import { isolatedTest, startIsolatedHost } from "./isolated_host.ts";

isolatedTest(
  "isolated host: its own files, processes and network; the canary is watched",
  async (t) => {
    await using host = await startIsolatedHost();

    await t.step("sshd answers as the login user, in a root filesystem of its own", async () => {
      const here = `${host.dir}/only-on-the-test-machine`;
      await Deno.writeTextFile(here, "x");
      const result = await host.ssh([
        "sh",
        "-c",
        'id -un; echo "$HOME"; test -e "$1" || echo absent',
        "sh",
        here,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `sbx\n/home/sbx\nabsent\n`);
      const made = await host.ssh(["sh", "-c", 'echo from-host > "$1"/file', "sh", host.root]);
      assert.equal(made.code, 0, made.stderr);
      assert.equal(await Deno.readTextFile(host.path(`${host.root}/file`)), "from-host\n");
      assert.deepEqual(await host.rootEntries(), ["file"]);
      assert.deepEqual(await host.canaryProblems(), [], "the host's write stayed on the host");
    });

    await t.step("its processes are its own: sshd is PID 1 there", async () => {
      const result = await host.ssh(["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]);
      assert.match(result.stdout, /^sshd: \/usr\/sbin\/sshd -D .*\[listener\]/);
      const processes = await host.processes();
      assert.ok(processes.some((p) => p.args.includes("[listener]")), JSON.stringify(processes));
    });

    await t.step("a write at the root's path on this machine is caught", async () => {
      await Deno.mkdir(`${host.root}/sbx-local-bug`);
      assert.match((await host.canaryProblems()).join(), /holds .*sbx-local-bug/);
      await Deno.remove(`${host.root}/sbx-local-bug`);
      assert.deepEqual(await host.canaryProblems(), []);
    });
  },
);

isolatedTest("isolated host: a host behind a jump host is reachable only through it", async () => {
  await using jump = await startIsolatedHost();
  await using inner = await startIsolatedHost({ behind: jump });
  const direct = await Deno.connect({ hostname: inner.host, port: 22 }).then(
    (conn) => {
      conn.close();
      return "connected";
    },
    (error) => String(error),
  );
  assert.notEqual(direct, "connected", "the inner host must not be reachable from here");
  const result = await inner.ssh(["echo", "inside"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "inside\n");
  // The connection came from the jump host's side of the link, not from this machine's.
  assert.match(await inner.log(), /Accepted publickey for sbx from 10\.214\.\d+\.\d+/);
});
