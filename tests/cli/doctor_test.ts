// `sandboxer doctor --profile P` (issue 14 item 4): one ✓/✗ line per check against the real sshd.
import assert from "node:assert/strict";
import { startTestVm } from "../harness/test_vm.ts";
import { freePort } from "../harness/sshd.ts";

Deno.test("doctor passes every check on a good profile, setup included, and leaves the root as it was", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("good", "setup:\n  - echo ready > setup.txt");
  const result = await vm.cli(["doctor", "--profile", profile]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const lines = result.stdout.trim().split("\n");
  assert.ok(lines.every((line) => line.startsWith("✓ ")), result.stdout);
  assert.match(result.stdout, /✓ profile good validates/);
  assert.match(
    result.stdout,
    new RegExp(`✓ 127\\.0\\.0\\.1:${vm.sshd.port} is reachable \\(TCP\\)`),
  );
  assert.ok(result.stdout.includes(`is known (${vm.sshd.hostKeyFingerprint})`), result.stdout);
  assert.match(result.stdout, /✓ login as \S+ on .* works/);
  assert.ok(result.stdout.includes(`✓ workspace root ${vm.root} exists and is writable`));
  assert.match(result.stdout, /✓ rsync is installed here and on /);
  assert.match(result.stdout, /✓ setup \(1 command\) runs in a scratch sandbox doctor-/);
  assert.deepEqual(await vm.rootEntries(), [], "the scratch directory and workspace are gone");
  assert.deepEqual(await vm.list(), [], "and so is the scratch sandbox's record");
});

Deno.test("doctor names an unknown host key with its fingerprint and the fix, and exits 1", async () => {
  await using vm = await startTestVm();
  const empty = `${vm.dir}/empty_known_hosts`;
  await Deno.writeTextFile(empty, "");
  const profile = await vm.profile("unknown", { target: { known_hosts: empty } });
  const result = await vm.cli(["doctor", "--profile", profile]);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /✓ .* is reachable \(TCP\)/);
  assert.match(result.stdout, /✗ host key of .* is not accepted/);
  assert.ok(result.stdout.includes(vm.sshd.hostKeyFingerprint), result.stdout);
  assert.match(result.stdout, /fix: .*--accept-new-host-key/);
  assert.doesNotMatch(result.stdout, /login as/, "later checks are skipped");
});

Deno.test("doctor reports a wrong port as unreachable, and exits 1", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("closed", { target: { port: await freePort() } });
  const result = await vm.cli(["doctor", "--profile", profile]);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /✗ 127\.0\.0\.1:\d+ is not reachable \(TCP\): /);
  assert.match(result.stdout, /fix: check target\.host and target\.port/);
});

Deno.test("doctor reports a missing and a non-writable workspace root, and exits 1", async () => {
  await using vm = await startTestVm();
  // Owned by root (the test runs as root), 0755: the login user cannot write in it.
  const locked = `${vm.dir}/locked`;
  await Deno.mkdir(locked, { mode: 0o755 });
  await Deno.chmod(locked, 0o755);
  const profile = await vm.profile("locked", { root: locked, extra: ["setup:", "  - echo hi"] });
  const result = await vm.cli(["doctor", "--profile", profile]);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.ok(result.stdout.includes(`✗ workspace root ${locked} is not writable`), result.stdout);
  assert.match(result.stdout, /fix: give the login user write access/);
  assert.doesNotMatch(result.stdout, /setup/, "setup is not tried without a usable root");
  assert.deepEqual(await Array.fromAsync(Deno.readDir(locked)), []);

  const gone = await vm.profile("gone", { root: `${vm.dir}/nowhere` });
  const missing = await vm.cli(["doctor", "--profile", gone]);
  assert.equal(missing.code, 1);
  assert.ok(missing.stdout.includes(`✗ workspace root ${vm.dir}/nowhere does not exist`));
});

Deno.test("doctor names an invalid profile field and exits 1", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("bad", { target: { port: 99999 } });
  const result = await vm.cli(["doctor", "--profile", profile]);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /✗ profile .* is invalid: .*port/);
});

Deno.test("doctor reports a failing setup, and removes the scratch sandbox all the same", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("failing", "setup:\n  - exit 3");
  const result = await vm.cli(["doctor", "--profile", profile]);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /✓ workspace root .* exists and is writable/);
  assert.match(result.stdout, /✗ setup failed in a scratch sandbox doctor-\S+: .*exit code 3/);
  assert.match(result.stdout, /fix: fix the failing setup command/);
  assert.deepEqual(await vm.rootEntries(), []);
  assert.deepEqual(await vm.list(), []);
});

Deno.test("doctor says what it cannot check for a server made per sandbox, and exits 1", async () => {
  await using vm = await startTestVm();
  const result = await vm.cli(["doctor", "--profile", "compose-sshd"]);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /^✓ profile compose-sshd validates/);
  assert.match(result.stdout, /\n- ext\.compose-ssh has no fixed SSH server to check/);
});
