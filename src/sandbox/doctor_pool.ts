/**
 * `sandboxer doctor` for a pool (`targets:`): one line per host, ✓ when it
 * can hold sandboxes (reachable, host key known, login works, workspace root
 * writable, flock(1) present for the leases), else ✗ with the first problem
 * and its fix. An unreachable host does not stop the others' checks.
 *
 * @module
 */

import { errorText, HostKeyError } from "../core/errors.ts";
import type { FixedTarget } from "../extensions/base.ts";
import { connectSsh } from "../transport/ssh/connection.ts";
import type { SshConnection } from "../transport/ssh/connection.ts";
import type { DoctorCheck } from "./doctor_check.ts";

/** The single-host checks of doctor.ts that a pool host reuses. */
export interface HostChecks {
  /** Bare TCP reachability. */
  tcp(host: string, port: number): Promise<DoctorCheck>;
  /** The workspace root exists and is writable. */
  root(connection: SshConnection, root: string, signal?: AbortSignal): Promise<DoctorCheck>;
}

/**
 * Check one host of a pool; one line.
 *
 * @param host The host's target, root, label and capacity.
 * @param checks The single-host checks.
 * @param signal Abort signal.
 * @returns The check.
 */
export async function poolHostCheck(
  host: FixedTarget & { label: string; capacity: number },
  checks: HostChecks,
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const name = `pool host ${host.label} (capacity ${host.capacity})`;
  const fail = (check: DoctorCheck): DoctorCheck => ({ ...check, line: `${name}: ${check.line}` });
  const tcp = await checks.tcp(host.target.host, host.target.port);
  if (!tcp.ok) return fail(tcp);
  let connection: SshConnection;
  try {
    connection = await connectSsh(host.target, { signal });
  } catch (error) {
    const unknownKey = error instanceof HostKeyError && error.reason === "unknown";
    return fail({
      ok: false,
      line: errorText(error).split("\n")[0],
      fix: unknownKey
        ? `compare the fingerprint with the host's own, then rerun with --accept-new-host-key to add it to ${host.target.knownHostsFile}`
        : error instanceof HostKeyError
        ? `find out why the key changed before trusting it; see ${host.target.knownHostsFile}`
        : "check the entry's user and identity_file and the key's entry in ~/.ssh/authorized_keys on the host",
    });
  }
  try {
    const root = await checks.root(connection, host.root, signal);
    if (!root.ok) return fail(root);
    const flock = await connection.run(
      ["sh", "-c", 'command -v "$1" >/dev/null 2>&1', "sh", "flock"],
      { signal },
    );
    if (flock.code !== 0) {
      return fail({
        ok: false,
        line: "flock(1) is missing there; the pool's leases need it",
        fix: "install util-linux (or the flock package) on the host",
      });
    }
    return {
      ok: true,
      line:
        `${name}: reachable, host key known, login as ${host.target.user} works, ${host.root} writable, flock present`,
    };
  } finally {
    await connection.close();
  }
}
