/**
 * Rules for remote workspace paths: the root must be an absolute, normalised
 * directory that is not `/` or a system directory, and a workspace is always
 * exactly `<root>/sbx-<id>`, so teardown can never reach anything else.
 *
 * @module
 */

import { validateId } from "../../core/journal.ts";
import { WorkspaceError } from "../../core/errors.ts";

/** Directories that may never be a workspace root. */
const SYSTEM_DIRS = new Set([
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/home",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  "/media",
  "/mnt",
  "/opt",
  "/proc",
  "/root",
  "/run",
  "/sbin",
  "/srv",
  "/sys",
  "/tmp",
  "/usr",
  "/usr/bin",
  "/usr/lib",
  "/usr/local",
  "/usr/sbin",
  "/usr/share",
  "/var",
  "/var/lib",
  "/var/tmp",
]);

/** Trees nothing of ours may live under. */
const SYSTEM_TREES = [
  "/bin/",
  "/boot/",
  "/dev/",
  "/etc/",
  "/lib/",
  "/lib64/",
  "/proc/",
  "/sbin/",
  "/sys/",
  "/usr/bin/",
  "/usr/lib/",
  "/usr/sbin/",
];

/**
 * Why a workspace root is refused, or undefined when it is acceptable.
 *
 * @param root The configured `workspace.root`.
 * @returns The problem, phrased to follow the field name.
 */
export function workspaceRootProblem(root: string): string | undefined {
  if (!root.startsWith("/")) return `must be an absolute path (got ${JSON.stringify(root)})`;
  if (root === "/" || /^\/+$/.test(root)) return "must not be the filesystem root /";
  if (/\/\/|\/\.\.?(\/|$)|\/$/.test(root)) {
    return `must be a normalised path without //, . or .. segments or a trailing / (got ${
      JSON.stringify(root)
    })`;
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(root)) return "must not contain control characters";
  // rsync and remote shells treat these as patterns: the root must name exactly one directory.
  if (/[*?[\]\\]/.test(root)) {
    return `must not contain the glob or rsync-special characters * ? [ ] \\ (got ${
      JSON.stringify(root)
    })`;
  }
  if (SYSTEM_DIRS.has(root)) return `must not be the system directory ${root}; use e.g. /build`;
  const tree = SYSTEM_TREES.find((t) => root.startsWith(t));
  if (tree) return `must not be inside the system directory ${tree.slice(0, -1)}; use e.g. /build`;
  return undefined;
}

/**
 * The workspace of sandbox `id` under `root`.
 *
 * @param root A root accepted by {@linkcode workspaceRootProblem}.
 * @param id A valid sandbox id.
 * @returns `<root>/sbx-<id>`.
 */
export function workspacePath(root: string, id: string): string {
  const problem = workspaceRootProblem(root);
  if (problem) throw new WorkspaceError(root, `cannot be used as workspace root: it ${problem}`);
  return `${root}/sbx-${validateId(id)}`;
}

/**
 * Check a workspace path read back from a stored handle before anything is
 * deleted: it must be `<acceptable root>/sbx-<valid id>`.
 *
 * @param workspace The stored path.
 * @returns The path.
 * @throws {WorkspaceError} when it is anything else.
 */
export function checkWorkspacePath(workspace: string): string {
  const match = /^(.+)\/sbx-([a-z0-9][a-z0-9-]{0,62})$/.exec(workspace);
  const problem = match ? workspaceRootProblem(match[1]) : "is not of the form <root>/sbx-<id>";
  if (problem) {
    throw new WorkspaceError(
      workspace,
      `in the stored handle ${problem}; sandboxer will not delete it — inspect the journal record`,
    );
  }
  return workspace;
}
