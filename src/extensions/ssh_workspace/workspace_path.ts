/**
 * Rules for remote workspace paths: the root must be an absolute, normalised
 * directory that is not `/` or a system directory, and a workspace is always
 * exactly `<root>/sbx-<id>`, so teardown can never reach anything else.
 *
 * @module
 */

import { ID_SOURCE, validateId } from "../../core/ids.ts";
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
 * deleted: it must be `<acceptable root>/sbx-<valid id>` — and, when the
 * record's id is given, exactly `<root>/sbx-<that id>`, so a hand-edited
 * record cannot point a teardown at another sandbox's workspace.
 *
 * @param workspace The stored path.
 * @param recordId The id of the record the handle was read from, when known.
 * @returns The path and the sandbox id it names.
 * @throws {WorkspaceError} when it is anything else.
 *
 * @example
 * ```ts
 * import { checkWorkspacePath } from "./workspace_path.ts";
 * console.log(checkWorkspacePath("/build/sbx-k3f9", "k3f9").id); // k3f9
 * ```
 */
export function checkWorkspacePath(
  workspace: string,
  recordId?: string,
): { workspace: string; id: string } {
  const match = new RegExp(`^(.+)/sbx-(${ID_SOURCE})$`).exec(workspace);
  let problem = match ? workspaceRootProblem(match[1]) : "is not of the form <root>/sbx-<id>";
  if (!problem && match && recordId !== undefined && match[2] !== recordId) {
    problem = `is not <root>/sbx-${recordId}, the workspace of sandbox ${recordId}`;
  }
  if (problem || !match) {
    throw new WorkspaceError(
      workspace,
      `in the stored handle ${problem}; sandboxer will not delete it — inspect the journal record`,
    );
  }
  return { workspace, id: match[2] };
}

/** A creation nonce: 32 lowercase hex digits. */
const NONCE = /^[0-9a-f]{32}$/;

/**
 * A fresh random creation nonce (128 bits), for the marker and the handle.
 *
 * @returns 32 lowercase hex digits.
 */
export function newNonce(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Check the creation nonce of a stored handle.
 *
 * @param workspace The handle's workspace, for the error.
 * @param nonce The stored value: absent or null for a handle recorded before nonces existed.
 * @returns The nonce, or `""` for such an old handle.
 * @throws {WorkspaceError} when it is anything but 32 lowercase hex digits.
 */
export function checkNonce(workspace: string, nonce: unknown): string {
  if (nonce === undefined || nonce === null) return "";
  if (typeof nonce === "string" && NONCE.test(nonce)) return nonce;
  throw new WorkspaceError(
    workspace,
    `has a malformed creation nonce in the stored handle (${
      JSON.stringify(nonce)
    }); sandboxer will not touch it — inspect the journal record`,
  );
}

/**
 * Resolve a path given relative to the workspace (or absolute inside it),
 * refusing anything that would leave it: absolute paths elsewhere, `..`
 * segments, the workspace itself.
 *
 * @param workspace The workspace, `<root>/sbx-<id>`.
 * @param path The path the user gave.
 * @returns The path relative to the workspace, as `./a/b`.
 * @throws {WorkspaceError} when the path is not inside the workspace.
 *
 * @example
 * ```ts
 * import { pathInWorkspace } from "./workspace_path.ts";
 * console.log(pathInWorkspace("/build/sbx-1", "/build/sbx-1/dist//app.tar")); // ./dist/app.tar
 * ```
 */
export function pathInWorkspace(workspace: string, path: string): string {
  const relative = path.startsWith(`${workspace}/`) ? path.slice(workspace.length + 1) : path;
  const segments = relative.split("/").filter((s) => s !== "" && s !== ".");
  if (
    relative.startsWith("/") || segments.length === 0 || segments.includes("..") ||
    path.includes("\0")
  ) {
    throw new WorkspaceError(
      workspace,
      `cannot serve ${
        JSON.stringify(path)
      }: give a path inside the workspace, relative to it (e.g. dist/app.tar)`,
    );
  }
  return `./${segments.join("/")}`;
}
