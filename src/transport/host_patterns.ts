/**
 * Host patterns of OpenSSH's `known_hosts` lines, matched by the rules of its
 * `match.c` and `hostfile.c`: comma lists with `*` and `?` wildcards and `!`
 * negation, ASCII case folding, and hashed `|1|salt|hmac` host fields.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";

/** ASCII-only lowercasing, as C's tolower() in OpenSSH: other characters stay as they are. */
export function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decode base64 as OpenSSH does: padded, no stray characters; undefined when it is not. */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0 || !BASE64.test(text)) return undefined;
  const bytes = new Uint8Array(Buffer.from(text, "base64"));
  // Non-zero bits after the last byte (a second spelling of the same bytes) are refused too.
  return Buffer.from(bytes).toString("base64") === text ? bytes : undefined;
}

const encoder = new TextEncoder();
/** Longest subpattern OpenSSH's match_pattern_list copies (its buffer is 1024 bytes). */
const MAX_SUBPATTERN = 1023;
const STAR = 0x2a;
const QUESTION = 0x3f;

/**
 * OpenSSH's match_pattern: `*` matches any run of bytes (also none), `?` any
 * one byte, everything else itself. Iterative, with one backtracking point,
 * which gives the same answers as OpenSSH's recursion for these two wildcards.
 */
function matchPattern(s: Uint8Array, pattern: Uint8Array): boolean {
  let si = 0;
  let pi = 0;
  let starPi = -1;
  let starSi = 0;
  while (si < s.length) {
    if (pi < pattern.length && pattern[pi] === STAR) {
      starPi = pi++;
      starSi = si;
    } else if (pi < pattern.length && (pattern[pi] === QUESTION || pattern[pi] === s[si])) {
      pi++;
      si++;
    } else if (starPi >= 0) {
      pi = starPi + 1;
      si = ++starSi;
    } else {
      return false;
    }
  }
  while (pi < pattern.length && pattern[pi] === STAR) pi++;
  return pi === pattern.length;
}

/**
 * Match a host name against a comma-separated pattern list exactly as
 * OpenSSH's `match_hostname` does: both sides lowercased (ASCII), each
 * subpattern optionally negated with a leading `!`, `*` and `?` wildcards,
 * every other character literal. A subpattern of 1023 bytes or more makes the
 * whole list fail, as in OpenSSH.
 *
 * @param name The host name as looked up (see {@linkcode knownHostsName}).
 * @param patterns The comma-separated list.
 * @returns 1 for a match, -1 when a negated subpattern matches, 0 otherwise.
 *
 * @example
 * ```ts
 * import { matchHostPatterns } from "./host_patterns.ts";
 * console.log(matchHostPatterns("build-vm", "*-vm,!test-vm")); // 1
 * console.log(matchHostPatterns("test-vm", "*-vm,!test-vm")); // -1
 * ```
 */
export function matchHostPatterns(name: string, patterns: string): 1 | 0 | -1 {
  const host = encoder.encode(asciiLower(name));
  const list = encoder.encode(patterns);
  let positive = false;
  let i = 0;
  while (i < list.length) {
    const negated = list[i] === 0x21; // "!"
    if (negated) i++;
    const start = i;
    while (i < list.length && i - start < MAX_SUBPATTERN && list[i] !== 0x2c) i++;
    if (i - start >= MAX_SUBPATTERN) return 0;
    const sub = list.slice(start, i);
    for (let j = 0; j < sub.length; j++) {
      if (sub[j] >= 0x41 && sub[j] <= 0x5a) sub[j] += 0x20;
    }
    if (i < list.length && list[i] === 0x2c) i++;
    if (matchPattern(host, sub)) {
      if (negated) return -1;
      positive = true;
    }
  }
  return positive ? 1 : 0;
}

/**
 * Whether a hashed host field (`|1|base64 salt|base64 HMAC-SHA1`) names
 * `name`. Like OpenSSH, the field must be exactly what hashing `name` with its
 * salt gives, canonical base64 included; any other `|…` field names no host.
 */
function hashedMatch(field: string, name: string): boolean {
  if (!field.startsWith("|1|")) return false;
  const end = field.indexOf("|", 3);
  if (end <= 3 || end - 3 > 1024) return false;
  const salt = decodeBase64(field.slice(3, end));
  if (salt === undefined || salt.length !== 20) return false;
  const mac = createHmac("sha1", salt).update(encoder.encode(name)).digest();
  return field === `|1|${Buffer.from(salt).toString("base64")}|${mac.toString("base64")}`;
}

/**
 * Whether an entry's host field names `name` (from {@linkcode knownHostsName}).
 *
 * @param entry A parsed entry (its `hosts` field).
 * @param name The lookup name.
 * @returns True when a pattern matches and no negated pattern does, or the hashed field is `name`'s.
 */
export function entryMatchesHost(entry: { readonly hosts: string }, name: string): boolean {
  if (entry.hosts.startsWith("|")) return hashedMatch(entry.hosts, name);
  return matchHostPatterns(name, entry.hosts) === 1;
}
