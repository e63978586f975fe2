/**
 * Leak reaping from the host side: list the `<root>/sbx-<id>/` workspaces
 * (and `<root>/.sbx-<id>.tomb-<nonce>/` tombstones of removals that were cut
 * short) on a target together with their `.sandboxer.json` markers, so
 * `sandboxer gc --target` can find workspaces no local record knows (made
 * from another machine, or whose record was lost). Removal reuses
 * REMOVE_WORKSPACE, which re-checks the marker's id and nonce on the host.
 *
 * The listing is one constant remote script that gets the root as a
 * positional argument; it only reads. Entries whose name is not
 * `sbx-<valid id>` are never listed, and nothing without a readable marker
 * naming its own directory is ever offered for removal.
 *
 * @module
 */

import { ID_SOURCE } from "../../core/ids.ts";
import type { TargetScan, WorkspaceMarker } from "../types.ts";
import { WorkspaceError } from "../../core/errors.ts";
import type { SshConnection } from "../../transport/ssh/connection.ts";
import { MARKER_FILE, SCRIPT_EXIT } from "./remote_scripts.ts";

/** Bytes of a marker the listing reads; ours are about 200. */
const MARKER_READ_LIMIT = 4096;

/**
 * `sh -c LIST_MARKED_WORKSPACES sh ROOT`: one line per `ROOT/sbx-*` entry
 * whose name is `sbx-` plus id characters:
 *
 * - `M<TAB>name<TAB>marker` — a directory with a regular-file marker (its
 *   first 4 KiB, newlines and tabs turned into spaces);
 * - `U<TAB>name` — a directory without one (or whose marker is a symlink);
 * - `L<TAB>name` — a symlink; `F<TAB>name` — anything else.
 *
 * Tombstones (`.sbx-<id>.tomb-<nonce>`) are listed the same way.
 * Exit 90 when ROOT is not a directory. Symlinks are never followed.
 */
export const LIST_MARKED_WORKSPACES = `
root=$1
if [ ! -d "$root" ]; then
  echo "workspace root $root does not exist or is not a directory" >&2; exit ${SCRIPT_EXIT.noRoot}
fi
for ws in "$root"/sbx-* "$root"/.sbx-*.tomb-*; do
  name=\${ws##*/}
  case $name in sbx-|sbx-*[!a-z0-9-]*|.sbx-*[!a-z0-9.-]*) continue ;; esac
  if [ -L "$ws" ]; then printf 'L\\t%s\\n' "$name"; continue; fi
  [ -e "$ws" ] || continue
  if [ ! -d "$ws" ]; then printf 'F\\t%s\\n' "$name"; continue; fi
  marker="$ws/${MARKER_FILE}"
  if [ -f "$marker" ] && [ ! -L "$marker" ]; then
    printf 'M\\t%s\\t' "$name"
    head -c ${MARKER_READ_LIMIT} -- "$marker" 2>/dev/null | tr '\\n\\t' '  '
    printf '\\n'
  else
    printf 'U\\t%s\\n' "$name"
  fi
done
`;

const NAME = new RegExp(`^sbx-(${ID_SOURCE})$`);
const TOMBSTONE = new RegExp(`^\\.sbx-(${ID_SOURCE})\\.tomb-([0-9a-f]{32}|legacy)$`);
const NONCE = /^[0-9a-f]{32}$/;

function optionalString(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/**
 * Read the listing's output.
 *
 * @param output What {@linkcode LIST_MARKED_WORKSPACES} printed.
 * @param root The root it listed.
 * @param target `user@host:port`, for the report.
 * @returns Marked workspaces (marker parsed and naming its own directory), and the rest as ignored.
 */
export function parseMarkedWorkspaces(output: string, root: string, target: string): TargetScan {
  const scan: TargetScan = { target, root, markers: [], ignored: [] };
  for (const line of output.split("\n")) {
    if (line === "") continue;
    const [kind, name, ...rest] = line.split("\t");
    const match = NAME.exec(name ?? "");
    const tomb = TOMBSTONE.exec(name ?? "");
    if (!match && !tomb) continue;
    const id = match ? match[1] : (tomb as RegExpExecArray)[1];
    const workspace = `${root}/${name}`;
    if (kind === "L") {
      scan.ignored.push({ workspace, reason: "a symlink, not a workspace" });
    } else if (kind === "F") {
      scan.ignored.push({ workspace, reason: "not a directory" });
    } else if (kind === "U") {
      scan.ignored.push({ workspace, reason: `no ${MARKER_FILE} marker` });
    } else if (kind === "M") {
      const marker = parseMarker(rest.join(" "), id, workspace);
      if (typeof marker === "string") scan.ignored.push({ workspace, reason: marker });
      else if (tomb && marker.nonce !== (tomb[2] === "legacy" ? null : tomb[2])) {
        scan.ignored.push({ workspace, reason: "a tombstone whose marker holds another nonce" });
      } else scan.markers.push({ ...marker, tombstone: tomb !== null });
    }
  }
  return scan;
}

/** The marker, or why it cannot be trusted. */
function parseMarker(text: string, id: string, workspace: string): WorkspaceMarker | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return `its ${MARKER_FILE} marker is not valid JSON`;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return `its ${MARKER_FILE} marker is not a JSON object`;
  }
  const fields = value as Record<string, unknown>;
  if (fields.id !== id) {
    return `its ${MARKER_FILE} marker names another sandbox (${JSON.stringify(fields.id)})`;
  }
  const nonce = fields.nonce;
  if (nonce !== undefined && (typeof nonce !== "string" || !NONCE.test(nonce))) {
    return `its ${MARKER_FILE} marker has an unreadable nonce`;
  }
  const expires = fields.expires_at;
  if (expires !== null && expires !== undefined && typeof expires !== "string") {
    return `its ${MARKER_FILE} marker has an unreadable expires_at`;
  }
  if (typeof expires === "string" && Number.isNaN(Date.parse(expires))) {
    return `its ${MARKER_FILE} marker has an unreadable expires_at (${JSON.stringify(expires)})`;
  }
  return {
    id,
    workspace,
    nonce: typeof nonce === "string" ? nonce : null,
    tombstone: false,
    profile: optionalString(fields.profile),
    creator: optionalString(fields.creator),
    created_at: optionalString(fields.created_at),
    expires_at: typeof expires === "string" ? expires : null,
  };
}

/**
 * List the marked workspaces under `root` on a connected host.
 *
 * @param connection An open connection to the target.
 * @param root The workspace root (already checked by the profile parser).
 * @param options Abort signal.
 * @returns The scan.
 * @throws {WorkspaceError} when the root does not exist or cannot be listed.
 */
export async function scanMarkedWorkspaces(
  connection: SshConnection,
  root: string,
  options: { signal?: AbortSignal } = {},
): Promise<TargetScan> {
  const result = await connection.run(["sh", "-c", LIST_MARKED_WORKSPACES, "sh", root], {
    signal: options.signal,
  });
  const target = `${connection.target.user}@${connection.target.host}:${connection.target.port}`;
  if (result.code !== 0) {
    const detail = result.stderr.trim().split("\n").at(-1) ?? "";
    throw new WorkspaceError(
      root,
      result.code === SCRIPT_EXIT.noRoot
        ? `cannot be scanned on ${target}: ${detail}; check workspace.root in the profile`
        : `cannot be scanned on ${target} (exit ${result.code}${
          detail ? `: ${detail}` : ""
        }); check the login user may read it`,
    );
  }
  return parseMarkedWorkspaces(result.stdout, root, target);
}
