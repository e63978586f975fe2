/**
 * The error hierarchy. Every failure the SDK raises on purpose is a
 * {@linkcode SandboxerError} subclass with a stable `code`; its message says
 * what is wrong and how to fix it, in one line. The classes live in
 * `errors/` by failure family; this barrel is the one place importers use.
 *
 * @module
 */

export {
  ERROR_CODES,
  type ErrorCode,
  errorText,
  isErrorCode,
  SandboxerError,
  UsageError,
} from "./errors/codes.ts";
export {
  ConfigError,
  type ConfigLocation,
  ExtensionError,
  formatLocation,
  ProfileNotFoundError,
} from "./errors/config.ts";
export {
  InvalidIdError,
  JournalError,
  OwnershipLostError,
  SandboxExistsError,
  SandboxInUseError,
  SandboxNotFoundError,
  SandboxStateError,
  StateDirError,
} from "./errors/sandbox.ts";
export {
  CommandFailedError,
  LocalFileError,
  localFileErrorFrom,
  MissingProgramError,
  PermissionError,
} from "./errors/local.ts";
export {
  HostKeyError,
  type HostKeyErrorDetails,
  type HostKeyProblem,
  SshError,
  type SshErrorOptions,
  type SshStage,
  TimeoutError,
} from "./errors/ssh.ts";
export {
  ComposeError,
  PortError,
  ServiceNotReadyError,
  SetupFailedError,
  WorkspaceError,
  WorkspaceGoneError,
} from "./errors/workspace.ts";
export { RsyncTooOldError, RsyncVersionError, SftpSyncError } from "./errors/sync.ts";
export { BootTimeoutError, ImageBuildError, ImageError, VmError } from "./errors/vm.ts";
export { PoolError, PoolFullError } from "./errors/pool.ts";
export { SnapshotError, SnapshotUnsupportedError } from "./errors/snapshot.ts";
