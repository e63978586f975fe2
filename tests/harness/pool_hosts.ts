/**
 * Helpers for pool tests (tests/vm_packer/pool_test.ts) and the pool soak (tools/soak.ts): a
 * setup command that measures, on the host itself, how many workspaces it holds at once; a
 * writer for pool profiles; and what leases a host has left.
 *
 * @module
 */

import { exists, listDir } from "../helpers.ts";

/**
 * A profile `setup:` command that, under flock on a file in the workspace root, counts the
 * workspaces (and removals in progress) on this host and keeps the largest count in
 * `<root>/.max` (one line per measurement in `<root>/.seen`); twice, a second apart, so the slot
 * is held a moment.
 */
export const MEASURE_SETUP: string = [
  'r=$(cd .. && pwd); m() { ( flock 8; n=$(ls -d "$r"/sbx-* "$r"/.sbx-*.tomb-* 2>/dev/null | wc -l)',
  'x=$(cat "$r/.max" 2>/dev/null || echo 0); [ "$n" -gt "$x" ] && echo "$n" > "$r/.max"',
  'echo "$n" >> "$r/.seen" ) 8>>"$r/.measure"; }; m; sleep 1; m',
].join("; ");

/** One `targets:` entry of {@linkcode writePoolProfile}. */
export interface PoolEntrySpec {
  /** Address of the sshd. */
  host: string;
  /** Its port. */
  port: number;
  /** Login user. */
  user: string;
  /** Private key. */
  identityFile: string;
  /** known_hosts holding the sshd's key. */
  knownHostsFile: string;
  /** Slots. */
  capacity: number;
  /** The entry's workspace root. */
  root: string;
}

/**
 * Write an ext.vm-packer pool profile `<dir>/<name>.yaml`.
 *
 * @param dir Directory.
 * @param name Profile name.
 * @param entries The hosts.
 * @param extra More top-level YAML lines.
 * @returns The file.
 */
export async function writePoolProfile(
  dir: string,
  name: string,
  entries: readonly PoolEntrySpec[],
  extra: readonly string[] = [],
): Promise<string> {
  const lines = [`id: profile.${name}`, "extension: ext.vm-packer", "targets:"];
  for (const entry of entries) {
    lines.push(
      `  - host: ${JSON.stringify(entry.host)}`,
      `    port: ${entry.port}`,
      `    user: ${JSON.stringify(entry.user)}`,
      `    identity_file: ${JSON.stringify(entry.identityFile)}`,
      `    known_hosts: ${JSON.stringify(entry.knownHostsFile)}`,
      `    capacity: ${entry.capacity}`,
      `    workspace_root: ${JSON.stringify(entry.root)}`,
    );
  }
  lines.push(...extra);
  const file = `${dir}/${name}.yaml`;
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  return file;
}

/**
 * The largest number of workspaces {@linkcode MEASURE_SETUP} saw at once under `root`, and how
 * many measurements were made.
 *
 * @param root The workspace root.
 * @returns The maximum and the count.
 */
export async function measured(root: string): Promise<{ max: number; count: number }> {
  const max = Number((await Deno.readTextFile(`${root}/.max`).catch(() => "0")).trim());
  const seen = await Deno.readTextFile(`${root}/.seen`).catch(() => "");
  return { max, count: seen.split("\n").filter(Boolean).length };
}

/**
 * The lease directories (`slot-N`) and waiter markers left under a workspace root.
 *
 * @param root The workspace root.
 * @returns `<entry key>/slot-N` and `<entry key>/waiters/<name>` paths.
 */
export async function leasesLeft(root: string): Promise<string[]> {
  const pool = `${root}/.sbx-pool`;
  if (!(await exists(pool))) return [];
  const left: string[] = [];
  for (const key of await listDir(pool)) {
    for (const name of await listDir(`${pool}/${key}`)) {
      if (name.startsWith("slot-")) left.push(`${key}/${name}`);
    }
    for (const name of await listDir(`${pool}/${key}/waiters`).catch(() => [])) {
      left.push(`${key}/waiters/${name}`);
    }
  }
  return left;
}
