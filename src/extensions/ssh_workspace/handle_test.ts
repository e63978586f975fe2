import assert from "node:assert/strict";
import { handleTarget, type SshWorkspaceHandle, targetFromHandle } from "./handle.ts";

const COMMON = {
  ssh_port: 2222,
  workspace: "/build/sbx-a",
  host_key_fingerprint: null,
  identity_file: "/k",
  known_hosts: "/kh",
  passphrase_env: null,
  jump: null,
  connect_timeout_ms: 1000,
  keepalive_interval_ms: 1000,
};

Deno.test("a handle's target reads from ssh_target, or vm_target (vm-packer, older compose records)", () => {
  const current: SshWorkspaceHandle = { ...COMMON, ssh_target: "sbx@127.0.0.1" };
  const old: SshWorkspaceHandle = { ...COMMON, vm_target: "sbx@127.0.0.1" };
  assert.equal(handleTarget(current), "sbx@127.0.0.1");
  assert.equal(handleTarget(old), "sbx@127.0.0.1");
  const [a, b] = [targetFromHandle(current), targetFromHandle(old)];
  assert.deepEqual([a.user, a.host, a.port], ["sbx", "127.0.0.1", 2222]);
  assert.deepEqual([b.user, b.host, b.port], ["sbx", "127.0.0.1", 2222]);
  assert.throws(() => handleTarget({ ...COMMON }), TypeError);
});
