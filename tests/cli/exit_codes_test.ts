// Exit codes: 70 only for bugs. Input mistakes are user errors with one clear line, and `exec`
// and `run` pass the remote command's code through while every failure of sandboxer itself exits
// 125. Real sshd where a connection is involved; the CLI's exact flags.
import assert from "node:assert/strict";
import { runSandboxer, tempDir } from "../helpers.ts";
import { createOk, startTestVm } from "../harness/test_vm.ts";
import { freePort } from "../harness/sshd.ts";

/** The one line a failing command printed, after checking it is one line. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, stderr);
  assert.doesNotMatch(stderr, /internal error|at .*\.ts:\d+/);
  return lines[0];
}

Deno.test("exec: the remote code passes through; sandboxer's own failures exit 125", async (t) => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "e1"]);

  await t.step("the command's own code, and 128+N for a signal", async () => {
    assert.equal((await vm.cli(["exec", "e1", "--", "sh", "-c", "exit 7"])).code, 7);
    assert.equal((await vm.cli(["exec", "e1", "--", "sh", "-c", "kill -TERM $$"])).code, 143);
  });
  await t.step("a program name starting with - is a usage error, not a bug", async () => {
    const result = await vm.cli(["exec", "e1", "--", "-rf"]);
    assert.equal(result.code, 125);
    assert.match(
      oneLine(result.stderr),
      /Cannot run "-rf": a program name may not start with "-"; write \.\/-rf/,
    );
  });
  await t.step("usage, unknown sandbox, sandbox not ready", async () => {
    assert.equal((await vm.cli(["exec", "e1"])).code, 125, "no command");
    const missing = await vm.cli(["exec", "nope", "--", "true"]);
    assert.equal(missing.code, 125);
    assert.match(oneLine(missing.stderr), /Cannot find sandbox "nope"/);
    const failing = await vm.profile("failing", "setup:\n  - exit 3");
    const failed = await vm.cli(["create", "-p", failing, "--name", "f1"]);
    assert.equal(failed.code, 1);
    const notReady = await vm.cli(["exec", "f1", "--", "true"]);
    assert.equal(notReady.code, 125);
    assert.match(oneLine(notReady.stderr), /Sandbox "f1" is failed/);
    assert.equal((await vm.cli(["destroy", "f1"])).code, 0);
  });
  await t.step("cannot connect", async () => {
    const record = `${vm.env.SANDBOXER_HOME}/sandboxes/e1.json`;
    const saved = await Deno.readTextFile(record);
    const json = JSON.parse(saved);
    json.handle.ssh_port = await freePort();
    await Deno.writeTextFile(record, JSON.stringify(json));
    try {
      const result = await vm.cli(["exec", "e1", "--", "true"]);
      assert.equal(result.code, 125);
      assert.match(oneLine(result.stderr), /Cannot connect/);
    } finally {
      await Deno.writeTextFile(record, saved);
    }
  });
  assert.equal((await vm.cli(["destroy", "e1"])).code, 0);
});

Deno.test("run: the command's code passes through; create, setup and artifact failures exit 125", async (t) => {
  await using vm = await startTestVm();
  await using out = await tempDir();
  const profile = await vm.profile("p");
  await t.step("the command's own code", async () => {
    assert.equal((await vm.cli(["run", "-p", profile, "--", "sh", "-c", "exit 9"])).code, 9);
  });
  await t.step("a setup that fails", async () => {
    const failing = await vm.profile("failing", "setup:\n  - exit 3");
    const result = await vm.cli(["run", "-p", failing, "--", "true"]);
    assert.equal(result.code, 125);
    assert.match(result.stderr.trim().split("\n").at(-1) ?? "", /Setup command "exit 3" failed/);
  });
  await t.step("an artifact missing after the command succeeded", async () => {
    const result = await vm.cli([
      "run",
      "-p",
      profile,
      "--artifact",
      `no-such-file:${out.path}`,
      "--",
      "true",
    ]);
    assert.equal(result.code, 125, result.stderr);
    assert.match(
      result.stderr,
      /^sandboxer: error: Workspace \S+ has no no-such-file to copy back/m,
    );
    assert.doesNotMatch(result.stderr, /link_stat|rsync/, "one clear line, not rsync's output");
  });
  await t.step("a host that does not answer", async () => {
    const dead = await vm.profile("dead", { target: { port: await freePort() } });
    const result = await vm.cli(["run", "-p", dead, "--", "true"]);
    assert.equal(result.code, 125);
    assert.match(result.stderr, /Cannot connect/);
  });
  await t.step("usage", async () => {
    assert.equal((await vm.cli(["run", "-p", profile])).code, 125, "no command");
    const result = await vm.cli(["run", "-p", profile, "--", "-rf"]);
    assert.equal(result.code, 125);
  });
  assert.deepEqual(await vm.rootEntries(), []);
});

Deno.test("input mistakes are user errors with one line, never exit 70", async (t) => {
  await using tmp = await tempDir();
  const port = await freePort(); // nothing listens: nothing can be made on main either
  const profile = async (name: string, lines: string[]) => {
    const file = `${tmp.path}/${name}.yaml`;
    await Deno.writeTextFile(file, [`id: profile.${name}`, ...lines].join("\n") + "\n");
    return file;
  };
  const vmProfile = (name: string, root = "/srv/builds") =>
    profile(name, [
      "extension: ext.vm-packer",
      "target:",
      "  host: 127.0.0.1",
      `  port: ${port}`,
      "  user: nobody",
      `  known_hosts: ${tmp.path}/known_hosts`,
      "workspace:",
      `  root: ${JSON.stringify(root)}`,
    ]);
  const env = { SANDBOXER_HOME: `${tmp.path}/state`, HOME: tmp.path };

  await t.step(
    "workspace.root in a system directory: refused at parse, with file:line",
    async () => {
      for (const root of ["/etc/sbx", "/usr/lib/b", "/tmp"]) {
        const file = await vmProfile("systemroot", root);
        const result = await runSandboxer(["create", "-p", file], env);
        assert.equal(result.code, 1, result.stderr);
        assert.match(
          oneLine(result.stderr),
          /systemroot\.yaml:9:\d+: workspace\.root: must not be (inside )?the system directory/,
        );
      }
    },
  );
  await t.step("--set workspace.root=~ is an error, not a silent default", async () => {
    const file = await vmProfile("tilde");
    for (const value of ["~", "null"]) {
      const result = await runSandboxer(
        ["create", "-p", file, "--set", `workspace.root=${value}`],
        env,
      );
      assert.equal(result.code, 2, result.stderr);
      assert.match(oneLine(result.stderr), /--set workspace\.root=.*as no value/);
    }
  });
  await t.step("--ttl beyond 365 days names the largest ttl accepted", async () => {
    const file = await vmProfile("ttl");
    for (const ttl of ["99999999999d", "366d"]) {
      const result = await runSandboxer(["create", "-p", file, "--ttl", ttl], env);
      assert.equal(result.code, 2, result.stderr);
      assert.match(oneLine(result.stderr), /--ttl .*from 1s to 365d \(365 days\)/);
    }
    const inProfile = await profile("longttl", ["extension: ext.vm-packer", "ttl: 400d"]);
    const result = await runSandboxer(["create", "-p", inProfile], env);
    assert.equal(result.code, 1);
    assert.match(oneLine(result.stderr), /longttl\.yaml:3:\d+: ttl: must be at most 365d/);
  });
  await t.step("a profile naming an unregistered extension: its file and line", async () => {
    const file = await profile("ghost", ["extension: ext.vm-packr", "target: {host: x}"]);
    const result = await runSandboxer(["create", "-p", file], env);
    assert.equal(result.code, 1);
    assert.match(
      oneLine(result.stderr),
      /ghost\.yaml:2:\d+: extension: "ext\.vm-packr" is not registered \(did you mean "ext\.vm-packer"\?\)/,
    );
  });
  await t.step("SANDBOXER_HOME that is a file", async () => {
    await Deno.writeTextFile(`${tmp.path}/home-file`, "");
    const fileEnv = { ...env, SANDBOXER_HOME: `${tmp.path}/home-file` };
    for (const args of [["list"], ["show", "x"], ["create", "-p", await vmProfile("h")]]) {
      const result = await runSandboxer(args, fileEnv);
      assert.equal(result.code, 1, `${args[0]}: ${result.stderr}`);
      assert.match(
        oneLine(result.stderr),
        /State directory \S+\/home-file is not a directory .*point SANDBOXER_HOME at a directory/,
      );
    }
  });
});

Deno.test("a known_hosts that is a directory is a user error naming it", async () => {
  await using vm = await startTestVm();
  const dir = `${vm.dir}/known_hosts.d`;
  await Deno.mkdir(dir);
  const profile = await vm.profile("p", { target: { known_hosts: dir } });
  const result = await vm.cli(["create", "-p", profile]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(
    oneLine(result.stderr),
    new RegExp(`Cannot use ${dir}: it is a directory, not a file`),
  );
  assert.deepEqual(await vm.rootEntries(), []);
});
