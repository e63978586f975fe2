/**
 * sandboxer's SDK: create disposable sandboxes from profiles, run commands
 * and sync files in them, and tear them down without leaving anything
 * behind — or write a backend of your own by extending
 * {@linkcode SandboxExtension}.
 *
 * ```ts ignore
 * import { Manager } from "@sandboxer/sandboxer";
 *
 * await using manager = await Manager.open();
 * const box = await manager.create({ profile: "vm-haskell-build", repo: "." });
 * try {
 *   const code = await manager.exec(box.id, ["cabal", "build"], {
 *     stdout: (chunk) => Deno.stdout.write(chunk),
 *   });
 *   console.log("exit code", code);
 * } finally {
 *   await manager.destroy(box.id);
 * }
 * ```
 *
 * Boot mode of `ext.vm-packer` (throwaway VMs from Packer-built images) and
 * the port registry are reachable from the manager too:
 *
 * ```ts ignore
 * import { Manager } from "@sandboxer/sandboxer";
 *
 * await using manager = await Manager.open();
 * // packer build, cached by content: the same inputs reuse the image
 * const { image, built } = await manager.buildImage("vm-haskell-build-local");
 * console.log(built ? "built" : "cached", image.manifest.key);
 * // ports leased to sandboxes' VMs and to registered build VMs
 * await manager.ports().register("haskell-1", 12222);
 * console.log(await manager.ports().list());
 * ```
 *
 * @module
 */

export {
  type CreateOptions,
  type DestroyOptions,
  type GcReport,
  Manager,
  type ManagerOptions,
  type ManagerSyncOptions,
} from "./src/core/manager.ts";
export {
  HEARTBEAT_STALE_MS,
  Journal,
  type JournalListOptions,
  type JournalOptions,
  type JournalUpdateOptions,
  randomId,
  type SandboxInUse,
  type SandboxOwner,
  type SandboxRecord,
  type SandboxStatus,
  type SandboxUse,
  validateId,
} from "./src/core/journal.ts";
export type {
  GcTargetOptions,
  GcTargetReport,
  TargetScan,
  WorkspaceMarker,
} from "./src/core/gc_target.ts";
export { SandboxExtension, silentLogger } from "./src/extensions/base.ts";
export type {
  CreateContext,
  DestroyContext,
  ExecIO,
  ExtensionOptions,
  Logger,
  OrphanReapContext,
  SandboxHandle,
  SyncOptions,
  SyncProgress,
  SyncReport,
} from "./src/extensions/types.ts";
export type {
  ConfigSchema,
  ConfigSource,
  DeclaredPermissions,
  ExtensionRegistration,
  FieldSchema,
  FieldType,
  JsonObject,
  JsonValue,
  Profile,
  SyncSettings,
} from "./src/config/types.ts";
export {
  type ListedProfiles,
  listProfiles,
  loadProfile,
  type LoadProfileOptions,
  type ParseProfileOptions,
  profileSearchPath,
  type ProfileSearchPathOptions,
} from "./src/config/profile.ts";
export {
  type LoadedRegistrations,
  loadRegistrations,
  type LoadRegistrationsOptions,
  parseRegistration,
  type ParseRegistrationOptions,
} from "./src/config/registration.ts";
export { validateConfig, type ValidateOptions } from "./src/config/schema.ts";
export { type EmbeddedDir } from "./src/config/files.ts";
export {
  type ExtensionClass,
  ExtensionRegistry,
  type RegistryOptions,
} from "./src/extensions/registry.ts";
export { type RetryOptions } from "./src/core/async.ts";
export { type ResolvedPermissions } from "./src/extensions/confined/permissions.ts";
export { type EnvReader } from "./src/core/paths.ts";
export { shellQuote } from "./src/transport/quote.ts";
export {
  connectSsh,
  type ConnectSshOptions,
  type RawExecChannel,
  type RawExecOptions,
  type SftpSession,
  type SftpStat,
  SshConnection,
  type SshExecIO,
  type SshExecResult,
  SshPool,
  type SshPoolOptions,
  type SshRunOptions,
  type SshRunResult,
  type SshTarget,
} from "./src/transport/ssh.ts";
export { type ArtifactSpec, parseArtifact } from "./src/core/artifacts.ts";
export {
  type KeepPolicy,
  runInSandbox,
  type RunInSandboxOptions,
  type RunInSandboxResult,
} from "./src/core/run_sandbox.ts";
export {
  DEFAULT_PORT_RANGE,
  openPortRegistry,
  parsePortRange,
  portIsFree,
  type PortLease,
  type PortRange,
  PortRegistry,
  type PortRegistryOptions,
} from "./src/core/ports/registry.ts";
export type {
  CachedImage,
  ImageInputs,
  ImageManifest,
} from "./src/extensions/vm_packer/image/cache.ts";
export * from "./src/core/errors.ts";
