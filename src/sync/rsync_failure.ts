/**
 * What an rsync failure means: ssh's (connect, host key, authentication, a
 * pre-auth drop, no remote rsync), the receiving disk's, or rsync's own.
 *
 * @module
 */

import { CommandFailedError, HostKeyError, SshError, WorkspaceError } from "../core/errors.ts";
import { describe, preAuthDrop } from "../transport/ssh/errors.ts";
import type { RsyncPlan } from "./rsync_types.ts";

/** Exit code rsync uses when source files vanished during the transfer. */
export const RSYNC_VANISHED = 24;
/** Exit code of rsync's "error in file I/O" (a write failed: disk full, read-only, …). */
const RSYNC_FILE_IO = 11;
/** Exit code rsync reports when the remote shell found no rsync. */
export const REMOTE_COMMAND_NOT_FOUND = 127;
/** Exit code rsync passes on when ssh itself failed. */
const SSH_FAILED = 255;

/**
 * Tell ssh's failures (connect, host key, auth, no remote rsync) from rsync's own.
 *
 * @param plan The plan that failed.
 * @param argv rsync's argv, for the generic error.
 * @param code rsync's exit status.
 * @param stderr rsync's stderr.
 * @returns The typed error.
 */
export function rsyncFailure(
  plan: RsyncPlan,
  argv: readonly string[],
  code: number,
  stderr: string,
): Error {
  const where = describe(plan.target);
  // rsync prefixes its own lines; the rest came from ssh or the remote shell.
  const foreign = stderr.split("\n").map((l) => l.trim()).filter((l) =>
    l && !l.startsWith("rsync")
  );
  const detail = foreign.slice(-2).join(" | ");
  if (code === REMOTE_COMMAND_NOT_FOUND) {
    return new SshError(
      where,
      "sync",
      `rsync is not installed on the remote host (${
        detail || "command not found"
      }); install rsync there, or sync over SFTP`,
    );
  }
  // The receiving side could not write: on a push that is the host's disk. rsync sometimes
  // loses the host's message (the connection ends first), so exit 11 alone says it too.
  const enospc = /No space left on device|Disk quota exceeded/.exec(stderr);
  if (plan.direction !== "pull" && (enospc || code === RSYNC_FILE_IO)) {
    const why = stderr.split("\n").map((l) => l.trim()).filter((l) =>
      l.startsWith("rsync:") && !l.startsWith("rsync error:")
    ).at(-1);
    return new WorkspaceError(
      plan.remoteLabel ?? plan.remoteDir,
      enospc
        ? `could not be written on ${where}: the disk is full (${
          enospc[0]
        }); free space on the host, put workspace.root on a larger disk, or leave big files out with sync.exclude`
        : `could not be written on ${where} (${
          why ?? "rsync file I/O error, exit 11, and no detail from the host"
        }); the disk is most likely full: check free space there (df), then free some, use a larger disk, or leave big files out with sync.exclude`,
    );
  }
  // Logged in, then lost: keepalive timeout, reset or the server gone mid-transfer. Blaming the
  // login settings (below) would send the user the wrong way.
  if (
    /Timeout, server \S+ not responding|client_loop: send disconnect|Connection to \S+ closed by remote host|connection unexpectedly closed \([1-9]\d* bytes received so far\)/
      .test(stderr)
  ) {
    return new SshError(
      where,
      "sync",
      `the connection was lost during the transfer (${
        detail || `rsync exit ${code}`
      }); check the network and the host, then sync again`,
    );
  }
  // ssh prints this when the server closed before sending its banner: sshd's MaxStartups.
  if (/kex_exchange_identification|ssh_exchange_identification/.test(stderr)) {
    return preAuthDrop(plan.target, detail);
  }
  if (/Host key verification failed/.test(stderr)) {
    const pinned = plan.target.pinnedHostKey;
    // ssh prints the offered key's fingerprint in its "has changed" banner.
    const offered = /SHA256:[A-Za-z0-9+/]{43}/.exec(stderr)?.[0];
    if (pinned !== undefined) {
      const host = plan.target.host.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
      const name = plan.target.port === 22 ? host : `[${host}]:${plan.target.port}`;
      return new HostKeyError(name, offered ?? "an unknown key", "pinned", "known_hosts", {
        pinned,
      });
    }
    return new SshError(
      where,
      "connect",
      `host key verification failed against ${plan.target.knownHostsFile}; check that file holds the server's current key`,
    );
  }
  if (
    code === SSH_FAILED || /connection unexpectedly closed \(0 bytes received so far\)/.test(stderr)
  ) {
    return new SshError(
      where,
      "connect",
      `ssh failed (${
        detail || `rsync exit ${code}`
      }); check the user, key and known_hosts, and that the host is reachable`,
    );
  }
  return new CommandFailedError(argv, code, stderr.slice(-4_000));
}
