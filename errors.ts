/**
 * Every error sandboxer throws on purpose, with the types of their fields.
 * Each is a {@linkcode SandboxerError} with a stable `code`; the everyday ones
 * are re-exported from `@sandboxer/sandboxer` too.
 *
 * ```ts ignore
 * import { SandboxInUseError } from "@sandboxer/sandboxer/errors";
 * ```
 *
 * @module
 */

export {
  BootTimeoutError,
  CommandFailedError,
  ComposeError,
  ConfigError,
  type ConfigLocation,
  ERROR_CODES,
  type ErrorCode,
  ExtensionError,
  HostKeyError,
  type HostKeyErrorDetails,
  type HostKeyProblem,
  ImageBuildError,
  ImageError,
  InvalidIdError,
  isErrorCode,
  JournalError,
  LocalFileError,
  MissingProgramError,
  OwnershipLostError,
  PermissionError,
  PoolError,
  PoolFullError,
  PortError,
  ProfileNotFoundError,
  RsyncTooOldError,
  RsyncVersionError,
  SandboxerError,
  SandboxExistsError,
  SandboxInUseError,
  SandboxNotFoundError,
  SandboxStateError,
  ServiceNotReadyError,
  SetupFailedError,
  SftpSyncError,
  SnapshotError,
  SnapshotUnsupportedError,
  SshError,
  type SshErrorOptions,
  type SshStage,
  StateDirError,
  TimeoutError,
  UsageError,
  VmError,
  WorkspaceError,
  WorkspaceGoneError,
} from "./src/core/errors.ts";
