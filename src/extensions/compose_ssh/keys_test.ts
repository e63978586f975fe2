import assert from "node:assert/strict";
import { ComposeError } from "../../core/errors.ts";
import { tempDir } from "../../testing/temp_dir.ts";
import {
  generateKeyPair,
  identityPublicKey,
  isKeyDirOf,
  makeKeyDir,
  parsePublicKey,
  publicKeyFingerprint,
  writeKnownHosts,
} from "./keys.ts";

async function sshKeygen(...args: string[]): Promise<string> {
  const output = await new Deno.Command("ssh-keygen", { args, stdin: "null" }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout);
}

Deno.test("parsePublicKey() splits a key line and refuses anything else", () => {
  const key = parsePublicKey("  ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@host \n");
  assert.deepEqual(key, {
    type: "ssh-ed25519",
    base64: "AAAAC3NzaC1lZDI1NTE5",
    line: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@host",
  });
  for (const bad of ["", "ssh-ed25519", "ssh-ed25519 not*base64", "-----BEGIN OPENSSH"]) {
    assert.throws(() => parsePublicKey(bad), TypeError, bad);
  }
});

Deno.test("generateKeyPair() makes a private key only we can read, fingerprinted like ssh-keygen -l", async () => {
  await using tmp = await tempDir();
  const file = `${tmp.path}/key`;
  const key = await generateKeyPair(file, "sandboxer test");
  assert.equal(key.type, "ssh-ed25519");
  assert.match(key.line, / sandboxer test$/);
  assert.equal((await Deno.stat(file)).mode! & 0o077, 0);
  const listed = await sshKeygen("-l", "-f", `${file}.pub`);
  assert.equal(listed.split(/\s+/)[1], publicKeyFingerprint(key));
  // Never overwrites: ssh-keygen's prompt gets no "y" on a null stdin.
  await assert.rejects(generateKeyPair(file, "again"));
  assert.equal(parsePublicKey(await Deno.readTextFile(`${file}.pub`)).base64, key.base64);
});

Deno.test("writeKnownHosts() pins the key for [host]:port", async () => {
  await using tmp = await tempDir();
  const key = await generateKeyPair(`${tmp.path}/host`, "h");
  await writeKnownHosts(`${tmp.path}/known_hosts`, "127.0.0.1", 40022, key);
  assert.equal(
    await Deno.readTextFile(`${tmp.path}/known_hosts`),
    `[127.0.0.1]:40022 ${key.type} ${key.base64}\n`,
  );
  // OpenSSH finds it under the same name.
  const found = await sshKeygen("-F", "[127.0.0.1]:40022", "-f", `${tmp.path}/known_hosts`);
  assert.match(found, new RegExp(key.base64.replaceAll("+", "\\+")));
});

Deno.test("identityPublicKey() reads <key>.pub, else derives it, else says what to do", async () => {
  await using tmp = await tempDir();
  const key = await generateKeyPair(`${tmp.path}/id`, "mine");
  assert.equal((await identityPublicKey(`${tmp.path}/id`, "sbx-a")).line, key.line);
  await Deno.remove(`${tmp.path}/id.pub`);
  assert.equal((await identityPublicKey(`${tmp.path}/id`, "sbx-a")).base64, key.base64);
  await Deno.writeTextFile(`${tmp.path}/broken`, "not a key\n", { mode: 0o600 });
  await assert.rejects(
    identityPublicKey(`${tmp.path}/broken`, "sbx-a"),
    (error: unknown) =>
      error instanceof ComposeError && /put the public key next to it/.test(error.message),
  );
});

Deno.test("makeKeyDir() makes a private directory and replaces a leftover one", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/state/keys/a1`;
  await makeKeyDir(dir);
  assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
  await Deno.writeTextFile(`${dir}/old`, "x");
  await makeKeyDir(dir);
  assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
});

Deno.test("isKeyDirOf() accepts only <absolute>/keys/<id>", () => {
  assert.equal(isKeyDirOf("/s/keys/a1", "a1"), true);
  assert.equal(isKeyDirOf("/s/keys/a1", "a2"), false);
  assert.equal(isKeyDirOf("s/keys/a1", "a1"), false);
  assert.equal(isKeyDirOf("/s/../keys/a1", "a1"), false);
  assert.equal(isKeyDirOf("/home/me", "a1"), false);
  assert.equal(isKeyDirOf("/keys/..", ".."), false);
});
