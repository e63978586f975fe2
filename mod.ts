/**
 * sandboxer's SDK: create disposable sandboxes from profiles, run commands
 * and sync files in them, and tear them down without leaving anything
 * behind — or write a backend of your own by extending
 * {@linkcode SandboxExtension}.
 *
 * ```ts ignore
 * import { Sandbox } from "@sandboxer/sandboxer";
 *
 * await using box = await Sandbox.create({ profile: "vm-haskell-build", repo: "." });
 * const { code, stdout } = await box.exec(["cabal", "build"]);
 * console.log(code, stdout);
 * await box.fetch("dist/hello", "dist");
 * // leaving the block destroys the sandbox
 * ```
 *
 * The {@linkcode Manager} underneath handles many sandboxes, the journal and gc:
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
 * Extension authors import from `@sandboxer/sandboxer/extension` (contexts,
 * schema types, an argv-only SSH API); every error class with its field
 * types is in `@sandboxer/sandboxer/errors`.
 *
 * @module
 */

export { Manager } from "./src/sandbox/manager.ts";
export type {
  CreateOptions,
  DestroyOptions,
  GcOptions,
  GcReport,
  ManagerOptions,
  ManagerSyncOptions,
} from "./src/sandbox/manager_options.ts";
export type { GcTargetOptions, GcTargetReport, PoolHostReport } from "./src/sandbox/gc_target.ts";
export type { SandboxOwner, SandboxRecord, SandboxStatus } from "./src/sandbox/record.ts";
export type { ResolvedPermissions } from "./src/extensions/confined/permissions.ts";
export type { ConfigSource, Profile, SyncSettings } from "./src/config/types.ts";
export { Sandbox, type SandboxExecResult } from "./src/sandbox/sandbox.ts";
export {
  type KeepPolicy,
  runInSandbox,
  type RunInSandboxOptions,
  type RunInSandboxResult,
} from "./src/sandbox/run_sandbox.ts";
export type { ArtifactSpec } from "./src/sandbox/artifacts.ts";
export { SandboxExtension } from "./src/extensions/base.ts";
export type { ExecIO, Logger, SyncProgress, SyncReport } from "./src/core/types.ts";
export type { PortLease, PortRange, PortRegistry } from "./src/core/ports/registry.ts";
export type {
  CachedImage,
  ImageInputs,
  ImageManifest,
} from "./src/extensions/vm_packer/image/cache.ts";
export { ConfigError, type ErrorCode, PermissionError, SandboxerError } from "./src/core/errors.ts";
