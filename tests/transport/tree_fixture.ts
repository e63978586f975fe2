/**
 * Trees for the rsync tests: local files with names a shell would mangle,
 * and the remote listing to compare them with.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { SshConnection } from "../../src/transport/ssh/connection.ts";

/** Files whose names must reach the remote side literally. */
export const ODD_NAMES: Readonly<Record<string, string>> = {
  "a file with spaces.txt": "1",
  "it's $(weird) ; & | `name`": "2",
  'dir with space/nested "quoted".txt': "3",
  "-dash-leading": "4",
  "héllo 漢.txt": "5",
  "ignored.log": "x",
  "secret.env": "TOKEN=x",
};

/**
 * Write `files` (relative path → content) under `root`, making directories.
 *
 * @param root The directory.
 * @param files The files.
 */
export async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    const slash = path.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(`${root}/${path.slice(0, slash)}`, { recursive: true });
    await Deno.writeTextFile(`${root}/${path}`, content);
  }
}

/**
 * Every path below `dir` on the remote side, relative and sorted.
 *
 * @param conn The connection.
 * @param dir The remote directory.
 * @returns The paths.
 */
export async function listRemote(conn: SshConnection, dir: string): Promise<string[]> {
  const { stdout, code } = await conn.run(["find", ".", "-mindepth", "1", "-printf", "%P\\0"], {
    cwd: dir,
  });
  assert.equal(code, 0);
  return stdout.split("\0").slice(0, -1).sort();
}
