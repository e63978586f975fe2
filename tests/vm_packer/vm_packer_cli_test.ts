// ext.vm-packer through the real CLI against a real sshd: exec (exit codes, signals, literal
// argv, working directory, separate streams), destroy (the workspace only, idempotent, from the
// handle alone, on an isolated host), profile validation, failing setup, --set overrides and ssh
// config aliases.
import assert from "node:assert/strict";
import { isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { createOk, startTestVm } from "../harness/test_vm.ts";
import { exists } from "../helpers.ts";

Deno.test("vm-packer exec: exit codes, signals, literal argv, cwd and separate streams", async (t) => {
  await using vm = await startTestVm();
  const profile = await vm.profile("exec");
  const { id, workspace } = await createOk(vm, ["--profile", profile]);
  assert.equal(workspace, `${vm.root}/sbx-${id}`);

  await t.step("a remote exit code passes through", async () => {
    const result = await vm.cli(["exec", id, "--", "sh", "-c", "exit 7"]);
    assert.equal(result.code, 7, result.stderr);
  });

  await t.step("a remote signal becomes 128+N", async () => {
    const result = await vm.cli(["exec", id, "--", "sh", "-c", "kill -TERM $$"]);
    assert.equal(result.code, 143, result.stderr);
  });

  await t.step("hostile arguments arrive byte-identical", async () => {
    const args = [
      "$HOME",
      "a b",
      "'q'",
      "`x`",
      ";",
      "*",
      "line1\nline2",
      "-n",
      "",
      '"dq" \\ $(id) && echo pwned',
      "~",
      'it\'s "quoted"',
      "tab\there",
      "--",
      "é漢😀",
      "\x1b[31mred",
      "'\"'\"'",
      "${IFS}|&<>?[]{}()!#",
    ];
    const result = await vm.cli(["exec", id, "--", "printf", "%s\\0", ...args]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.stdout.split("\0").slice(0, -1), args);
  });

  await t.step("commands run in the workspace", async () => {
    const result = await vm.cli(["exec", id, "--", "pwd"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${workspace}\n`);
  });

  await t.step("stdout and stderr stay separate", async () => {
    const result = await vm.cli(["exec", id, "--", "sh", "-c", "echo to-out; echo to-err >&2"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "to-out\n");
    assert.match(result.stderr, /^to-err$/m);
    assert.doesNotMatch(result.stderr, /to-out/);
  });
});

isolatedTest(
  "vm-packer destroy removes the workspace only, twice, and from the handle alone",
  async () => {
    // A host of its own: what is removed is asserted there, and nothing may happen here.
    await using host = await startIsolatedHost();
    const profile = await host.profile("destroy");
    const { id, workspace } = await createOk(host, ["--profile", profile]);
    assert.ok(workspace);

    // Writable by the login user, so a teardown that followed the link could delete them.
    const outside = `${host.homeDir}/outside`;
    await Deno.mkdir(host.path(outside));
    await Deno.writeTextFile(host.path(`${outside}/precious.txt`), "keep me\n");
    const sibling = `${host.root}/sibling`;
    await Deno.mkdir(host.path(sibling));
    await Deno.writeTextFile(host.path(`${sibling}/also-precious.txt`), "keep me too\n");
    await host.chown(outside);
    await host.chown(sibling);
    const link = await host.cli(["exec", id, "--", "ln", "-s", outside, "escape"]);
    assert.equal(link.code, 0, link.stderr);
    assert.equal(await Deno.readLink(host.path(`${workspace}/escape`)), outside);

    // Only the stored handle is left to go by.
    await Deno.remove(profile);
    const first = await host.cli(["destroy", id]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(await exists(host.path(workspace)), false, "the workspace is gone");
    assert.equal(await Deno.readTextFile(host.path(`${outside}/precious.txt`)), "keep me\n");
    assert.equal(
      await Deno.readTextFile(host.path(`${sibling}/also-precious.txt`)),
      "keep me too\n",
    );
    assert.deepEqual(await host.rootEntries(), ["sibling"]);
    assert.equal((await host.show(id)).status, "destroyed");

    const second = await host.cli(["destroy", id]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal((await host.show(id)).status, "destroyed");
  },
);

Deno.test("vm-packer profiles: bad workspace roots, ports and keys name file, line and field", async (t) => {
  await using vm = await startTestVm();

  for (const [name, root] of [["slash", "/"], ["etc", "/etc"], ["relative", "build"]]) {
    await t.step(`workspace.root ${JSON.stringify(root)} is refused`, async () => {
      const file = await vm.profile(`root-${name}`, { root });
      const line = lineOf(await Deno.readTextFile(file), /^ {2}root:/);
      const result = await vm.cli(["create", "--profile", file]);
      assert.equal(result.code, 1, result.stderr);
      assert.ok(result.stderr.includes(`${file}:${line}:`), result.stderr);
      assert.match(result.stderr, /workspace\.root/);
    });
  }

  await t.step("an out-of-range port names its line", async () => {
    const file = await vm.profile("port", { target: { port: 70000 } });
    const line = lineOf(await Deno.readTextFile(file), /^ {2}port:/);
    const result = await vm.cli(["create", "--profile", file]);
    assert.equal(result.code, 1, result.stderr);
    assert.ok(result.stderr.includes(`${file}:${line}:`), result.stderr);
    assert.match(result.stderr, /target\.port/);
  });

  await t.step("an unknown key gets a did-you-mean", async () => {
    const file = await vm.profile("typo", {
      target: { identity_file: null, identty_file: vm.sshd.identityFile },
    });
    const line = lineOf(await Deno.readTextFile(file), /^ {2}identty_file:/);
    const result = await vm.cli(["create", "--profile", file]);
    assert.equal(result.code, 1, result.stderr);
    assert.ok(result.stderr.includes(`${file}:${line}:`), result.stderr);
    assert.match(result.stderr, /did you mean .*identity_file/i);
  });

  await t.step("nothing was recorded or made", async () => {
    assert.deepEqual(await vm.list(), []);
    assert.deepEqual(await vm.rootEntries(), []);
  });
});

Deno.test("vm-packer: a failing setup command fails the create, keeps the handle, destroy cleans", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("setup", { extra: ["setup:", "  - ghc --version"] });
  const result = await vm.cli(["create", "--profile", profile, "--name", "s1"]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /ghc --version/);

  const record = await vm.show("s1");
  assert.equal(record.status, "failed");
  assert.equal(record.step, "setup");
  assert.match(record.error ?? "", /ghc --version/);
  assert.equal(record.handle?.workspace, `${vm.root}/sbx-s1`);
  assert.equal(await exists(`${vm.root}/sbx-s1`), true);

  const destroyed = await vm.cli(["destroy", "s1"]);
  assert.equal(destroyed.code, 0, destroyed.stderr);
  assert.equal(await exists(`${vm.root}/sbx-s1`), false);
  assert.equal((await vm.show("s1")).status, "destroyed");
});

Deno.test("vm-packer: --set target.port overrides the profile; a bad value names the flag", async () => {
  await using vm = await startTestVm();
  // Port 1 has no sshd: only the override can make this work.
  const profile = await vm.profile("override", { target: { port: 1 } });
  const record = await createOk(vm, [
    "--profile",
    profile,
    "--set",
    `target.port=${vm.sshd.port}`,
  ]);
  assert.equal(record.handle?.ssh_port, vm.sshd.port);

  const bad = await vm.cli(["create", "--profile", profile, "--set", "target.port=abc"]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--set target\.port=abc/);
  assert.equal((await vm.list()).length, 1, "the bad override records nothing");
});

Deno.test("vm-packer: target.host may be an alias from target.ssh_config", async () => {
  await using vm = await startTestVm();
  const sshConfig = `${vm.dir}/ssh_config`;
  await Deno.writeTextFile(
    sshConfig,
    [
      "Host other",
      "  HostName 192.0.2.1",
      "",
      "Host buildvm",
      `  HostName ${vm.sshd.host}`,
      `  Port ${vm.sshd.port}`,
      `  User ${vm.sshd.user}`,
      `  IdentityFile ${vm.sshd.identityFile}`,
      "",
    ].join("\n"),
  );
  const profile = await vm.profile("alias", {
    target: {
      host: "buildvm",
      port: null,
      user: null,
      identity_file: null,
      ssh_config: sshConfig,
    },
  });
  const text = await Deno.readTextFile(profile);
  assert.doesNotMatch(text, /port:|user:|identity_file:/);

  const record = await createOk(vm, ["--profile", profile]);
  assert.equal(record.handle?.vm_target, `${vm.sshd.user}@${vm.sshd.host}`);
  assert.equal(record.handle?.ssh_port, vm.sshd.port);
  assert.equal(record.handle?.identity_file, vm.sshd.identityFile);
  const whoami = await vm.cli(["exec", record.id, "--", "id", "-un"]);
  assert.equal(whoami.stdout, `${vm.sshd.user}\n`);
});

function lineOf(text: string, pattern: RegExp): number {
  const index = text.split("\n").findIndex((line) => pattern.test(line));
  assert.ok(index >= 0, `no line matches ${pattern}`);
  return index + 1;
}
