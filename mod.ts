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
  Journal,
  randomId,
  type SandboxRecord,
  type SandboxStatus,
  validateId,
} from "./src/core/journal.ts";
export { SandboxExtension, silentLogger } from "./src/extensions/base.ts";
export type {
  CreateContext,
  ExecIO,
  ExtensionOptions,
  Logger,
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
export { listProfiles, loadProfile, profileSearchPath } from "./src/config/profile.ts";
export { loadRegistrations, parseRegistration } from "./src/config/registration.ts";
export { validateConfig } from "./src/config/schema.ts";
export { shellQuote } from "./src/transport/quote.ts";
export * from "./src/core/errors.ts";
