/**
 * The local rsync's version and what it can do, probed once per process.
 *
 * @module
 */

import { RsyncVersionError } from "../core/errors.ts";
import { run } from "../process/run.ts";
import type { RsyncCapabilities } from "./rsync_types.ts";

/** major, minor, patch. */
export type Version = [number, number, number];

/**
 * Split a version string.
 *
 * @param version Such as `3.2.7`.
 * @returns Its three numbers (missing ones are 0).
 */
export function parseVersion(version: string): Version {
  const [a = 0, b = 0, c = 0] = version.split(".").map((n) => Number.parseInt(n, 10) || 0);
  return [a, b, c];
}

/**
 * Compare versions.
 *
 * @param version The version at hand.
 * @param wanted The least one that will do.
 * @returns Whether `version` is `wanted` or newer.
 */
export function atLeast(version: Version, wanted: Version): boolean {
  for (let i = 0; i < 3; i++) {
    if (version[i] !== wanted[i]) return version[i] > wanted[i];
  }
  return true;
}

/**
 * Read capabilities from `rsync --version` output.
 *
 * @param text The output.
 * @returns Version and argument-protection default.
 * @throws {RsyncVersionError} When no version can be found in it.
 *
 * @example
 * ```ts
 * import { parseRsyncVersion } from "./rsync_version.ts";
 * console.log(parseRsyncVersion("rsync  version 3.2.7  protocol version 31").protectsArgsByDefault); // true
 * ```
 */
export function parseRsyncVersion(text: string): RsyncCapabilities {
  const match = /\bversion\s+v?(\d+\.\d+(?:\.\d+)?)/.exec(text);
  if (!match) {
    throw new RsyncVersionError(text);
  }
  const version = match[1].split(".").length === 2 ? `${match[1]}.0` : match[1];
  return { version, protectsArgsByDefault: atLeast(parseVersion(version), [3, 2, 4]) };
}

let probed: Promise<RsyncCapabilities> | undefined;

/**
 * Probe the local rsync once per process (`rsync --version`).
 *
 * @returns Its capabilities.
 * @throws {MissingProgramError} When rsync is not installed.
 * @throws {PermissionError} When `--allow-run=rsync` is missing.
 */
export function probeRsync(): Promise<RsyncCapabilities> {
  probed ??= run(["rsync", "--version"], { timeoutMs: 10_000 })
    .then((result) => parseRsyncVersion(result.stdout))
    .catch((error) => {
      probed = undefined;
      throw error;
    });
  return probed;
}

/**
 * Whether `runRsyncOverConnection()` (rsync_relay.ts) can be used here: Linux (the
 * relay needs `/proc`) and a local rsync of 3.2.4 or newer (`--stderr=all`).
 *
 * @returns True when the relay works with this machine's rsync.
 * @throws {MissingProgramError} When rsync is not installed.
 * @throws {PermissionError} When `--allow-run=rsync` is missing.
 */
export async function rsyncRelaySupported(): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  return (await probeRsync()).protectsArgsByDefault;
}
