/**
 * Paths as raw bytes (git lists names that need not be UTF-8) and the
 * anchored literal rsync rules made of them.
 *
 * @module
 */

/** `/` and the NUL that ends each entry of a `git ls-files -z` listing. */
export const SLASH = 0x2f;
export const NUL = 0;

/** A git listing's entries (NUL-separated), as raw bytes: names need not be UTF-8. */
export function splitNul(bytes: Uint8Array): Uint8Array[] {
  const entries: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== NUL) continue;
    if (i > start) entries.push(bytes.subarray(start, i));
    start = i + 1;
  }
  if (start < bytes.length) entries.push(bytes.subarray(start));
  return entries;
}

/** The byte strings one after another, in a new array (an array, not arguments: lists of names get long). */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** A path's directory part (with its trailing `/`, empty at the top) and its last segment. */
export function splitPath(path: Uint8Array): [Uint8Array, Uint8Array] {
  const body = path[path.length - 1] === SLASH ? path.subarray(0, -1) : path;
  const slash = body.lastIndexOf(SLASH);
  return [body.subarray(0, slash + 1), body.subarray(slash + 1)];
}

/** The extension of a name (after its last dot, not a leading one), or undefined. */
export function extensionOf(name: Uint8Array): Uint8Array | undefined {
  const dot = name.lastIndexOf(0x2e);
  return dot > 0 && dot < name.length - 1 ? name.subarray(dot + 1) : undefined;
}

const BACKSLASH = 0x5c;
const WILDCARDS = new Set([0x2a, 0x3f, 0x5b]); // * ? [
const LINE_ENDS = new Set([0x0a, 0x0d]);

/**
 * Escape bytes for an rsync pattern that has wildcards: rsync reads `\` as an
 * escape only then. A newline or carriage return (which would end the rule's
 * line) becomes `?`.
 */
export function escapeWild(bytes: Uint8Array, out: number[]): void {
  for (const byte of bytes) {
    if (LINE_ENDS.has(byte)) out.push(0x3f);
    else {
      if (byte === BACKSLASH || WILDCARDS.has(byte)) out.push(BACKSLASH);
      out.push(byte);
    }
  }
}

/** `/path` (or `/dir/`) matching exactly that path, whatever its characters. */
export function literalRule(path: Uint8Array): Uint8Array {
  const out: number[] = [SLASH];
  const wild = path.some((b) => WILDCARDS.has(b) || LINE_ENDS.has(b));
  if (wild) escapeWild(path, out);
  else out.push(...path);
  return new Uint8Array(out);
}

export function foldedRule(dir: Uint8Array, ext: Uint8Array): Uint8Array {
  const out: number[] = [SLASH];
  escapeWild(dir, out);
  out.push(0x2a, 0x2e); // "*."
  escapeWild(ext, out);
  return new Uint8Array(out);
}

export function joinLines(rules: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const rule of rules) size += rule.length + 1;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const rule of rules) {
    out.set(rule, offset);
    offset += rule.length;
    out[offset++] = 0x0a;
  }
  return out;
}
