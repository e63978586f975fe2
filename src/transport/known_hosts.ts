/**
 * OpenSSH `known_hosts` files: parse, look up, fingerprint, append.
 *
 * Supported: plain host names and comma lists, `*`/`?` wildcards and `!`
 * negation, the `[host]:port` form for ports other than 22, hashed
 * `|1|salt|hmac` entries (as `ssh-keygen -H` writes them), comments and blank
 * lines, and the `@revoked` marker (a revoked key is always refused).
 * `@cert-authority` lines are ignored: sandboxer does not accept host
 * certificates. Malformed lines are skipped, as OpenSSH does.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash, createHmac } from "node:crypto";
import { PermissionError } from "../core/errors.ts";

/** One usable line of a known_hosts file. */
export interface KnownHostsEntry {
  /** 1-based line number in the file. */
  line: number;
  /** `@revoked` or `@cert-authority`, when the line has a marker. */
  marker?: "revoked" | "cert-authority";
  /** The host field as written: a comma list of patterns, or one `|1|salt|hash`. */
  hosts: string;
  /** Key type as written, such as `ssh-ed25519`. */
  keyType: string;
  /** The key blob, base64 as written. */
  keyBase64: string;
}

/** Result of {@linkcode checkHostKey}. */
export interface HostKeyCheck {
  /**
   * `match`: a line for this host holds the key. `unknown`: no line names the
   * host. `mismatch`: the host is known, but with other keys only.
   * `revoked`: an `@revoked` line for this host holds the key.
   */
  status: "match" | "unknown" | "mismatch" | "revoked";
  /** Line of the deciding entry (the match, the revocation, or the first other key). */
  entryLine?: number;
}

/** What {@linkcode checkHostKey} looks up. */
export interface HostKeyQuery {
  /** The known_hosts file; a missing file means every host is unknown. */
  file: string;
  /** Host name or address as it is connected to. */
  host: string;
  /** TCP port; 22 uses the bare host name, any other `[host]:port`. */
  port: number;
  /** Key type the server offered, such as `ssh-ed25519`. */
  keyType: string;
  /** The raw public key blob the server offered. */
  keyBlob: Uint8Array;
}

/** What {@linkcode appendKnownHost} writes. */
export interface KnownHostLine {
  /** The known_hosts file; it and its directory are created when missing. */
  file: string;
  /** Host name or address. */
  host: string;
  /** TCP port. */
  port: number;
  /** Key type, such as `ssh-ed25519`. */
  keyType: string;
  /** The key blob in base64. */
  keyBase64: string;
}

/**
 * The name OpenSSH looks up in known_hosts: the lowercased host for port 22,
 * else `[host]:port`.
 *
 * @param host Host name or address.
 * @param port TCP port.
 * @returns The lookup name.
 *
 * @example
 * ```ts
 * import { knownHostsName } from "./known_hosts.ts";
 * console.log(knownHostsName("Example.COM", 2222)); // [example.com]:2222
 * ```
 */
export function knownHostsName(host: string, port: number): string {
  const name = host.toLowerCase();
  return port === 22 ? name : `[${name}]:${port}`;
}

/**
 * Parse known_hosts text into its usable entries.
 *
 * @param text The file's content.
 * @returns Entries in file order; comments, blank and malformed lines are left out.
 *
 * @example
 * ```ts
 * import { parseKnownHosts } from "./known_hosts.ts";
 * const [entry] = parseKnownHosts("# c\n[h]:2222 ssh-ed25519 AAAA\n");
 * console.log(entry.line, entry.hosts); // 2 [h]:2222
 * ```
 */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const trimmed = lines[i].trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const fields = trimmed.split(/[ \t]+/);
    let marker: KnownHostsEntry["marker"];
    if (fields[0].startsWith("@")) {
      const name = fields.shift();
      if (name === "@revoked") marker = "revoked";
      else if (name === "@cert-authority") marker = "cert-authority";
      else continue;
    }
    if (fields.length < 3) continue;
    const [hosts, keyType, keyBase64] = fields;
    entries.push({ line: i + 1, marker, hosts, keyType, keyBase64 });
  }
  return entries;
}

/** Glob match with `*` and `?`, as OpenSSH's match_pattern. */
function globMatch(pattern: string, name: string): boolean {
  let source = "^";
  for (const char of pattern) {
    if (char === "*") source += ".*";
    else if (char === "?") source += ".";
    else source += char.replace(/[.+^${}()|[\]\\/-]/g, "\\$&");
  }
  return new RegExp(source + "$", "su").test(name);
}

function hashedMatch(field: string, name: string): boolean {
  const parts = field.split("|");
  // "|1|salt|hash" splits to ["", "1", salt, hash].
  if (parts.length !== 4 || parts[1] !== "1") return false;
  const salt = Buffer.from(parts[2], "base64");
  const expected = Buffer.from(parts[3], "base64");
  if (salt.length !== 20 || expected.length !== 20) return false;
  const actual = createHmac("sha1", salt).update(name).digest();
  return actual.equals(expected);
}

/**
 * Whether an entry's host field names `name` (from {@linkcode knownHostsName}).
 *
 * @param entry A parsed entry.
 * @param name The lookup name.
 * @returns True when a pattern matches and no negated pattern does.
 */
export function entryMatchesHost(entry: KnownHostsEntry, name: string): boolean {
  if (entry.hosts.startsWith("|")) return hashedMatch(entry.hosts, name);
  let matched = false;
  for (const raw of entry.hosts.split(",")) {
    const negated = raw.startsWith("!");
    const pattern = (negated ? raw.slice(1) : raw).toLowerCase();
    if (!globMatch(pattern, name)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

function sameKey(entry: KnownHostsEntry, keyType: string, keyBlob: Uint8Array): boolean {
  if (entry.keyType !== keyType) return false;
  return Buffer.from(entry.keyBase64, "base64").equals(Buffer.from(keyBlob));
}

/**
 * Decide on an offered key from already-parsed entries (the pure part of
 * {@linkcode checkHostKey}).
 *
 * A host known with keys of other types counts as `mismatch`, not `unknown`:
 * the connection prefers the known key types, so a server that no longer
 * offers any of them has changed, and trust-on-first-use must not kick in.
 *
 * @param entries Parsed known_hosts entries.
 * @param query Host, port and the offered key.
 * @returns The decision and the line it rests on.
 */
export function matchHostKey(
  entries: readonly KnownHostsEntry[],
  query: Omit<HostKeyQuery, "file">,
): HostKeyCheck {
  const name = knownHostsName(query.host, query.port);
  const forHost = entries.filter((e) => e.marker !== "cert-authority" && entryMatchesHost(e, name));
  const revoked = forHost.find((e) =>
    e.marker === "revoked" && sameKey(e, query.keyType, query.keyBlob)
  );
  if (revoked) return { status: "revoked", entryLine: revoked.line };
  const plain = forHost.filter((e) => e.marker === undefined);
  const match = plain.find((e) => sameKey(e, query.keyType, query.keyBlob));
  if (match) return { status: "match", entryLine: match.line };
  if (plain.length > 0) return { status: "mismatch", entryLine: plain[0].line };
  return { status: "unknown" };
}

/**
 * Read and parse a known_hosts file. A missing file has no entries.
 *
 * @param file Path of the file.
 * @returns Its entries.
 * @throws {PermissionError} When `--allow-read` does not cover the file.
 */
export async function readKnownHosts(file: string): Promise<KnownHostsEntry[]> {
  try {
    return parseKnownHosts(await Deno.readTextFile(file));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    if (error instanceof Deno.errors.NotCapable) {
      throw new PermissionError("read", file, `--allow-read=${file}`, { cause: error });
    }
    throw error;
  }
}

/**
 * Key types (as written in known_hosts) that the file holds for a host, in
 * file order. Used to ask the server for a key type we can verify.
 *
 * @param entries Parsed entries.
 * @param host Host name or address.
 * @param port TCP port.
 * @returns Distinct key types of the host's plain entries.
 */
export function knownKeyTypes(
  entries: readonly KnownHostsEntry[],
  host: string,
  port: number,
): string[] {
  const name = knownHostsName(host, port);
  const types = entries.filter((e) => e.marker === undefined && entryMatchesHost(e, name))
    .map((e) => e.keyType);
  return [...new Set(types)];
}

/**
 * Check an offered host key against a known_hosts file.
 *
 * @param query The file, host, port and offered key.
 * @returns `match`, `unknown`, `mismatch` or `revoked`, with the deciding line.
 * @throws {PermissionError} When `--allow-read` does not cover the file.
 *
 * @example
 * ```ts ignore
 * import { checkHostKey } from "./known_hosts.ts";
 * const check = await checkHostKey({ file, host: "10.0.0.5", port: 12222, keyType, keyBlob });
 * if (check.status !== "match") throw new Error(check.status);
 * ```
 */
export async function checkHostKey(query: HostKeyQuery): Promise<HostKeyCheck> {
  return matchHostKey(await readKnownHosts(query.file), query);
}

/**
 * The SHA-256 fingerprint of a public key blob, exactly as `ssh-keygen -l`
 * prints it: `SHA256:` and unpadded base64.
 *
 * @param keyBlob The raw public key blob.
 * @returns The fingerprint.
 *
 * @example
 * ```ts
 * import { fingerprintSha256 } from "./known_hosts.ts";
 * console.log(fingerprintSha256(new Uint8Array()).startsWith("SHA256:")); // true
 * ```
 */
export function fingerprintSha256(keyBlob: Uint8Array): string {
  const digest = createHash("sha256").update(keyBlob).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

/**
 * The key type named inside an SSH public key blob (its first string).
 *
 * @param keyBlob The raw public key blob.
 * @returns The type, such as `ssh-ed25519`.
 * @throws {TypeError} When the blob is too short to hold one.
 */
export function keyBlobType(keyBlob: Uint8Array): string {
  if (keyBlob.length < 4) throw new TypeError("Cannot read key type: the key blob is truncated");
  const length = new DataView(keyBlob.buffer, keyBlob.byteOffset, keyBlob.byteLength).getUint32(0);
  if (length > 64 || keyBlob.length < 4 + length) {
    throw new TypeError("Cannot read key type: the key blob is malformed");
  }
  return new TextDecoder().decode(keyBlob.subarray(4, 4 + length));
}

/**
 * Append a host key line, creating the file (mode 0600) and its directory
 * (mode 0700) when missing. Writes `[host]:port` for ports other than 22.
 *
 * @param entry The file, host, port and key.
 * @throws {PermissionError} When `--allow-read`/`--allow-write` do not cover the file.
 *
 * @example
 * ```ts ignore
 * import { appendKnownHost } from "./known_hosts.ts";
 * await appendKnownHost({ file, host: "10.0.0.5", port: 12222, keyType: "ssh-ed25519", keyBase64 });
 * ```
 */
export async function appendKnownHost(entry: KnownHostLine): Promise<void> {
  if (/\s/.test(entry.keyType) || !/^[A-Za-z0-9+/]+=*$/.test(entry.keyBase64)) {
    throw new TypeError("Cannot append host key: key type or base64 blob is malformed");
  }
  const slash = entry.file.lastIndexOf("/");
  try {
    if (slash > 0) await Deno.mkdir(entry.file.slice(0, slash), { recursive: true, mode: 0o700 });
    let prefix = "";
    try {
      const current = await Deno.readFile(entry.file);
      if (current.length > 0 && current[current.length - 1] !== 0x0a) prefix = "\n";
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const line = `${prefix}${
      knownHostsName(entry.host, entry.port)
    } ${entry.keyType} ${entry.keyBase64}\n`;
    await Deno.writeTextFile(entry.file, line, { append: true, create: true, mode: 0o600 });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new PermissionError(
        "write",
        entry.file,
        `--allow-read=${entry.file} --allow-write=${entry.file}`,
        { cause: error },
      );
    }
    throw error;
  }
}
