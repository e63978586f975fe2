/**
 * A third-party extension run in a Deno Worker whose permissions are exactly
 * what its registration declares — seen from the manager as an ordinary
 * {@linkcode SandboxExtension}.
 *
 * @module
 */

import { type ConfigLocation, ExtensionError } from "../../core/errors.ts";
import type { ConfigSchema, ConfigSource, ExtensionRegistration } from "../../config/types.ts";
import type { JsonObject } from "../../core/types.ts";
import { SandboxExtension } from "../base.ts";
import type { CreateContext, ExtensionOptions, SandboxHandle, SyncOptions } from "../types.ts";
import type { ExecIO, SyncProgress, SyncReport } from "../../core/types.ts";
import {
  checkFromWorker,
  checkResult,
  type FromWorker,
  type Method,
  ProtocolViolation,
  type SourceTable,
  type ToWorker,
} from "./protocol.ts";
import {
  type ExtensionCode,
  extensionCode,
  grantable,
  type ResolvedPermissions,
  workerPermissions,
} from "./permissions.ts";
import {
  brokenError,
  checkHeld,
  escalationError,
  type FailureContext,
  firstLine,
  fromWire,
} from "./failures.ts";
import { entryUrl } from "./sdk_paths.ts";

interface Hooks {
  recordHandle?: (handle: SandboxHandle) => Promise<void>;
  step?: (name: string) => Promise<void>;
  stdout?: (chunk: Uint8Array) => void;
  stderr?: (chunk: Uint8Array) => void;
  progress?: (progress: SyncProgress) => void;
  signal?: AbortSignal;
}

interface Pending {
  method: Method;
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
  #code: ExtensionCode | undefined;
  #worker: Worker | undefined;
  #ready: Promise<void> | undefined;
  #booting: { resolve: () => void; reject: (error: Error) => void } | undefined;
  #stopped: Error | undefined;
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
    // A stream cannot cross into the worker: its bytes are read first (confined stdin is buffered).
    const stdin = io.stdin instanceof ReadableStream
      ? new Uint8Array(await new Response(io.stdin).arrayBuffer())
      : io.stdin;
    return await this.#call("exec", [handle, [...argv], stdin, io.cwd], {
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
    this.#stop(new ExtensionError(this.id, "was closed while a call was running"));
  }

  #start(): Promise<void> {
    this.#ready ??= this.#boot();
    return this.#ready;
  }

  async #boot(): Promise<void> {
    const code = await extensionCode(this.id, this.#registration.moduleUrl, {
      home: this.options.home,
      stateDir: this.options.stateDir,
    });
    this.#code = code;
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
    checkHeld(this.#failures(), code);
    const permissions = workerPermissions(grants, code);
    let worker: Worker;
    try {
      // --no-prompt matters: a narrowed worker could otherwise prompt past its ceiling on a TTY.
      worker = new Worker(await entryUrl(), {
        type: "module",
        name: this.id,
        deno: { permissions },
      });
    } catch (error) {
      throw escalationError(this.#failures(), error, permissions);
    }
    this.#worker = worker;
    const ready = new Promise<void>((resolve, reject) => {
      this.#booting = { resolve, reject };
    });
    worker.onmessage = (event: MessageEvent<unknown>) => {
      if (this.#worker !== worker) return;
      try {
        this.#onMessage(checkFromWorker(event.data));
      } catch (error) {
        this.#stop(brokenError(this.#failures(), error));
      }
    };
    worker.onmessageerror = () => {
      if (this.#worker === worker) {
        this.#stop(
          brokenError(this.#failures(), new ProtocolViolation("a message could not be read")),
        );
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      if (this.#worker === worker) {
        this.#stop(new ExtensionError(this.id, `crashed: ${firstLine(String(event.message))}`));
      }
    };
    worker.postMessage(
      {
        type: "init",
        moduleUrl: code.url,
        exportName: this.#registration.export,
        acceptNewHostKey: this.options.acceptNewHostKey ?? false,
        home: this.options.home,
      } satisfies ToWorker,
    );
    await ready;
  }

  /** What a failure message names, as things stand now (the code is found at boot). */
  #failures(): FailureContext {
    return {
      id: this.id,
      registrationFile: this.#registration.file,
      withheld: this.#withheld,
      codeDir: this.#code?.dir,
    };
  }

  /** End the worker and fail whatever waits on it; the next call starts a fresh one. */
  #stop(error: Error): void {
    this.#stopped = error;
    const worker = this.#worker;
    this.#worker = undefined;
    this.#ready = undefined;
    worker?.terminate();
    const booting = this.#booting;
    this.#booting = undefined;
    booting?.reject(error);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const call of pending) call.reject(error);
  }

  async #call(method: Method, args: unknown[], hooks: Hooks, source?: SourceTable) {
    await this.#start();
    if (!this.#worker) {
      // It was stopped (a crash, a bad message) between loading and this call.
      throw this.#stopped ?? new ExtensionError(this.id, `stopped before ${method}() could run`);
    }
    const id = this.#nextId++;
    const onAbort = () => this.#post({ type: "abort", id });
    hooks.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await new Promise<unknown>((resolve, reject) => {
        this.#pending.set(id, { method, resolve, reject, hooks });
        this.#post({ type: "call", id, method, args, source });
      });
    } finally {
      hooks.signal?.removeEventListener("abort", onAbort);
    }
  }

  #post(message: ToWorker): void {
    this.#worker?.postMessage(message);
  }

  /** Act on a checked message; throws {@linkcode ProtocolViolation} for one that does not fit. */
  #onMessage(message: FromWorker): void {
    if (message.type === "log") {
      this.logger[message.level](`${this.id}: ${message.message}`);
      return;
    }
    if (message.type === "crashed") {
      this.#stop(new ExtensionError(this.id, `crashed: ${firstLine(message.error.message)}`));
      return;
    }
    if (message.type === "ready" || message.type === "initError") {
      const booting = this.#booting;
      if (!booting) throw new ProtocolViolation(`"${message.type}" after the extension was loaded`);
      this.#booting = undefined;
      if (message.type === "initError") {
        const error = fromWire(this.#failures(), message.error, "cannot be loaded");
        this.#stop(error);
        booting.reject(error);
      } else if (message.extensionId !== this.id) {
        const error = new ExtensionError(
          this.id,
          `class "${this.#registration.export}" says its id is ${
            JSON.stringify(message.extensionId)
          }; make it match ${this.#registration.file}`,
        );
        this.#stop(error);
        booting.reject(error);
      } else booting.resolve();
      return;
    }
    if (this.#booting) {
      throw new ProtocolViolation(`"${message.type}" before the extension was loaded`);
    }
    const pending = this.#pending.get(message.id);
    if (!pending) {
      throw new ProtocolViolation(`"${message.type}" for call ${message.id}, which is not running`);
    }
    const only = (method: Method) => {
      if (pending.method !== method) {
        throw new ProtocolViolation(`"${message.type}" during ${pending.method}()`);
      }
    };
    switch (message.type) {
      case "result":
        pending.resolve(checkResult(pending.method, message.value));
        this.#pending.delete(message.id);
        return;
      case "error":
        this.#pending.delete(message.id);
        pending.reject(fromWire(this.#failures(), message.error, "failed", pending.hooks.signal));
        return;
      case "stdout":
      case "stderr":
        only("exec");
        pending.hooks[message.type]?.(message.chunk);
        return;
      case "progress":
        only("sync");
        pending.hooks.progress?.(message.progress as SyncProgress);
        return;
      case "recordHandle":
      case "step": {
        only("create");
        const { hooks } = pending;
        if (message.type === "recordHandle") {
          this.#workspaces.set(JSON.stringify(message.handle), message.workspace);
        }
        const work = message.type === "recordHandle"
          ? hooks.recordHandle?.(message.handle as SandboxHandle)
          : hooks.step?.(message.name);
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
