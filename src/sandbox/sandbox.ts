/**
 * The SDK's sandbox object: one sandbox, created from a profile, with its
 * verbs as methods and `await using` to destroy it.
 *
 * @module
 */

import type { ExecIO, SyncReport } from "../core/types.ts";
import { SandboxerError, UsageError } from "../core/errors.ts";
import type { SandboxRecord } from "./record.ts";
import { Manager } from "./manager.ts";
import type { CreateOptions, ManagerOptions } from "./manager_options.ts";
import { sdkWording } from "./sdk_wording.ts";
import type { SnapshotInfo } from "../extensions/types.ts";

/** What {@linkcode Sandbox.exec} resolves to: the exit code and the whole output as text. */
export interface SandboxExecResult {
  /** The command's exit code. */
  code: number;
  /** Everything it wrote to stdout, decoded as UTF-8. */
  stdout: string;
  /** Everything it wrote to stderr, decoded as UTF-8. */
  stderr: string;
}

/**
 * A sandbox made from a profile. Create it with {@linkcode Sandbox.create};
 * `await using` destroys it (and closes the manager it opened) however the
 * block ends. For many sandboxes at once, the journal, gc or images, use a
 * {@linkcode Manager}.
 *
 * @example Build and test in one sandbox
 * ```ts
 * import { Sandbox } from "@sandboxer/sandboxer";
 *
 * async function check(): Promise<number> {
 *   await using box = await Sandbox.create({ profile: "vm-haskell-build", repo: "." });
 *   const build = await box.exec(["cabal", "build", "all"]);
 *   if (build.code !== 0) return build.code;
 *   const test = await box.exec(["cabal", "test", "all"], {
 *     stdout: (chunk) => Deno.stdout.writeSync(chunk), // streamed as it comes, too
 *   });
 *   await box.fetch("dist/hello", "dist");
 *   return test.code;
 * }
 * ```
 */
export class Sandbox implements AsyncDisposable {
  readonly #manager: Manager;
  readonly #ownsManager: boolean;
  readonly #repo: string | undefined;
  #record: SandboxRecord;
  #destroyed = false;

  private constructor(
    manager: Manager,
    ownsManager: boolean,
    record: SandboxRecord,
    repo: string | undefined,
  ) {
    this.#manager = manager;
    this.#ownsManager = ownsManager;
    this.#record = record;
    this.#repo = repo;
  }

  /**
   * Create a sandbox: load the profile, make the sandbox, sync `repo` into
   * its workspace and run the profile's setup. Opens a manager with the same
   * options unless `manager` is given.
   *
   * @param options The profile and repo, create options (`name`, `overrides`,
   * `ttlSeconds`, …) and manager options (`stateDir`, `acceptNewHostKey`, …).
   * @returns The ready sandbox.
   * @throws {SandboxerError} when any step fails; a sandbox that got as far
   * as being made is left `failed` for {@linkcode Manager.destroy}, one that
   * was never made leaves no record.
   */
  static async create(
    options: CreateOptions & ManagerOptions & { manager?: Manager },
  ): Promise<Sandbox> {
    const { manager: given, ...rest } = options;
    const manager = given ?? await Manager.open(rest).catch(rethrowForSdk);
    try {
      if (rest.repo !== undefined) await assertRepo(rest.repo);
      const record = await manager.create(rest);
      return new Sandbox(manager, given === undefined, record, rest.repo);
    } catch (error) {
      if (given === undefined) await manager.close();
      return rethrowForSdk(error);
    }
  }

  /** The sandbox id. */
  get id(): string {
    return this.#record.id;
  }

  /** The sandbox's record as of creation or the last {@linkcode Sandbox.destroy}. */
  get record(): SandboxRecord {
    return this.#record;
  }

  /**
   * Run a command in the workspace and collect its output. Callbacks in
   * `options` still receive each chunk as it arrives.
   *
   * @param argv Program and arguments, passed literally (no shell).
   * @param options Streaming callbacks, stdin data and an abort signal.
   * @returns The exit code, stdout and stderr.
   */
  async exec(argv: readonly string[], options: ExecIO = {}): Promise<SandboxExecResult> {
    if (argv.length === 0) {
      throw new UsageError("Cannot exec: argv is empty; pass the program and its arguments");
    }
    const stdout = new TextCollector();
    const stderr = new TextCollector();
    const code = await this.#manager.exec(this.id, argv, {
      ...options,
      stdout: (chunk) => {
        stdout.push(chunk);
        options.stdout?.(chunk);
      },
      stderr: (chunk) => {
        stderr.push(chunk);
        options.stderr?.(chunk);
      },
    }).catch(rethrowForSdk);
    return { code, stdout: stdout.text(), stderr: stderr.text() };
  }

  /**
   * Sync a local directory into the workspace again: by default the `repo`
   * given to {@linkcode Sandbox.create}, else the profile's `sync.source`.
   *
   * @param options Another directory, a progress callback, an abort signal.
   * @returns What was transferred.
   */
  async sync(
    options: Parameters<Manager["sync"]>[1] = {},
  ): Promise<SyncReport> {
    const repo = options.repo ?? this.#repo ?? this.#record.sync.source;
    if (repo === undefined) {
      throw new UsageError(
        `Cannot sync sandbox "${this.id}": no directory; pass { repo } or set sync.source in the profile`,
      );
    }
    await assertRepo(repo);
    return await this.#manager.sync(this.id, { ...options, repo }).catch(rethrowForSdk);
  }

  /**
   * Copy a file or directory from the workspace into a local directory.
   *
   * @param remotePath Path relative to the workspace (or absolute inside it).
   * @param localDir Local directory to copy into, created if missing; default `.`.
   * @param options An abort signal.
   */
  async fetch(
    remotePath: string,
    localDir = ".",
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    await this.#manager.fetch(this.id, remotePath, localDir, options).catch(rethrowForSdk);
  }

  /**
   * Save the workspace as a snapshot on its host (docs/snapshots.md): a real
   * copy, build outputs included, that `Sandbox.create({ fromSnapshot })`
   * starts later sandboxes from, on the same host, until it expires.
   *
   * @example Build once, start every test sandbox from the built tree
   * ```ts ignore
   * await using builder = await Sandbox.create({ profile: "vm-haskell-build", repo: "." });
   * await builder.exec(["cabal", "build", "all"]);
   * await builder.snapshot("built", { ttlSeconds: 86400, replace: true });
   * await using tester = await Sandbox.create({ profile: "vm-haskell-build", fromSnapshot: "built" });
   * ```
   *
   * @param name `[a-z0-9][a-z0-9._-]{0,62}`, unique per remote user and workspace root.
   * @param options `ttlSeconds` (default: the profile's `snapshot_ttl`, 7 days), `replace`, abort.
   * @returns What was saved.
   * @throws {SnapshotError} for a bad or taken name (without `replace`), or a path that is not ours.
   * @throws {SnapshotUnsupportedError} for a backend that keeps no snapshots.
   */
  async snapshot(
    name: string,
    options: Parameters<Manager["snapshot"]>[2] = {},
  ): Promise<SnapshotInfo> {
    return await this.#manager.snapshot(this.id, name, options).catch(rethrowForSdk);
  }

  /**
   * Destroy the sandbox. Idempotent: later calls return at once.
   *
   * @param options `force` ends commands another process runs in it.
   */
  async destroy(options: { force?: boolean } = {}): Promise<void> {
    if (this.#destroyed) return;
    this.#record = await this.#manager.destroy(this.id, options).catch(rethrowForSdk);
    this.#destroyed = true;
  }

  /** Destroy the sandbox, then close the manager if {@linkcode Sandbox.create} opened it. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.destroy();
    } finally {
      if (this.#ownsManager) await this.#manager.close();
    }
  }
}

async function assertRepo(repo: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(repo);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`Cannot use repo ${repo}: no such directory; pass an existing one`);
    }
    throw rethrowForSdk(error);
  }
  if (!info.isDirectory) {
    throw new UsageError(`Cannot use repo ${repo}: not a directory; pass a directory`);
  }
}

function rethrowForSdk(error: unknown): never {
  if (error instanceof SandboxerError) sdkWording(error);
  throw error;
}

/** Chunks kept as bytes until the end, so a UTF-8 character split across chunks decodes whole. */
class TextCollector {
  #chunks: Uint8Array[] = [];
  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk.slice());
  }
  text(): string {
    const bytes = new Uint8Array(this.#chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const chunk of this.#chunks) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
    return new TextDecoder().decode(bytes);
  }
}
