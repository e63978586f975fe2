/**
 * What an rsync run is given: the target, the plan, the local rsync's
 * capabilities and the run's options.
 *
 * @module
 */

import type { Logger, SyncProgress } from "../core/types.ts";

/** Where rsync connects; structurally a subset of the SSH transport's target. */
export interface RsyncTarget {
  /** Host name or address. */
  host: string;
  /** SSH port. */
  port: number;
  /** Login user. */
  user: string;
  /** Absolute path of the private key; without it ssh uses the agent. */
  identityFile?: string;
  /** Absolute path of the known_hosts file to check the host key against. */
  knownHostsFile: string;
  /**
   * The fingerprint `knownHostsFile` was written to hold alone (the pin from
   * create); only named in the error when ssh refuses the server's key.
   */
  pinnedHostKey?: string;
  /** SSH_AUTH_SOCK path to hand to ssh (needed for encrypted keys: ssh cannot prompt). */
  agent?: string;
  /** Bound on TCP connect. @default {15000} */
  connectTimeoutMs?: number;
  /** Interval of ssh's server-alive probes (3 unanswered end the transfer). @default {5000} */
  keepaliveIntervalMs?: number;
  /** Host to hop through first (one level; its own `jump` is not supported here). */
  jump?: RsyncTarget;
}

/** What to sync, and how. */
export interface RsyncPlan {
  /** The local directory: what is sent on push, where files land on pull. */
  source: string;
  /** The remote machine. */
  target: RsyncTarget;
  /**
   * The remote directory: absolute, or `.` / `./a/b` relative to the
   * directory the remote command runs in (see `rsyncPath`).
   */
  remoteDir: string;
  /**
   * The remote command that starts rsync, as an argv quoted here with the one
   * quoter and passed as `--rsync-path`; rsync appends `--server …` to it.
   * Default: `rsync` from the remote PATH.
   */
  rsyncPath?: readonly string[];
  /** How errors name the remote directory (default `remoteDir`; useful when that is relative). */
  remoteLabel?: string;
  /** Exclude patterns (rsync syntax), each passed as `--exclude=<p>`. */
  exclude: readonly string[];
  /** Honour `.gitignore` files found in the tree (`--filter=':- .gitignore'`). */
  gitignore: boolean;
  /**
   * Filter arguments that choose the files instead of `gitignore` (from
   * `selectFiles()` in git_selection.ts: git's own listing in a work tree).
   */
  selection?: readonly string[];
  /** Delete files in the receiving directory that the sender does not have. */
  delete: boolean;
  /** Ask rsync for overall progress. */
  progress: boolean;
  /** An ssh config file for ssh to read; default none (`-F /dev/null`). */
  sshConfigFile?: string;
  /**
   * The remote shell's argv for rsync's `-e` (a mux client of a shared
   * connection), in place of the ssh built from `target`; `target.host`
   * then names the host as that argv knows it (the master's alias).
   */
  rsh?: readonly [string, ...string[]];
  /** Push (local → remote, the default) or pull (remote → local). */
  direction?: "push" | "pull";
  /**
   * Pull only: copy the remote path itself (a file or a directory) into the
   * local directory, instead of the remote directory's contents.
   */
  remoteEntry?: boolean;
}

/** What the local rsync can do, from {@linkcode probeRsync}. */
export interface RsyncCapabilities {
  /** Version such as `3.2.7`. */
  version: string;
  /** True from 3.2.4 on: remote arguments are escaped against the remote shell by default. */
  protectsArgsByDefault: boolean;
}

/** Options for {@linkcode runRsync}. */
export interface RunRsyncOptions {
  /** Called as bytes move (needs `plan.progress`). */
  onProgress?: (progress: SyncProgress) => void;
  /** Aborting it stops rsync. */
  signal?: AbortSignal;
  /** Where to log the command and warnings. */
  logger?: Logger;
  /**
   * Turn a failure the remote command explained on stderr (such as a
   * workspace wrapper's refusal) into its own error; undefined leaves it to
   * the usual mapping.
   */
  explainFailure?: (stderr: string) => Error | undefined;
}
