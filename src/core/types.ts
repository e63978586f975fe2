/**
 * Types every layer shares: JSON values, where log lines go, how a command's
 * streams are wired, and what a sync reports. They live at the bottom so that
 * process/, transport/ and sync/ need nothing from the layers above them.
 *
 * @module
 */

/** A JSON value, as stored in the journal and exchanged with extensions. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/** Where log lines go. The SDK never writes to the console itself. */
export interface Logger {
  /** Detail useful when debugging. */
  debug(message: string): void;
  /** Progress a user wants to see. */
  info(message: string): void;
  /** Something went wrong but work continues. */
  warn(message: string): void;
  /** Something failed. */
  error(message: string): void;
}

/** A logger that drops everything: the SDK's default. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** Streams for `SandboxExtension.exec`. */
export interface ExecIO {
  /** Receives stdout chunks as they arrive. */
  stdout?: (chunk: Uint8Array) => void;
  /** Receives stderr chunks as they arrive. */
  stderr?: (chunk: Uint8Array) => void;
  /**
   * Data for the command's stdin: bytes, or a stream read as the command
   * consumes it (with backpressure); stdin is closed after the last byte.
   */
  stdin?: Uint8Array | ReadableStream<Uint8Array>;
  /** Aborting it stops the command. */
  signal?: AbortSignal;
  /**
   * A directory relative to the workspace to run in. The extension resolves
   * it on the host (symlinks followed) and must refuse one outside the
   * workspace; one that cannot keep that promise must refuse any `cwd`.
   */
  cwd?: string;
  /**
   * Share one OpenSSH connection between processes (what the CLI's `exec`
   * does): an SSH-attached backend runs the command through a background
   * `ssh` master (ControlMaster) that stays up `persistSeconds` after its
   * last use, and connects as before when it cannot. Needs `--allow-run=ssh`
   * and `--allow-net` (the control socket). Others ignore it.
   */
  sshMux?: { persistSeconds: number };
}

/** Progress of a running sync. */
export interface SyncProgress {
  /** Bytes transferred so far. */
  bytes: number;
  /** Percent done (0-100) when known. */
  percent?: number;
  /** Current file, when known. */
  file?: string;
  /** Files transferred so far, when known (rsync's `xfr#`). */
  files?: number;
}

/** What a sync did. */
export interface SyncReport {
  /** How the files were moved (`tar`: one stream into an empty workspace). */
  method: "rsync" | "sftp" | "tar";
  /** Files sent (created or updated). */
  files: number;
  /** Files deleted on the remote side. */
  deleted: number;
  /** Bytes sent. */
  bytes: number;
  /**
   * A note on how the files were chosen (e.g. the source is not in a git
   * work tree), shown after the sync succeeded so a failure stays one line.
   */
  notice?: string;
}
