import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  appendKnownHost,
  checkHostKey,
  entryMatchesHost,
  fingerprintSha256,
  keyBlobType,
  knownHostsName,
  knownKeyTypes,
  matchHostKey,
  parseKnownHosts,
} from "./known_hosts.ts";

const decoder = new TextDecoder();

async function tool(program: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).output();
  assert.equal(out.code, 0, `${program} ${args.join(" ")}: ${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout);
}

interface TestKey {
  type: string;
  base64: string;
  blob: Uint8Array;
  pubFile: string;
}

async function makeKey(
  dir: string,
  type: "ed25519" | "rsa" | "ecdsa",
  name: string,
): Promise<TestKey> {
  const path = `${dir}/${name}`;
  const extra = type === "rsa" ? ["-b", "2048"] : [];
  await tool("ssh-keygen", ["-q", "-t", type, ...extra, "-N", "", "-C", name, "-f", path]);
  const [keyType, base64] = (await Deno.readTextFile(`${path}.pub`)).trim().split(/\s+/);
  return {
    type: keyType,
    base64,
    blob: new Uint8Array(Buffer.from(base64, "base64")),
    pubFile: `${path}.pub`,
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sbx-kh-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("knownHostsName() uses [host]:port only off port 22", () => {
  assert.equal(knownHostsName("Host.Example", 22), "host.example");
  assert.equal(knownHostsName("10.0.0.5", 12222), "[10.0.0.5]:12222");
});

Deno.test("parseKnownHosts() skips comments, blanks and malformed lines and reads markers", () => {
  const text = [
    "# comment",
    "",
    "   ",
    "a.example ssh-ed25519 AAAA comment here",
    "@revoked * ssh-rsa BBBB",
    "@cert-authority *.example ssh-ed25519 CCCC",
    "@bogus x ssh-ed25519 DDDD",
    "only-two-fields ssh-ed25519",
    "b.example,c.example\tecdsa-sha2-nistp256 EEEE\r",
  ].join("\n");
  assert.deepEqual(parseKnownHosts(text), [
    { line: 4, marker: undefined, hosts: "a.example", keyType: "ssh-ed25519", keyBase64: "AAAA" },
    { line: 5, marker: "revoked", hosts: "*", keyType: "ssh-rsa", keyBase64: "BBBB" },
    {
      line: 6,
      marker: "cert-authority",
      hosts: "*.example",
      keyType: "ssh-ed25519",
      keyBase64: "CCCC",
    },
    {
      line: 9,
      marker: undefined,
      hosts: "b.example,c.example",
      keyType: "ecdsa-sha2-nistp256",
      keyBase64: "EEEE",
    },
  ]);
});

Deno.test("entryMatchesHost() handles lists, wildcards, negation and ports", () => {
  const entry = (hosts: string) => parseKnownHosts(`${hosts} ssh-ed25519 AAAA`)[0];
  assert.ok(entryMatchesHost(entry("a,b,c"), "b"));
  assert.ok(!entryMatchesHost(entry("a,b,c"), "d"));
  assert.ok(entryMatchesHost(entry("*.example.com"), "x.example.com"));
  assert.ok(!entryMatchesHost(entry("*.example.com"), "example.com"));
  assert.ok(entryMatchesHost(entry("host?"), "host1"));
  assert.ok(!entryMatchesHost(entry("*.example.com,!bad.example.com"), "bad.example.com"));
  assert.ok(entryMatchesHost(entry("[10.0.0.5]:2222"), "[10.0.0.5]:2222"));
  assert.ok(!entryMatchesHost(entry("10.0.0.5"), "[10.0.0.5]:2222"));
  assert.ok(!entryMatchesHost(entry("[10.0.0.5]:2222"), "10.0.0.5"));
  assert.ok(entryMatchesHost(entry("HOST.Example"), "host.example"));
  // Regex metacharacters in a pattern are literal.
  assert.ok(!entryMatchesHost(entry("a.b"), "axb"));
});

Deno.test("fingerprintSha256() equals ssh-keygen -lf for ed25519, rsa and ecdsa", async () => {
  await withTempDir(async (dir) => {
    for (const type of ["ed25519", "rsa", "ecdsa"] as const) {
      const key = await makeKey(dir, type, `k_${type}`);
      const expected = (await tool("ssh-keygen", ["-l", "-E", "sha256", "-f", key.pubFile]))
        .split(" ")[1];
      assert.equal(fingerprintSha256(key.blob), expected);
      assert.equal(keyBlobType(key.blob), key.type);
    }
  });
});

Deno.test("keyBlobType() refuses malformed blobs", () => {
  assert.throws(() => keyBlobType(new Uint8Array([0, 0])), TypeError);
  assert.throws(() => keyBlobType(new Uint8Array([0, 0, 0, 9, 1])), TypeError);
});

Deno.test("matchHostKey() tells match, unknown, mismatch and revoked apart", async () => {
  await withTempDir(async (dir) => {
    const good = await makeKey(dir, "ed25519", "good");
    const other = await makeKey(dir, "ed25519", "other");
    const ecdsa = await makeKey(dir, "ecdsa", "ecdsa");
    const entries = parseKnownHosts([
      `[h]:2222 ${good.type} ${good.base64}`,
      `@cert-authority * ${other.type} ${other.base64}`,
      `g ${ecdsa.type} ${ecdsa.base64}`,
      `@revoked * ${ecdsa.type} ${ecdsa.base64}`,
    ].join("\n"));
    const q = (host: string, port: number, key: TestKey) => ({
      host,
      port,
      keyType: key.type,
      keyBlob: key.blob,
    });
    assert.deepEqual(matchHostKey(entries, q("h", 2222, good)), { status: "match", entryLine: 1 });
    assert.deepEqual(matchHostKey(entries, q("h", 22, good)), { status: "unknown" });
    assert.deepEqual(matchHostKey(entries, q("h", 2222, other)), {
      status: "mismatch",
      entryLine: 1,
    });
    // A key known only as a CA is not trusted as a host key.
    assert.deepEqual(matchHostKey(entries, q("x", 22, other)), { status: "unknown" });
    // Revocation wins over a plain entry for the same key.
    assert.deepEqual(matchHostKey(entries, q("g", 22, ecdsa)), { status: "revoked", entryLine: 4 });
    assert.deepEqual(knownKeyTypes(entries, "h", 2222), [good.type]);
    assert.deepEqual(knownKeyTypes(entries, "g", 22), [ecdsa.type]);
  });
});

Deno.test("checkHostKey() reads entries hashed by the real ssh-keygen -H", async () => {
  await withTempDir(async (dir) => {
    const key = await makeKey(dir, "ed25519", "host");
    const file = `${dir}/known_hosts`;
    await Deno.writeTextFile(
      file,
      `[127.0.0.1]:2222 ${key.type} ${key.base64}\nbuild.example ${key.type} ${key.base64}\n`,
    );
    await tool("ssh-keygen", ["-H", "-f", file]);
    const text = await Deno.readTextFile(file);
    assert.ok(!text.includes("127.0.0.1") && text.includes("|1|"), "file must be hashed");
    const q = { file, keyType: key.type, keyBlob: key.blob };
    assert.equal((await checkHostKey({ ...q, host: "127.0.0.1", port: 2222 })).status, "match");
    assert.equal((await checkHostKey({ ...q, host: "BUILD.example", port: 22 })).status, "match");
    assert.equal((await checkHostKey({ ...q, host: "127.0.0.1", port: 22 })).status, "unknown");
    assert.equal(
      (await checkHostKey({ ...q, host: "build.example", port: 2222 })).status,
      "unknown",
    );
  });
});

Deno.test("checkHostKey() treats a missing file as every host unknown", async () => {
  const check = await checkHostKey({
    file: "/nonexistent/sbx/known_hosts",
    host: "h",
    port: 22,
    keyType: "ssh-ed25519",
    keyBlob: new Uint8Array(8),
  });
  assert.deepEqual(check, { status: "unknown" });
});

Deno.test("appendKnownHost() creates 0700 dir and 0600 file that ssh-keygen -F finds", async () => {
  await withTempDir(async (dir) => {
    const key = await makeKey(dir, "ed25519", "host");
    const file = `${dir}/new/.ssh/known_hosts`;
    await appendKnownHost({
      file,
      host: "10.0.0.5",
      port: 12222,
      keyType: key.type,
      keyBase64: key.base64,
    });
    await appendKnownHost({
      file,
      host: "plain",
      port: 22,
      keyType: key.type,
      keyBase64: key.base64,
    });
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${dir}/new/.ssh`)).mode! & 0o777, 0o700);
    assert.equal(
      await Deno.readTextFile(file),
      `[10.0.0.5]:12222 ${key.type} ${key.base64}\nplain ${key.type} ${key.base64}\n`,
    );
    assert.match(await tool("ssh-keygen", ["-F", "[10.0.0.5]:12222", "-f", file]), /found: line 1/);
    assert.match(await tool("ssh-keygen", ["-F", "plain", "-f", file]), /found: line 2/);
    const q = { file, keyType: key.type, keyBlob: key.blob };
    assert.equal((await checkHostKey({ ...q, host: "10.0.0.5", port: 12222 })).status, "match");
  });
});

Deno.test("appendKnownHost() adds a newline to a file that lacks one and rejects junk", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/kh`;
    await Deno.writeTextFile(file, "a ssh-ed25519 AAAA");
    await appendKnownHost({ file, host: "b", port: 22, keyType: "ssh-ed25519", keyBase64: "BBBB" });
    assert.equal(await Deno.readTextFile(file), "a ssh-ed25519 AAAA\nb ssh-ed25519 BBBB\n");
    await assert.rejects(
      appendKnownHost({ file, host: "c", port: 22, keyType: "ssh-ed25519", keyBase64: "x y\nz" }),
      TypeError,
    );
  });
});
