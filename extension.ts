/**
 * For extension authors: the base class, the contexts sandboxer passes to an
 * extension, the registration's schema types, the errors an extension throws
 * and an SSH API that runs commands given as an argv only.
 *
 * ```ts ignore
 * import { type CreateContext, type ExecIO, SandboxExtension, SshHosts } from "@sandboxer/sandboxer/extension";
 * ```
 *
 * See docs/extension-sdk.md and the worked example in examples/ext.ssh-dir.
 *
 * @module
 */

export { type FixedTarget, type PoolEntryConfig, SandboxExtension } from "./src/extensions/base.ts";
export { silentLogger } from "./src/core/types.ts";
export type {
  CreateContext,
  DestroyContext,
  ExtensionOptions,
  OrphanReapContext,
  SandboxHandle,
  SeedPolicy,
  SnapshotInfo,
  SnapshotOptions,
  SnapshotScan,
  SyncOptions,
  WaitProgress,
} from "./src/extensions/types.ts";
export type { ExecIO, Logger, SyncProgress, SyncReport } from "./src/core/types.ts";
export type {
  ConfigSchema,
  ConfigSource,
  DeclaredPermissions,
  FieldSchema,
  FieldType,
} from "./src/config/types.ts";
export type { JsonObject, JsonValue } from "./src/core/types.ts";
export type { TargetScan, WorkspaceMarker } from "./src/extensions/types.ts";
export type { RetryOptions } from "./src/core/async.ts";
export { type SshHost, SshHosts, type SshHostsOptions } from "./src/extensions/ssh_hosts.ts";
export type {
  SshExecIO,
  SshExecResult,
  SshRunOptions,
  SshRunResult,
  SshTarget,
} from "./src/transport/ssh/types.ts";
export {
  CommandFailedError,
  ConfigError,
  ExtensionError,
  HostKeyError,
  PermissionError,
  SandboxerError,
  SnapshotError,
  SnapshotUnsupportedError,
  SshError,
  TimeoutError,
  WorkspaceError,
  WorkspaceGoneError,
} from "./src/core/errors.ts";
