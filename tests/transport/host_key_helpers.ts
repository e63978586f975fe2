/**
 * Helpers for host-key tests against the real sshd harness: new keys, re-keying the server, and
 * reading from its log whether a connection got as far as authentication.
 */
import assert from "node:assert/strict";
import type { TestSshd } from "../harness/sshd.ts";

const decoder = new TextDecoder();

async function tool(program: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).output();
  assert.equal(out.code, 0, `${program} ${args.join(" ")}: ${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout);
}

/** A fresh ed25519 key pair in `dir`: its public `type base64` and its fingerprint. */
export async function newKey(
  dir: string,
  name: string,
): Promise<{ line: string; fingerprint: string }> {
  await tool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", `${dir}/${name}`]);
  const line = (await Deno.readTextFile(`${dir}/${name}.pub`)).trim().split(" ").slice(0, 2)
    .join(" ");
  const fingerprint = (await tool("ssh-keygen", ["-l", "-E", "sha256", "-f", `${dir}/${name}.pub`]))
    .split(" ")[1];
  return { line, fingerprint };
}

/** Give the server a new host key, as a rebuilt or re-keyed host has, and restart it. */
export async function replaceHostKey(
  sshd: TestSshd,
): Promise<{ line: string; fingerprint: string }> {
  const name = `rekey_${crypto.randomUUID().slice(0, 8)}`;
  const key = await newKey(sshd.dir, name);
  const hostKey = `${sshd.dir}/ssh_host_ed25519_key`;
  await Deno.copyFile(`${sshd.dir}/${name}`, hostKey);
  await Deno.copyFile(`${sshd.dir}/${name}.pub`, `${hostKey}.pub`);
  await Deno.chmod(hostKey, 0o600);
  await sshd.restart();
  return key;
}

/**
 * The server log written after `offset`, once sshd has logged the end of every connection that
 * started in it, and at least `connections` of them (so a missing "publickey" line is not merely
 * a line not written yet).
 */
export async function logAfter(sshd: TestSshd, offset: number, connections = 1): Promise<string> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const lines = (await sshd.log()).slice(offset).split("\n");
    const starts = lines.filter((l) => l.startsWith("Connection from")).length;
    const ends = lines.filter((l) =>
      /^(Connection (closed|reset) by|Disconnected from|Timeout before auth)/.test(l)
    ).length;
    if ((starts >= connections && ends >= starts) || Date.now() > deadline) {
      return lines.join("\n");
    }
    await new Promise((r) =>
      setTimeout(r, 25)
    );
  }
}

const AUTH_LINE = /publickey|Accepted|Failed|Postponed|authenticating user|Invalid user/;

/** Assert that a stretch of sshd log shows no authentication attempt at all. */
export function assertNoAuthentication(log: string, what: string): void {
  assert.ok(log.includes("Connection from"), `${what}: no connection in the log:\n${log}`);
  const lines = log.split("\n").filter((l) => AUTH_LINE.test(l));
  assert.deepEqual(lines, [], `${what}: the server saw an authentication attempt:\n${log}`);
}
