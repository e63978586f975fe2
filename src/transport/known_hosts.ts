/**
 * OpenSSH `known_hosts` files: parse, look up, fingerprint, append.
 *
 * Lines are read and host patterns matched by the rules of OpenSSH's
 * `hostfile.c` and `match.c` (checked against `ssh-keygen -F` in the tests),
 * with no regular expression built from the file: comma lists of patterns with
 * `*` and `?` wildcards and `!` negation (a negated match rules the line out),
 * ASCII case folding of host and pattern, every other character literal
 * (brackets, hyphens, dots, plus signs...), the `[host]:port` form for ports
 * other than 22, hashed `|1|salt|hmac` entries (as `ssh-keygen -H` writes
 * them), comments and blank lines, and the `@revoked` and `@cert-authority`
 * markers. A revoked key is always refused; `@cert-authority` lines are read
 * but never trust a plain key (sandboxer does not accept host certificates).
 * Lines OpenSSH would skip (an unknown marker, an unknown key type, a key that
 * does not decode, a missing field) are skipped.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { asciiLower, decodeBase64, entryMatchesHost } from "./host_patterns.ts";
import { mapPermissionError } from "../core/permissions.ts";

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
  /** The key blob, decoded; its first string is the key's own type. */
  keyBlob: Uint8Array;
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
 * The name OpenSSH looks up in known_hosts: the host (ASCII letters
 * lowercased) for port 22, else `[host]:port`.
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
  const name = asciiLower(host);
  return port === 22 ? name : `[${name}]:${port}`;
}

/**
 * Key type names OpenSSH accepts in a known_hosts line, with the type the key
 * blob itself must name (OpenSSH's full names, case-sensitive).
 */
const KEY_TYPE_NAMES: ReadonlyMap<string, string> = new Map([
  ["ssh-ed25519", "ssh-ed25519"],
  ["ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519-cert-v01@openssh.com"],
  ["sk-ssh-ed25519@openssh.com", "sk-ssh-ed25519@openssh.com"],
  ["sk-ssh-ed25519-cert-v01@openssh.com", "sk-ssh-ed25519-cert-v01@openssh.com"],
  ["ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"],
  ["ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"],
  ["ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"],
  ["ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com"],
  ["ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp384-cert-v01@openssh.com"],
  ["ecdsa-sha2-nistp521-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com"],
  ["sk-ecdsa-sha2-nistp256@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"],
  [
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
  ],
  ["ssh-rsa", "ssh-rsa"],
  ["rsa-sha2-256", "ssh-rsa"],
  ["rsa-sha2-512", "ssh-rsa"],
  ["ssh-rsa-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com"],
  ["rsa-sha2-256-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com"],
  ["rsa-sha2-512-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com"],
  ["ssh-dss", "ssh-dss"],
  ["ssh-dss-cert-v01@openssh.com", "ssh-dss-cert-v01@openssh.com"],
]);

/** OpenSSH's short names (matched without case), with the blob types each stands for. */
const KEY_TYPE_SHORT_NAMES: ReadonlyMap<string, readonly string[]> = new Map([
  ["ed25519", ["ssh-ed25519"]],
  ["ed25519-cert", ["ssh-ed25519-cert-v01@openssh.com"]],
  ["ed25519-sk", ["sk-ssh-ed25519@openssh.com"]],
  ["ed25519-sk-cert", ["sk-ssh-ed25519-cert-v01@openssh.com"]],
  // "ECDSA" names no curve, and OpenSSH then refuses every ECDSA key's curve.
  ["ecdsa", []],
  ["ecdsa-cert", []],
  ["ecdsa-sk", ["sk-ecdsa-sha2-nistp256@openssh.com"]],
  ["ecdsa-sk-cert", ["sk-ecdsa-sha2-nistp256-cert-v01@openssh.com"]],
  ["rsa", ["ssh-rsa"]],
  ["rsa-cert", ["ssh-rsa-cert-v01@openssh.com"]],
  ["dsa", ["ssh-dss"]],
  ["dsa-cert", ["ssh-dss-cert-v01@openssh.com"]],
]);

/** Whether a key written with type name `written` may hold a blob of type `blobType`. */
function keyTypeFits(written: string, blobType: string): boolean {
  const full = KEY_TYPE_NAMES.get(written);
  if (full !== undefined) return full === blobType;
  return KEY_TYPE_SHORT_NAMES.get(asciiLower(written))?.includes(blobType) ?? false;
}

function isBlank(char: string | undefined): boolean {
  return char === " " || char === "\t";
}

/** Index of the first space or tab at or after `from`, or the length. */
function fieldEnd(text: string, from: number): number {
  let i = from;
  while (i < text.length && !isBlank(text[i])) i++;
  return i;
}

function skipBlanks(text: string, from: number): number {
  let i = from;
  while (isBlank(text[i])) i++;
  return i;
}

/**
 * Read a line's marker as OpenSSH's `check_markers` does: `@` words ended by
 * the first space of the line (else its first tab); one marker at most.
 * Returns the marker (`null` for none) and where the host field starts, or
 * `undefined` when the line is to be skipped.
 */
function readMarker(
  line: string,
  from: number,
): { marker: KnownHostsEntry["marker"] | null; rest: number } | undefined {
  let cp = from;
  let marker: KnownHostsEntry["marker"] | null = null;
  while (line[cp] === "@") {
    if (marker !== null) return undefined;
    let end = line.indexOf(" ", cp);
    if (end < 0) end = line.indexOf("\t", cp);
    if (end < 0 || end <= cp + 1 || end - cp >= 32) return undefined;
    const word = line.slice(cp, end);
    if (word === "@cert-authority") marker = "cert-authority";
    else if (word === "@revoked") marker = "revoked";
    else return undefined;
    cp = skipBlanks(line, end);
  }
  return { marker, rest: cp };
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
 * const key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
 * const [entry] = parseKnownHosts(`# c\n[h]:2222 ssh-ed25519 ${key}\n`);
 * console.log(entry.line, entry.hosts); // 2 [h]:2222
 * ```
 */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  // OpenSSH strips only the "\n": a "\r" stays in the line (harmless after the key).
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const start = skipBlanks(line, 0);
    if (start === line.length || line[start] === "#") continue;
    const read = readMarker(line, start);
    if (read === undefined) continue;
    const hostsEnd = fieldEnd(line, read.rest);
    const hosts = line.slice(read.rest, hostsEnd);
    const typeStart = skipBlanks(line, hostsEnd);
    if (typeStart === line.length || line[typeStart] === "#") continue;
    const typeEnd = fieldEnd(line, typeStart);
    const keyType = line.slice(typeStart, typeEnd);
    const keyStart = skipBlanks(line, typeEnd);
    const keyBase64 = line.slice(keyStart, fieldEnd(line, keyStart)).replace(/\r$/, "");
    const keyBlob = decodeBase64(keyBase64);
    if (keyBlob === undefined || !keyTypeFits(keyType, blobTypeOrEmpty(keyBlob))) continue;
    const entry: KnownHostsEntry = { line: i + 1, hosts, keyType, keyBase64, keyBlob };
    if (read.marker !== null) entry.marker = read.marker;
    entries.push(entry);
  }
  return entries;
}

function blobTypeOrEmpty(keyBlob: Uint8Array): string {
  try {
    return keyBlobType(keyBlob);
  } catch {
    return "";
  }
}

function sameKey(entry: KnownHostsEntry, keyBlob: Uint8Array): boolean {
  return Buffer.from(entry.keyBlob).equals(Buffer.from(keyBlob));
}

/**
 * Decide on an offered key from already-parsed entries (the pure part of
 * {@linkcode checkHostKey}).
 *
 * A host known with keys of other types counts as `mismatch`, not `unknown`,
 * as in OpenSSH (`HOST_CHANGED`): the connection prefers the known key types,
 * so a server that no longer offers any of them has changed, and
 * trust-on-first-use must not kick in.
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
  const revoked = forHost.find((e) => e.marker === "revoked" && sameKey(e, query.keyBlob));
  if (revoked) return { status: "revoked", entryLine: revoked.line };
  const plain = forHost.filter((e) => e.marker === undefined);
  const match = plain.find((e) => sameKey(e, query.keyBlob));
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
      throw mapPermissionError(error, "read", file);
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
    .map((e) => keyBlobType(e.keyBlob));
  return [...new Set(types)];
}

/**
 * The fingerprint of the one key a known_hosts file trusts for a host, when
 * it trusts exactly one: what a connection to it must present. Several keys
 * (of different types), none, or any `@revoked` or `@cert-authority` line
 * for the host: undefined, as the key the server will show cannot be told
 * in advance.
 *
 * @param entries Parsed entries.
 * @param host Host name or address.
 * @param port TCP port.
 * @returns `SHA256:…`, or undefined.
 */
export function soleHostKeyFingerprint(
  entries: readonly KnownHostsEntry[],
  host: string,
  port: number,
): string | undefined {
  const name = knownHostsName(host, port);
  const forHost = entries.filter((e) => entryMatchesHost(e, name));
  if (forHost.some((e) => e.marker !== undefined)) return undefined;
  const prints = new Set(forHost.map((e) => fingerprintSha256(e.keyBlob)));
  return prints.size === 1 ? [...prints][0] : undefined;
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
      throw mapPermissionError(
        error,
        "write",
        entry.file,
        `--allow-read=${entry.file} --allow-write=${entry.file}`,
      );
    }
    throw error;
  }
}

/** A temporary known_hosts file from {@linkcode pinnedKnownHostsFile}; dispose it to remove it. */
export interface PinnedKnownHosts extends AsyncDisposable {
  /** Path of the file (mode 0600, in the temp directory). */
  readonly path: string;
}

/**
 * Write a temporary known_hosts file that holds exactly one key for one host:
 * given to an external `ssh` (with `GlobalKnownHostsFile=/dev/null`), it
 * accepts that key and no other, whatever the user's known_hosts holds.
 *
 * @param entry The host, port and the key (type and base64 blob) to accept.
 * @returns The file; remove it with `await using` or its dispose method.
 * @throws {PermissionError} When `--allow-write` does not cover the temp directory.
 *
 * @example
 * ```ts ignore
 * import { pinnedKnownHostsFile } from "./known_hosts.ts";
 * await using pinned = await pinnedKnownHostsFile({ host, port, keyType, keyBase64 });
 * // ssh -o UserKnownHostsFile=<pinned.path> -o GlobalKnownHostsFile=/dev/null …
 * ```
 */
export async function pinnedKnownHostsFile(
  entry: Omit<KnownHostLine, "file">,
): Promise<PinnedKnownHosts> {
  if (/\s/.test(entry.keyType) || decodeBase64(entry.keyBase64) === undefined) {
    throw new TypeError("Cannot write a pinned known_hosts file: the key is malformed");
  }
  let path: string;
  try {
    path = await Deno.makeTempFile({ prefix: "sbx-pinned-known-hosts-" });
    await Deno.writeTextFile(
      path,
      `${knownHostsName(entry.host, entry.port)} ${entry.keyType} ${entry.keyBase64}\n`,
    );
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw mapPermissionError(error, "write", "the temp directory", "--allow-write");
    }
    throw error;
  }
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path).catch(() => {});
    },
  };
}
