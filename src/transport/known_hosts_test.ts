import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  appendKnownHost,
  checkHostKey,
  fingerprintSha256,
  keyBlobType,
  knownHostsName,
  knownKeyTypes,
  matchHostKey,
  parseKnownHosts,
  soleHostKeyFingerprint,
} from "./known_hosts.ts";
import { entryMatchesHost, matchHostPatterns } from "./host_patterns.ts";

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

Deno.test("parseKnownHosts() skips comments, blanks and malformed lines and reads markers", async () => {
  await withTempDir(async (dir) => {
    const ed = await makeKey(dir, "ed25519", "ed");
    const ec = await makeKey(dir, "ecdsa", "ec");
    const key = `${ed.type} ${ed.base64}`;
    const text = [
      "# comment",
      "",
      "   ",
      `a.example ${key} comment here`,
      `@revoked * ${key}`,
      `@cert-authority *.example ${key}`,
      `@bogus x ${key}`,
      "only-two-fields ssh-ed25519",
      `b.example,c.example\t${ec.type} ${ec.base64}\r`,
      `wrong-type ssh-rsa ${ed.base64}`,
      `not-base64 ssh-ed25519 ${ed.base64.slice(1)}`,
      `unknown-type ssh-foo ${ed.base64}`,
      ` \t indented ${key}`,
      `@revoked @revoked twice ${key}`,
      `hash-key # ${key}`,
      `short-name ED25519 ${ed.base64}`,
      `rsa-name rsa-sha2-512 ${ed.base64}`,
    ].join("\n");
    const seen = parseKnownHosts(text).map((e) => [e.line, e.marker ?? null, e.hosts, e.keyType]);
    assert.deepEqual(seen, [
      [4, null, "a.example", "ssh-ed25519"],
      [5, "revoked", "*", "ssh-ed25519"],
      [6, "cert-authority", "*.example", "ssh-ed25519"],
      [9, null, "b.example,c.example", "ecdsa-sha2-nistp256"],
      [13, null, "indented", "ssh-ed25519"],
      [16, null, "short-name", "ED25519"],
    ]);
    const [first] = parseKnownHosts(text);
    assert.equal(first.keyBase64, ed.base64);
    assert.deepEqual(first.keyBlob, ed.blob);
    assert.equal(parseKnownHosts(text)[3].keyBase64, ec.base64, "a trailing CR is not the key's");
  });
});

Deno.test("entryMatchesHost() handles lists, wildcards, negation, ports and any character", () => {
  const entry = (hosts: string) => ({ hosts });
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
  assert.ok(entryMatchesHost(entry("host.example"), "HOST.Example"));
  // Regex metacharacters are literal; a hyphen once broke every connection ("Invalid regular
  // expression"); the pattern list is never turned into a regular expression.
  assert.ok(!entryMatchesHost(entry("a.b"), "axb"));
  assert.ok(entryMatchesHost(entry("build-vm"), "build-vm"));
  assert.ok(entryMatchesHost(entry("[build-vm]:2222,a+b,(x)|y,^$\\d{2}"), "a+b"));
  assert.ok(entryMatchesHost(entry("^$\\d{2}"), "^$\\d{2}"));
  assert.ok(entryMatchesHost(entry("host_[1]"), "host_[1]"));
  // A "!" inside a subpattern is literal; only a leading one negates.
  assert.ok(entryMatchesHost(entry("a!b"), "a!b"));
  // Only ASCII letters fold, as C's tolower() does.
  assert.ok(!entryMatchesHost(entry("\u00c9t\u00e9"), "\u00e9t\u00e9"));
});

Deno.test("matchHostPatterns() follows OpenSSH match_pattern_list to the letter", () => {
  assert.equal(matchHostPatterns("x", "x,!x"), -1, "a negated match wins over a positive one");
  assert.equal(matchHostPatterns("x", "!y"), 0, "a negation alone never matches");
  assert.equal(matchHostPatterns("", ""), 0);
  assert.equal(matchHostPatterns("a", "a,,"), 1);
  assert.equal(matchHostPatterns("ab", "*?*b"), 1);
  assert.equal(matchHostPatterns("b", "*?*b"), 0);
  assert.equal(matchHostPatterns("aaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*a*b"), 1);
  // A subpattern of 1023 bytes or more makes the whole list fail, even after a match.
  assert.equal(matchHostPatterns("x", `x,${"y".repeat(1022)}`), 1);
  assert.equal(matchHostPatterns("x", `x,${"y".repeat(1023)}`), 0);
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

Deno.test("soleHostKeyFingerprint() names the key only when the file trusts exactly one", async () => {
  await withTempDir(async (dir) => {
    const ed = await makeKey(dir, "ed25519", "ed");
    const ec = await makeKey(dir, "ecdsa", "ec");
    const sole = (text: string) => soleHostKeyFingerprint(parseKnownHosts(text), "10.0.0.5", 12222);
    const edLine = `[10.0.0.5]:12222 ${ed.type} ${ed.base64}\n`;
    assert.equal(sole(edLine), fingerprintSha256(ed.blob));
    assert.equal(
      sole(edLine + edLine.replace("[10.0.0.5]:12222", "[10.0.0.*]:12222")),
      sole(edLine),
    );
    assert.equal(sole(`${edLine}[10.0.0.5]:12222 ${ec.type} ${ec.base64}\n`), undefined);
    assert.equal(sole(`10.0.0.5 ${ed.type} ${ed.base64}\n`), undefined, "port 22's line");
    assert.equal(sole(""), undefined);
    assert.equal(sole(`${edLine}@revoked [10.0.0.5]:12222 ${ec.type} ${ec.base64}\n`), undefined);
    assert.equal(sole(`${edLine}@cert-authority * ${ec.type} ${ec.base64}\n`), undefined);
  });
});
