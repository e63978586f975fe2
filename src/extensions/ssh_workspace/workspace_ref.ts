/**
 * A handle's checked workspace as the remote scripts are told it, and the
 * errors of those scripts' refusals and failures.
 *
 * @module
 */

import { HostKeyError, WorkspaceError, WorkspaceGoneError } from "../../core/errors.ts";
import { handleTarget, type SshWorkspaceHandle } from "./handle.ts";
import { REFUSAL_PREFIX, SCRIPT_EXIT } from "./remote_scripts.ts";
import { checkNonce, checkWorkspacePath } from "./workspace_path.ts";

/** What the remote scripts are told about a workspace: path, id and creation nonce. */
export interface WorkspaceRef {
  /** `<root>/sbx-<id>`. */
  workspace: string;
  /** The sandbox id. */
  id: string;
  /** The creation nonce, or `""` for a workspace made before nonces. */
  nonce: string;
  /** `user@host:port`, for messages. */
  where: string;
}

/**
 * The checked workspace of a handle (and, given the record's id, of that record only).
 *
 * @param handle The stored handle.
 * @param recordId The record's id, when known.
 * @returns The workspace, its id and nonce, and where it is.
 */
export function workspaceRef(handle: SshWorkspaceHandle, recordId?: string): WorkspaceRef {
  const { workspace, id } = checkWorkspacePath(handle.workspace, recordId);
  return {
    workspace,
    id,
    nonce: checkNonce(workspace, handle["nonce"]),
    where: `${handleTarget(handle)}:${handle.ssh_port}`,
  };
}

/**
 * The pin error again, with the command that pins the offered key for this sandbox.
 *
 * @param error The refusal of a key that is not the pinned one.
 * @param handle The sandbox's handle.
 * @returns The error with the re-pin command.
 */
export function repinError(error: HostKeyError, handle: SshWorkspaceHandle): HostKeyError {
  const id = handle.workspace.slice(handle.workspace.lastIndexOf("/sbx-") + 5);
  const flag = `--accept-host-key ${error.fingerprint}`;
  return new HostKeyError(error.host, error.fingerprint, "pinned", handle.known_hosts, {
    pinned: error.pinned,
    knownHostsToo: error.knownHostsToo,
    repin:
      `run the command again with ${flag} right after "sandboxer" (e.g. "sandboxer ${flag} destroy ${id}"); that key is then pinned`,
  });
}

/**
 * A wrapper's REFUSAL_PREFIX line on stderr, as the error it stands for.
 *
 * @param ref The workspace.
 * @param stderr The wrapper's stderr.
 * @param verb What sandboxer was to do ("sync into").
 * @returns The error, or undefined when there is no such line.
 */
export function refusalFromStderr(
  ref: WorkspaceRef,
  stderr: string,
  verb: string,
): Error | undefined {
  const line = stderr.split("\n").find((l) => l.startsWith(REFUSAL_PREFIX));
  const match = line ? /^(\d+) (.*)$/.exec(line.slice(REFUSAL_PREFIX.length)) : null;
  return match ? workspaceRefusal(ref, Number(match[1]), match[2], verb) : undefined;
}

/**
 * Why a workspace wrapper did not run the work.
 *
 * @param ref The workspace.
 * @param code The wrapper's exit code.
 * @param why What it said.
 * @param verb What sandboxer was to do.
 * @returns The error, with the fix.
 */
export function workspaceRefusal(
  ref: WorkspaceRef,
  code: number,
  why: string,
  verb: string,
): Error {
  const reason = why.split("\n")[0] ?? "";
  switch (code) {
    case SCRIPT_EXIT.missing:
      return new WorkspaceGoneError(
        ref.workspace,
        `no longer exists on ${ref.where} (${reason}), so sandboxer cannot ${verb} it and will not recreate it; destroy this sandbox and create a new one`,
      );
    case SCRIPT_EXIT.otherNonce:
      return new WorkspaceGoneError(
        ref.workspace,
        `on ${ref.where} now holds another sandbox of the same name (${reason}), so this sandbox's workspace is gone; destroy this sandbox and create a new one`,
      );
    case SCRIPT_EXIT.badDirectory:
      return new WorkspaceError(
        ref.workspace,
        `refused the working directory: ${reason}; give -w a directory inside the workspace`,
      );
    case SCRIPT_EXIT.badPath:
      return new WorkspaceError(
        ref.workspace,
        `refused the path: ${reason}; give a path inside the workspace (symlinks are followed only within it)`,
      );
    case SCRIPT_EXIT.notOurs:
    case SCRIPT_EXIT.noMarker:
      return new WorkspaceError(
        ref.workspace,
        `on ${ref.where} is not the workspace sandboxer made (${reason}), so sandboxer will not ${verb} it; inspect it on the host, then destroy this sandbox`,
      );
    default:
      return new WorkspaceError(
        ref.workspace,
        `could not be checked on ${ref.where} before sandboxer would ${verb} it (exit ${code}${
          reason ? `: ${reason}` : ""
        }); check that the login user's shell is a POSIX sh`,
      );
  }
}

/**
 * Why a workspace script (make or remove) failed, by its exit code.
 *
 * @param workspace The workspace.
 * @param result The script's exit code and stderr.
 * @param action What it was to do.
 * @returns The error, with the fix.
 */
export function workspaceScriptError(
  workspace: string,
  result: { code: number; stderr: string },
  action: "create" | "remove",
): WorkspaceError {
  const detail = result.stderr.trim().split("\n").at(-1) ?? "";
  switch (result.code) {
    case SCRIPT_EXIT.noRoot:
      return new WorkspaceError(
        workspace,
        `cannot be created: ${detail}; create the root on the host (e.g. sudo install -d -o USER /build) or set workspace.root`,
      );
    case SCRIPT_EXIT.exists:
      return new WorkspaceError(
        workspace,
        "already exists on the host; pick another --name, or destroy the sandbox that owns it",
      );
    case SCRIPT_EXIT.notOurs:
    case SCRIPT_EXIT.noMarker:
      return new WorkspaceError(
        workspace,
        `was not removed: ${detail}; inspect it by hand — sandboxer only deletes workspaces it made`,
      );
    case SCRIPT_EXIT.removeFailed:
      return new WorkspaceError(
        workspace,
        `was only partly removed (${detail}); its tombstone keeps the marker: unmount anything mounted inside it, then run destroy or gc again to finish`,
      );
    default:
      return new WorkspaceError(
        workspace,
        `could not be ${action === "create" ? "created" : "removed"} (exit ${result.code}${
          detail ? `: ${detail}` : ""
        }); check the login user may write there`,
      );
  }
}
