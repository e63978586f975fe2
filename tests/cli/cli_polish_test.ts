// CLI polish (issue 14 item 9): global options after the verb, unknown options named, one error
// prefix, list's short profile and relative expiry, show's readable handle. Real sshd, the CLI's
// exact flags.
import assert from "node:assert/strict";
import { createOk, startTestVm } from "../harness/test_vm.ts";
import { runSandboxer, tempDir } from "../helpers.ts";

Deno.test("global options work after the verb", async () => {
  await using vm = await startTestVm();
  const knownHosts = `${vm.dir}/fresh_known_hosts`;
  await Deno.writeTextFile(knownHosts, "");
  const profile = await vm.profile("fresh", { target: { known_hosts: knownHosts } });

  const refused = await vm.cli(["run", "--profile", profile, "--", "true"]);
  assert.equal(refused.code, 125, "an unknown host key is refused without the flag");
  const result = await vm.cli(["run", "--accept-new-host-key", "--profile", profile, "--", "true"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(await Deno.readTextFile(knownHosts), /ssh-ed25519|ecdsa|ssh-rsa/);

  // A global option after `--` belongs to the remote command and stays there.
  const echoed = await vm.cli(["run", "--profile", profile, "--", "echo", "--debug"]);
  assert.equal(echoed.code, 0, echoed.stderr);
  assert.match(echoed.stdout, /^--debug$/m);
  assert.doesNotMatch(echoed.stderr, /debug:/);
});

Deno.test("an unknown option is named as unknown, with the one error prefix", async () => {
  await using dir = await tempDir();
  const env = { SANDBOXER_HOME: `${dir.path}/state`, HOME: dir.path };
  const typo = await runSandboxer(["create", "--profle", "x"], env);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /^sandboxer: error: unknown option '--profle'/m);
  assert.doesNotMatch(typo.stderr, /required option/);
  const missing = await runSandboxer(["create"], env);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^sandboxer: error: required option '-p, --profile/m);
  for (const text of [typo.stderr, missing.stderr]) {
    for (const line of text.split("\n").filter((l) => /error/.test(l))) {
      assert.match(line, /^sandboxer: error: /, "every error line has the same prefix");
    }
  }
});

Deno.test("list shows the short profile and a relative expiry; show prints a readable handle", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("webapp");
  await createOk(vm, ["-p", profile, "--name", "l1", "--ttl", "8h"]);
  await createOk(vm, ["-p", profile, "--name", "l2"]);

  const list = await vm.cli(["list"]);
  assert.equal(list.code, 0, list.stderr);
  const row = list.stdout.split("\n").find((l) => l.startsWith("l1 "));
  assert.ok(row, list.stdout);
  assert.match(row, /\swebapp\s/);
  assert.doesNotMatch(row, /profile\.webapp/);
  assert.match(row, /in 7h5\dm$/);
  assert.match(list.stdout.split("\n").find((l) => l.startsWith("l2 ")) ?? "", /never$/);

  const show = await vm.cli(["show", "l1"]);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /^expires: +\S+ \(in 7h5\dm\)$/m);
  assert.match(show.stdout, /^handle:\n {2}\w+: /m);
  assert.match(show.stdout, new RegExp(`^ {2}ssh_port: ${vm.sshd.port}$`, "m"));
  assert.doesNotMatch(show.stdout, /handle: +\{/);
  assert.equal((await vm.cli(["destroy", "l1"])).code, 0);
  assert.equal((await vm.cli(["destroy", "l2"])).code, 0);
});

Deno.test("gc --prune AGE forgets destroyed records older than AGE, and only those", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  for (const id of ["old", "recent", "live"]) await createOk(vm, ["-p", profile, "--name", id]);
  for (const id of ["old", "recent"]) assert.equal((await vm.cli(["destroy", id])).code, 0);
  // Age the "old" record's destroy by two days.
  const file = `${vm.env.SANDBOXER_HOME}/sandboxes/old.json`;
  const record = JSON.parse(await Deno.readTextFile(file));
  record.updated_at = new Date(Date.now() - 2 * 86400_000).toISOString();
  await Deno.writeTextFile(file, JSON.stringify(record));

  const bad = await vm.cli(["gc", "--prune", "soon"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^sandboxer: error: Cannot use --prune soon: write an age/m);

  const result = await vm.cli(["gc", "--prune", "1d"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^forgot destroyed record old$/m);
  assert.doesNotMatch(result.stdout, /recent|live/);
  assert.deepEqual((await vm.list()).map((r) => `${r.id}:${r.status}`).sort(), [
    "live:ready",
    "recent:destroyed",
  ]);
  const json = await vm.cli(["gc", "--prune", "0s", "--json"]);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout).pruned, ["recent"]);
  assert.deepEqual((await vm.list()).map((r) => r.id), ["live"]);
  assert.equal((await vm.cli(["destroy", "live"])).code, 0);
});

Deno.test("a connect that takes more than a second prints a line saying what it waits for", async () => {
  await using vm = await startTestVm();
  // Accepts TCP and never speaks SSH: the connect waits until its timeout.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  try {
    const profile = await vm.profile("slow", {
      target: { port: silent.addr.port, connect_timeout: "3s" },
    });
    const result = await vm.cli(["create", "-p", profile]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `^sandboxer: connecting to \\S*127\\.0\\.0\\.1:${silent.addr.port} \\(up to 3 s\\)…$`,
        "m",
      ),
    );
    const fast = await vm.cli(["create", "-p", await vm.profile("fast"), "--name", "q1"]);
    assert.equal(fast.code, 0, fast.stderr);
    assert.doesNotMatch(fast.stderr, /connecting to/, "a quick connect says nothing");
    assert.equal((await vm.cli(["destroy", "q1"])).code, 0);
  } finally {
    silent.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
  }
});
