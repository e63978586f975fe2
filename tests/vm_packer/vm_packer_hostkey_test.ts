// ext.vm-packer host-key checking through the real CLI against a real sshd: unknown and changed
// keys are refused before anything is made, hashed known_hosts entries match, and
// --accept-new-host-key records the key so later runs need no flag.
import assert from "node:assert/strict";
import { hashedKnownHostsFile, wrongKnownHostsFile } from "../harness/sshd.ts";
import { createOk, startTestVm } from "../harness/test_vm.ts";

Deno.test("vm-packer: an unknown host key is refused with its fingerprint; nothing is made", async () => {
  await using vm = await startTestVm();
  const knownHosts = `${vm.dir}/empty_known_hosts`;
  await Deno.writeTextFile(knownHosts, "");
  const profile = await vm.profile("unknown", { target: { known_hosts: knownHosts } });

  const result = await vm.cli(["create", "--profile", profile, "--name", "hk1"]);
  assert.equal(result.code, 1, result.stderr);
  assert.ok(
    result.stderr.includes(vm.sshd.hostKeyFingerprint),
    `fingerprint ${vm.sshd.hostKeyFingerprint} missing from: ${result.stderr}`,
  );
  assert.match(result.stderr, /--accept-new-host-key/);
  assert.match(result.stderr, /is not in/);

  // Nothing was made on the host: no record is left and the name is free.
  assert.deepEqual(await vm.list(), []);
  assert.deepEqual(await vm.rootEntries(), [], "no workspace may be made on the host");
  assert.equal(await Deno.readTextFile(knownHosts), "", "known_hosts must stay untouched");
});

Deno.test("vm-packer: a host key that does not match known_hosts is refused", async () => {
  await using vm = await startTestVm();
  const wrong = await wrongKnownHostsFile(vm.dir, vm.sshd.host, vm.sshd.port);
  const before = await Deno.readTextFile(wrong);
  const profile = await vm.profile("wrong", { target: { known_hosts: wrong } });

  const result = await vm.cli(["create", "--profile", profile, "--name", "hk2"]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /does not match/);
  assert.ok(result.stderr.includes(vm.sshd.hostKeyFingerprint), result.stderr);
  assert.deepEqual(await vm.rootEntries(), []);
  // Even the flag never replaces a key that changed: that is an attack or a rebuild.
  const flagged = await vm.cli([
    "--accept-new-host-key",
    "create",
    "--profile",
    profile,
    "--name",
    "hk3",
  ]);
  assert.equal(flagged.code, 1, flagged.stderr);
  assert.match(flagged.stderr, /does not match/);
  assert.equal(await Deno.readTextFile(wrong), before);
  assert.deepEqual(await vm.rootEntries(), []);
});

Deno.test("vm-packer: a hashed known_hosts entry is accepted", async () => {
  await using vm = await startTestVm();
  const hashed = await hashedKnownHostsFile(vm.sshd);
  assert.match(await Deno.readTextFile(hashed), /^\|1\|/);
  const profile = await vm.profile("hashed", { target: { known_hosts: hashed } });
  const record = await createOk(vm, ["--profile", profile, "--name", "hk4"]);
  assert.equal(record.handle?.host_key_fingerprint, vm.sshd.hostKeyFingerprint);
  assert.deepEqual(await vm.rootEntries(), ["sbx-hk4"]);
});

Deno.test("vm-packer: --accept-new-host-key records the key; later runs need no flag", async () => {
  await using vm = await startTestVm();
  const knownHosts = `${vm.dir}/tofu_known_hosts`;
  await Deno.writeTextFile(knownHosts, "");
  const profile = await vm.profile("tofu", { target: { known_hosts: knownHosts } });

  const first = await vm.cli([
    "--accept-new-host-key",
    "create",
    "--profile",
    profile,
    "--name",
    "hk5",
  ]);
  assert.equal(first.code, 0, first.stderr);
  assert.ok(first.stderr.includes(vm.sshd.hostKeyFingerprint), "the trusted key is announced");
  const lines = (await Deno.readTextFile(knownHosts)).trim().split("\n");
  assert.equal(lines.length, 1);
  assert.equal(lines[0], `[127.0.0.1]:${vm.sshd.port} ${vm.sshd.hostPublicKeyLine}`);

  const second = await createOk(vm, ["--profile", profile, "--name", "hk6"]);
  assert.equal(second.handle?.host_key_fingerprint, vm.sshd.hostKeyFingerprint);
  assert.equal((await Deno.readTextFile(knownHosts)).trim().split("\n").length, 1);
  assert.deepEqual(await vm.rootEntries(), ["sbx-hk5", "sbx-hk6"]);
});
