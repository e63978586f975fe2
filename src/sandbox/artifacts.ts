/**
 * `--artifact REMOTE_PATH[:LOCAL_DIR]` values.
 *
 * @module
 */

import { UsageError } from "../core/errors.ts";

/** One artifact to copy back: a path in the workspace and a local directory. */
export interface ArtifactSpec {
  /** Path relative to the workspace (or absolute inside it). */
  remote: string;
  /** Local directory to copy it into. */
  local: string;
}

/**
 * Parse `REMOTE_PATH[:LOCAL_DIR]` (local defaults to `.`).
 *
 * @param spec The `--artifact` value.
 * @returns The artifact.
 */
export function parseArtifact(spec: string): ArtifactSpec {
  const colon = spec.indexOf(":");
  const remote = colon === -1 ? spec : spec.slice(0, colon);
  const local = colon === -1 ? "." : spec.slice(colon + 1);
  if (remote === "" || local === "") {
    throw new UsageError(
      `Cannot use --artifact ${JSON.stringify(spec)}: write REMOTE_PATH or REMOTE_PATH:LOCAL_DIR`,
    );
  }
  return { remote, local };
}
