// The host key pinned at create, through the real CLI against a real sshd: when the host comes
// back with another key, exec, sync and destroy refuse it BEFORE authenticating (read from the
// server's log), the message says it was the pin that failed (and whether known_hosts refuses
// the key too), and the fix the message names, run literally, works.
import assert from "node:assert/strict";
import { createOk, startTestVm, type TestVm } from "../harness/test_vm.ts";
import { assertNoAuthentication, logAfter, replaceHostKey } from "../transport/host_key_helpers.ts";

/** The quoted commands a message names, in order. */
function quotedCommands(message: string, program: string): string[] {
  return [...message.matchAll(/"([^"]+)"/g)].map((m) => m[1]).filter((c) =>
    c.startsWith(`${program} `)
  );
}

async function shell(command: string): Promise<void> {
  // The message's commands are shell command lines for the user to paste: run them as such.
  const out = await new Deno.Command("sh", { args: ["-c", command], stderr: "piped" }).output();
  assert.equal(out.code, 0, `${command}: ${new TextDecoder().decode(out.stderr)}`);
}

async function knownHostsFor(vm: TestVm, name: string): Promise<string> {
  const file = `${vm.dir}/${name}_known_hosts`;
  await Deno.copyFile(vm.sshd.knownHostsFile, file);
  return file;
}

Deno.test("vm-packer: a re-keyed host is refused before authentication; --accept-host-key re-pins", async () => {
  await using vm = await startTestVm();
  const knownHosts = await knownHostsFor(vm, "pool");
  const profile = await vm.profile("pin", { target: { known_hosts: knownHosts } });
  const oldKey = vm.sshd.hostKeyFingerprint;
  for (const id of ["pin1", "pin2"]) {
    const record = await createOk(vm, ["--profile", profile, "--name", id]);
    assert.equal(record.handle?.host_key_fingerprint, oldKey);
  }
  const repo = `${vm.dir}/repo`;
  await Deno.mkdir(repo);
  await Deno.writeTextFile(`${repo}/a.txt`, "a");

  // The host is rebuilt with a new key, and known_hosts trusts both (ssh-keyscan appended it):
  // only the pin from create can tell the two machines apart.
  const newKey = await replaceHostKey(vm.sshd);
  await Deno.writeTextFile(
    knownHosts,
    `[${vm.sshd.host}]:${vm.sshd.port} ${newKey.line}\n`,
    { append: true },
  );
  const offset = (await vm.sshd.log()).length;
  const refused = [
    await vm.cli(["exec", "pin1", "--", "touch", "should-not-run"]),
    await vm.cli(["sync", "pin1", "--repo", repo]),
    await vm.cli(["destroy", "pin2"]),
  ];
  for (const result of refused) {
    assert.notEqual(result.code, 0, result.stderr);
    assert.match(result.stderr, /is not the one pinned when the sandbox was created/);
    assert.ok(result.stderr.includes(`pinned ${oldKey}, offered ${newKey.fingerprint}`));
    assert.ok(!result.stderr.includes("refuses"), "known_hosts accepts the new key");
    assert.equal(result.stderr.trim().split("\n").length, 1, `one line: ${result.stderr}`);
  }
  assertNoAuthentication(await logAfter(vm.sshd, offset, 3), "exec/sync/destroy");
  assert.deepEqual(await vm.rootEntries(), ["sbx-pin1", "sbx-pin2"]);
  assert.equal((await vm.show("pin1")).handle?.host_key_fingerprint, oldKey);

  // The fix, as the message puts it: the same command with the flag right after "sandboxer".
  const exec = await vm.cli([
    "--accept-host-key",
    newKey.fingerprint,
    "exec",
    "pin1",
    "--",
    "true",
  ]);
  assert.equal(exec.code, 0, exec.stderr);
  assert.equal((await vm.show("pin1")).handle?.host_key_fingerprint, newKey.fingerprint);
  const again = await vm.cli(["exec", "pin1", "--", "true"]);
  assert.equal(again.code, 0, `the new key is pinned now: ${again.stderr}`);

  // And the example it gives, literally.
  const [example] = quotedCommands(refused[2].stderr, "sandboxer");
  assert.equal(example, `sandboxer --accept-host-key ${newKey.fingerprint} destroy pin2`);
  const destroyed = await vm.cli(example.split(" ").slice(1));
  assert.equal(destroyed.code, 0, destroyed.stderr);
  assert.deepEqual(await vm.rootEntries(), ["sbx-pin1"]);

  // A flag that is not a fingerprint is a usage error: exit 125 from exec (sandboxer's own
  // failure, not the command's), 2 from any other verb.
  const bad = await vm.cli(["--accept-host-key", "yes", "exec", "pin1", "--", "true"]);
  assert.equal(bad.code, 125, bad.stderr);
  assert.match(bad.stderr, /--accept-host-key/);
  const badList = await vm.cli(["--accept-host-key", "yes", "show", "pin1"]);
  assert.equal(badList.code, 2, badList.stderr);
  assert.match(bad.stderr, /--accept-host-key/);
});

Deno.test("vm-packer: when known_hosts refuses the new key too, the message's steps, run literally, fix it", async () => {
  await using vm = await startTestVm();
  const knownHosts = await knownHostsFor(vm, "strict");
  const profile = await vm.profile("strict", { target: { known_hosts: knownHosts } });
  await createOk(vm, ["--profile", profile, "--name", "pin3"]);
  const newKey = await replaceHostKey(vm.sshd);

  const offset = (await vm.sshd.log()).length;
  const refused = await vm.cli(["exec", "pin3", "--", "true"]);
  assert.notEqual(refused.code, 0, refused.stderr);
  assert.match(refused.stderr, /not the one pinned/);
  assert.ok(refused.stderr.includes(`replace the old key in ${knownHosts}`), refused.stderr);
  assertNoAuthentication(await logAfter(vm.sshd, offset), "exec");

  const [remove] = quotedCommands(refused.stderr, "ssh-keygen");
  const [add] = quotedCommands(refused.stderr, "ssh-keyscan");
  const [repin] = quotedCommands(refused.stderr, "sandboxer");
  assert.ok(remove && add && repin, refused.stderr);
  await shell(remove);
  await shell(add);
  assert.ok((await Deno.readTextFile(knownHosts)).includes(newKey.line));
  const destroyed = await vm.cli(repin.split(" ").slice(1));
  assert.equal(destroyed.code, 0, destroyed.stderr);
  assert.deepEqual(await vm.rootEntries(), []);
});
