/**
 * rsync's itemized output (`--out-format='%i %n'`) read back as data: what a
 * dry run would delete, create, send and chmod, each with a path checked to
 * stay inside the workspace.
 *
 * @module
 */

import { SftpSyncError } from "../core/errors.ts";

/** The kind of a file-system entry. */
export type EntryKind = "file" | "dir" | "symlink" | "special";

/** One line of rsync's `--out-format='%i %n'` itemized output, decoded. */
export interface RsyncItem {
  /**
   * `delete`: rsync would delete it; `send`: file content would be sent;
   * `create`: a directory, symlink or special would be made or changed;
   * `attrs`: only attributes (mode, times, owner) differ.
   */
  action: "delete" | "send" | "create" | "attrs";
  /** The kind, from the itemize code (deletions: `dir` when rsync printed a trailing `/`). */
  kind: EntryKind;
  /** Path relative to the transfer root; `""` for the root itself. */
  path: string;
  /** The mode differs (`p` in the itemize flags). */
  modeChanged: boolean;
}

const KIND_BY_CODE: Readonly<Record<string, EntryKind>> = {
  f: "file",
  d: "dir",
  L: "symlink",
  D: "special",
  S: "special",
};

/**
 * Decode rsync's escaping of names in log output: a byte it will not print
 * as is (control characters, high bytes, and a `\` that starts `\#ddd`)
 * appears as `\#` and three octal digits.
 *
 * @param escaped The name as rsync printed it.
 * @returns The real name.
 * @throws {SftpSyncError} When the name is not valid UTF-8.
 */
export function unescapeRsyncName(escaped: string): string {
  if (!escaped.includes("\\#")) return escaped;
  const encoder = new TextEncoder();
  const bytes: number[] = [];
  const pattern = /\\#([0-7]{3})/g;
  let last = 0;
  for (const match of escaped.matchAll(pattern)) {
    bytes.push(...encoder.encode(escaped.slice(last, match.index)));
    bytes.push(Number.parseInt(match[1], 8));
    last = match.index + match[0].length;
  }
  bytes.push(...encoder.encode(escaped.slice(last)));
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
  } catch (error) {
    throw new SftpSyncError(escaped, "has a name that is not valid UTF-8; rename it", {
      cause: error,
    });
  }
}

/**
 * Parse the output of `rsync --itemize`-style `--out-format='%i %n'`. Lines
 * that are not items (warnings such as "cannot delete non-empty directory")
 * are skipped.
 *
 * @param stdout rsync's stdout.
 * @returns The items, in rsync's order.
 *
 * @example
 * ```ts
 * import { parseRsyncItems, type RsyncItem } from "./rsync_items.ts";
 * const items = parseRsyncItems(">f+++++++++ a b.txt\n*deleting   old/\n");
 * console.log(items.map((i: RsyncItem) => `${i.action} ${i.kind} ${i.path}`)); // ["send file a b.txt", "delete dir old"]
 * ```
 */
export function parseRsyncItems(stdout: string): RsyncItem[] {
  const items: RsyncItem[] = [];
  // Names never hold a raw newline: rsync prints it as \#012.
  for (const line of stdout.split("\n")) {
    const match = /^(\*deleting {2}|[<>ch.*][fdLDS][^ ]{9}) (.+)$/.exec(line);
    if (!match) continue;
    const [, code, escaped] = match;
    const isDir = escaped.endsWith("/");
    const name = unescapeRsyncName(isDir ? escaped.slice(0, -1) : escaped);
    const path = name === "." ? "" : name;
    if (code.startsWith("*deleting")) {
      items.push({ action: "delete", kind: isDir ? "dir" : "file", path, modeChanged: false });
      continue;
    }
    const kind = KIND_BY_CODE[code[1]];
    const update = code[0];
    let action: RsyncItem["action"];
    if (kind === "file") action = update === "." ? "attrs" : "send";
    else action = update === "." ? "attrs" : "create";
    items.push({ action, kind, path, modeChanged: code[5] === "p" });
  }
  return items;
}

/**
 * Split a relative path into its segments, refusing anything that could
 * leave the workspace.
 *
 * @param path A path from rsync or from a remote listing.
 * @returns The segments (empty for the root).
 * @throws {SftpSyncError} On an absolute path or an empty, `.` or `..` segment.
 */
export function safeSegments(path: string): string[] {
  if (path === "") return [];
  const segments = path.split("/");
  if (segments.some((s) => s === "" || s === "." || s === "..") || path.includes("\0")) {
    throw new SftpSyncError(path, "is not a plain relative path, so it is refused");
  }
  return segments;
}
