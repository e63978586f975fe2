/**
 * A third-party extension run in a Deno Worker whose permissions are exactly
 * what its registration declares — seen from the manager as an ordinary
 * {@linkcode SandboxExtension}.
 *
 * @module
 */

import {
  ConfigError,
  type ConfigLocation,
  ExtensionError,
  formatLocation,
  PermissionError,
  SandboxerError,
} from "../../core/errors.ts";
import type {
  ConfigSchema,
  ConfigSource,
  ExtensionRegistration,
  JsonObject,
} from "../../config/types.ts";
import { SandboxExtension } from "../base.ts";
import type {
  CreateContext,
  ExecIO,
  ExtensionOptions,
  SandboxHandle,
  SyncOptions,
  SyncProgress,
  SyncReport,
} from "../types.ts";
import type { FromWorker, SourceTable, ToWorker, WireError } from "./protocol.ts";
import { grantable, type ResolvedPermissions, workerPermissions } from "./permissions.ts";

interface Hooks {
  recordHandle?: (handle: SandboxHandle) => Promise<void>;
  step?: (name: string) => Promise<void>;
  stdout?: (chunk: Uint8Array) => void;
  stderr?: (chunk: Uint8Array) => void;
  progress?: (progress: SyncProgress) => void;
  signal?: AbortSignal;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  hooks: Hooks;
}

/** An extension whose code runs confined to its declared permissions. */
export class ConfinedExtension extends SandboxExtension<unknown, SandboxHandle> {
  /** The registration id. */
  readonly id: string;
  #registration: ExtensionRegistration;
  #grants: ResolvedPermissions | "none";
  #withheld: ResolvedPermissions | undefined;
  #workspaces = new Map<string, string | null>();
  #worker: Worker | undefined;
  #ready: Promise<void> | undefined;
  #pending = new Map<number, Pending>();
  #nextId = 1;

  /**
   * Create it; the worker starts on the first call.
   *
   * @param registration The validated registration.
   * @param grants What its code may touch ("none" while only validating config).
   * @param options Logger and host-key policy.
   */
  constructor(
    registration: ExtensionRegistration,
    grants: ResolvedPermissions | "none",
    options: ExtensionOptions = {},
  ) {
    super(options);
    this.id = registration.id;
    this.#registration = registration;
    this.#grants = grants;
  }

  /**
   * Validate the profile's config inside the worker.
   *
   * @param raw The profile's extension fields.
   * @param source Locations, for errors.
   * @param schema The registration's schema.
   * @returns The configuration.
   */
  override async loadConfig(
    raw: JsonObject,
    source: ConfigSource,
    schema: ConfigSchema,
  ): Promise<unknown> {
    return await this.#call("parseConfig", [raw, schema], {}, sourceTable(raw, source, schema));
  }

  /**
   * Not available synchronously across threads; the manager calls {@linkcode loadConfig}.
   *
   * @returns Never.
   */
  override parseConfig(): never {
    throw new ExtensionError(this.id, "is confined: call loadConfig(), which is asynchronous");
  }

  /**
   * Create the sandbox in the worker; handle and step updates reach the
   * journal before the extension goes on.
   *
   * @param ctx The create context.
   * @returns The handle.
   */
  override async create(ctx: CreateContext<unknown>): Promise<SandboxHandle> {
    const { recordHandle, step, signal, ...data } = ctx;
    const { handle, workspace } = await this.#call("create", [data], {
      recordHandle,
      step,
      signal,
    }) as { handle: SandboxHandle; workspace: string | null };
    this.#workspaces.set(JSON.stringify(handle), workspace);
    return handle;
  }

  /**
   * The workspace the extension reported for a handle it returned or
   * recorded; otherwise the handle's `workspace` field.
   *
   * @param handle A handle.
   * @returns The workspace path, if known.
   */
  override workspaceOf(handle: SandboxHandle): string | undefined {
    const known = this.#workspaces.get(JSON.stringify(handle));
    return known === undefined ? super.workspaceOf(handle) : known ?? undefined;
  }

  /**
   * Run a command through the extension.
   *
   * @param handle The stored handle.
   * @param argv Program and arguments.
   * @param io Output sinks and abort signal.
   * @returns The exit code.
   */
  override async exec(handle: SandboxHandle, argv: readonly string[], io: ExecIO): Promise<number> {
    return await this.#call("exec", [handle, [...argv], io.stdin], {
      stdout: io.stdout,
      stderr: io.stderr,
      signal: io.signal,
    }) as number;
  }

  /**
   * Sync through the extension.
   *
   * @param handle The stored handle.
   * @param from Local directory.
   * @param options Excludes, progress and abort.
   * @returns The report.
   */
  override async sync(
    handle: SandboxHandle,
    from: string,
    options: SyncOptions,
  ): Promise<SyncReport> {
    const { onProgress, signal, ...rest } = options;
    return await this.#call("sync", [handle, from, { ...rest, progress: !!onProgress }], {
      progress: onProgress,
      signal,
    }) as SyncReport;
  }

  /**
   * Copy a path back through the extension.
   *
   * @param handle The stored handle.
   * @param remotePath Path in the workspace.
   * @param localDir Local directory.
   * @param options Abort signal.
   */
  override async fetch(
    handle: SandboxHandle,
    remotePath: string,
    localDir: string,
    options: { signal?: AbortSignal },
  ): Promise<void> {
    await this.#call("fetch", [handle, remotePath, localDir], { signal: options.signal });
  }

  /**
   * Destroy through the extension.
   *
   * @param handle The stored handle.
   */
  override async destroy(handle: SandboxHandle): Promise<void> {
    await this.#call("destroy", [handle], {});
  }

  /** Let the extension close its connections, then stop the worker. */
  override async close(): Promise<void> {
    if (!this.#worker) return;
    try {
      await this.#call("close", [], {});
    } catch {
      // The worker is stopped below either way.
    }
    this.#worker.terminate();
    this.#worker = undefined;
    this.#ready = undefined;
    for (const pending of this.#pending.values()) {
      pending.reject(new ExtensionError(this.id, "was closed while a call was running"));
    }
    this.#pending.clear();
  }

  #start(): Promise<void> {
    if (this.#ready) return this.#ready;
    // --no-prompt matters: a narrowed worker could otherwise prompt past its ceiling on a TTY.
    const bootstrap = [
      `import { serve } from ${JSON.stringify(new URL("./worker_main.ts", import.meta.url).href)};`,
      `import * as extension from ${JSON.stringify(this.#registration.moduleUrl)};`,
      "serve(extension);",
    ].join("\n");
    let grants = this.#grants;
    if (grants !== "none") {
      const { granted, withheld } = grantable(grants);
      this.#withheld = withheld;
      grants = granted;
      for (const [kind, entries] of Object.entries(withheld)) {
        if (entries.length) {
          this.logger.debug(
            `${this.id}: withholding ${kind} access to ${
              entries.join(", ")
            }: sandboxer itself lacks it`,
          );
        }
      }
    }
    const worker = new Worker(`data:text/javascript;base64,${btoa(bootstrap)}`, {
      type: "module",
      name: this.id,
      deno: { permissions: workerPermissions(grants, this.#registration.moduleUrl) },
    });
    this.#worker = worker;
    this.#ready = new Promise<void>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<FromWorker>) => {
        const message = event.data;
        if (message.type === "ready") {
          if (message.extensionId !== this.id) {
            reject(
              new ExtensionError(
                this.id,
                `class "${this.#registration.export}" says its id is "${message.extensionId}"; make it match ${this.#registration.file}`,
              ),
            );
          } else resolve();
        } else if (message.type === "initError") {
          reject(this.#fromWire(message.error, "cannot be loaded"));
        } else {
          this.#onMessage(message);
        }
      };
      worker.onerror = (event) => {
        event.preventDefault();
        const error = new ExtensionError(this.id, `crashed: ${event.message}`);
        reject(error);
        for (const pending of this.#pending.values()) pending.reject(error);
        this.#pending.clear();
      };
    });
    worker.postMessage(
      {
        type: "init",
        moduleUrl: this.#registration.moduleUrl,
        exportName: this.#registration.export,
        acceptNewHostKey: this.options.acceptNewHostKey ?? false,
        home: this.options.home,
      } satisfies ToWorker,
    );
    return this.#ready;
  }

  async #call(method: string, args: unknown[], hooks: Hooks, source?: SourceTable) {
    await this.#start();
    const id = this.#nextId++;
    const onAbort = () => this.#post({ type: "abort", id });
    hooks.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await new Promise<unknown>((resolve, reject) => {
        this.#pending.set(id, { resolve, reject, hooks });
        this.#post({ type: "call", id, method, args, source });
      });
    } finally {
      hooks.signal?.removeEventListener("abort", onAbort);
    }
  }

  #post(message: ToWorker): void {
    this.#worker?.postMessage(message);
  }

  #onMessage(message: FromWorker): void {
    switch (message.type) {
      case "log":
        this.logger[message.level](`${this.id}: ${message.message}`);
        return;
      case "result":
      case "error": {
        const pending = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (!pending) return;
        if (message.type === "result") pending.resolve(message.value);
        else pending.reject(this.#fromWire(message.error, "failed"));
        return;
      }
      case "stdout":
      case "stderr":
        this.#pending.get(message.id)?.hooks[message.type]?.(message.chunk);
        return;
      case "progress":
        this.#pending.get(message.id)?.hooks.progress?.(message.progress as SyncProgress);
        return;
      case "recordHandle":
      case "step": {
        const hooks = this.#pending.get(message.id)?.hooks;
        if (message.type === "recordHandle") {
          this.#workspaces.set(JSON.stringify(message.handle), message.workspace);
        }
        const work = message.type === "recordHandle"
          ? hooks?.recordHandle?.(message.handle as SandboxHandle)
          : hooks?.step?.(message.name);
        Promise.resolve(work).then(
          () => this.#post({ type: "ack", id: message.ackId }),
          (error) =>
            this.#post({
              type: "ack",
              id: message.ackId,
              error: { name: "Error", message: String(error?.message ?? error) },
            }),
        );
        return;
      }
    }
  }

  #fromWire(error: WireError, verb: string): Error {
    if (error.name === "NotCapable") {
      const match = /Requires (\w+) access to "?([^",]+)"?/.exec(error.message);
      const kind = match?.[1] ?? "some";
      const what = match?.[2] ?? "a resource";
      const withheld = Object.values(this.#withheld ?? {}).some((list) => list.includes(what));
      if (withheld) {
        return new PermissionError(
          kind,
          `${what}, which extension ${this.id} declares but sandboxer itself was not given`,
          `--allow-${kind}=${what} on sandboxer's own command line`,
        );
      }
      return new PermissionError(
        kind,
        `${what} by extension ${this.id}, which its registration does not declare`,
        `permissions.${kind}: ["${what}"] in ${this.#registration.file} (only if the extension really needs it)`,
      );
    }
    if (error.name === "AbortError") return new DOMException(error.message, "AbortError");
    if (error.name === "ConfigError" && error.location) {
      const prefix = `${formatLocation(error.location)}: `;
      const problem = error.message.startsWith(prefix)
        ? error.message.slice(prefix.length)
        : error.message;
      return new ConfigError(error.location, problem);
    }
    if (error.code) {
      // The class itself cannot cross the thread boundary; its name and stable code do.
      const rebuilt = new SandboxerError(error.code, error.message);
      rebuilt.name = error.name;
      return rebuilt;
    }
    return new ExtensionError(this.id, `${verb}: ${error.message}`);
  }
}

/** Every located field of the raw config (and the schema's), for errors raised in the worker. */
function sourceTable(raw: JsonObject, source: ConfigSource, schema: ConfigSchema): SourceTable {
  const fields: Record<string, ConfigLocation> = {};
  const walk = (value: unknown, path: string) => {
    if (path) fields[path] = source.locate(path);
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, child] of Object.entries(value)) walk(child, path ? `${path}.${key}` : key);
    }
  };
  walk(raw, "");
  for (const path of Object.keys(schema)) fields[path] ??= source.locate(path);
  return { file: source.file, fields };
}
