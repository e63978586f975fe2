/**
 * The state one manager shares among its flows (create, destroy, gc, the
 * verbs): the journal, the registry, the options, and one extension instance
 * per extension and set of grants.
 *
 * @module
 */

import type { JsonObject } from "../core/types.ts";
import type { Profile } from "../config/types.ts";
import type { SandboxExtension } from "../extensions/base.ts";
import { silentLogger } from "../core/types.ts";
import type { ExtensionRegistry } from "../extensions/registry.ts";
import type { Logger } from "../core/types.ts";
import type { SandboxHandle } from "../extensions/types.ts";
import { errorText, type JournalError, UsageError } from "../core/errors.ts";
import type { Journal, SandboxInUse } from "./journal.ts";
import type { SandboxRecord } from "./record.ts";
import type { EnvReader } from "../core/paths.ts";
import { openPortRegistry, type PortRegistry } from "../core/ports/registry.ts";
import { optionalEnv } from "../core/permissions.ts";
import {
  type ResolvedPermissions,
  resolvePermissions,
  withGrants,
} from "../extensions/confined/permissions.ts";
import type { ManagerOptions } from "./manager_options.ts";
import { Transcript, transcriptCap } from "./transcript.ts";

/** A ready sandbox marked in use, with the extension and handle to reach it. */
export type SandboxInUseBy = SandboxInUse & {
  extension: SandboxExtension<unknown>;
  handle: SandboxHandle;
};

/** What a {@linkcode Manager}'s flows share; sandboxer's own modules only. */
export class ManagerParts {
  /** The journal of records. */
  readonly journal: Journal;
  /** The registered extensions. */
  readonly registry: ExtensionRegistry;
  /** Where progress goes. */
  readonly logger: Logger;
  /** Trust unknown host keys on first use. */
  readonly acceptNewHostKey: boolean;
  /** A fingerprint to accept in place of a sandbox's pinned one. */
  readonly acceptHostKey: string | undefined;
  /** `$HOME`, when readable. */
  readonly home: string | undefined;
  /** How to read the environment. */
  readonly env: EnvReader;
  #extensions = new Map<string, SandboxExtension<unknown>>();
  #warned = new Set<string>();
  #transcriptCap: number;

  /**
   * @param journal The journal of records.
   * @param registry The registered extensions.
   * @param options The manager's options (host-key policy is checked here).
   */
  constructor(journal: Journal, registry: ExtensionRegistry, options: ManagerOptions) {
    this.journal = journal;
    this.registry = registry;
    this.logger = options.logger ?? silentLogger;
    this.acceptNewHostKey = options.acceptNewHostKey ?? false;
    if (
      options.acceptHostKey !== undefined &&
      !/^SHA256:[A-Za-z0-9+/]{43}$/.test(options.acceptHostKey)
    ) {
      throw new UsageError(
        `Cannot use --accept-host-key ${
          JSON.stringify(options.acceptHostKey)
        }: give the fingerprint as the error message or "ssh-keygen -l" prints it (SHA256: and 43 characters)`,
      );
    }
    this.acceptHostKey = options.acceptHostKey;
    this.env = options.env ?? optionalEnv;
    this.home = this.env("HOME");
    this.#transcriptCap = transcriptCap(this.env("SANDBOXER_LOG_MAX"));
  }

  /**
   * A sandbox's transcript, capped by `SANDBOXER_LOG_MAX`.
   *
   * @param id The sandbox id.
   * @returns The transcript to note steps and output in.
   */
  transcript(id: string): Transcript {
    return new Transcript(this.journal.dir, id, this.#transcriptCap);
  }

  /**
   * The port registry of this state directory.
   *
   * @returns The registry.
   */
  ports(): PortRegistry {
    return openPortRegistry(this.journal.dir, this.env("SANDBOXER_PORT_RANGE"));
  }

  /** Close every extension instance. */
  async close(): Promise<void> {
    const extensions = [...this.#extensions.values()];
    this.#extensions.clear();
    await Promise.allSettled(extensions.map((e) => e.close()));
  }

  /** One instance per extension and set of grants (a confined extension's worker has fixed permissions). */
  extension(id: string, grants: ResolvedPermissions | "none" = "none"): SandboxExtension<unknown> {
    const key = `${id} ${JSON.stringify(grants)}`;
    let extension = this.#extensions.get(key);
    if (!extension) {
      extension = this.registry.instantiate(id, {
        logger: this.logger,
        acceptNewHostKey: this.acceptNewHostKey,
        home: this.home,
        stateDir: this.journal.dir,
      }, grants);
      this.#extensions.set(key, extension);
    }
    return extension;
  }

  /** What a third-party extension may touch for this profile; "none" marks a built-in. */
  grantsFor(profile: Profile, config: unknown): ResolvedPermissions | "none" {
    const registration = this.registry.get(profile.extension);
    if (registration.builtin) return "none";
    const values = { ...(config as JsonObject), sync: { ...profile.sync } } as JsonObject;
    return resolvePermissions(registration.permissions, values, {
      source: profile.source,
      home: this.home,
    });
  }

  /** Mark a ready sandbox in use for the duration of an exec, sync or copy. */
  async use(
    id: string,
    what: string,
    verb: string,
  ): Promise<SandboxInUseBy> {
    const use = await this.journal.use(id, what, verb);
    const record = use.record;
    return {
      record,
      extension: this.extension(record.extension, record.permissions ?? "none"),
      handle: this.withAcceptedKey(record.handle as SandboxHandle),
      [Symbol.asyncDispose]: () => use[Symbol.asyncDispose](),
    };
  }

  /** The handle with `--accept-host-key` as its pin, when it pinned another key. */
  withAcceptedKey(handle: SandboxHandle): SandboxHandle {
    const accepted = this.acceptHostKey;
    const pinned = (handle as JsonObject).host_key_fingerprint;
    if (accepted === undefined || typeof pinned !== "string" || pinned === accepted) return handle;
    return { ...handle, host_key_fingerprint: accepted };
  }

  /** Record the accepted key as the new pin once a command has reached the host with it. */
  async keepPin(record: SandboxRecord, handle: SandboxHandle): Promise<void> {
    if (handle === record.handle) return;
    const pin = (handle as JsonObject).host_key_fingerprint;
    // Only the pin changes, whoever owns the record: the rest of the handle is whatever the
    // journal holds now.
    await this.journal.amend(record.id, (current) => ({
      handle: current.handle ? { ...current.handle, host_key_fingerprint: pin } : current.handle,
    }));
    this.logger.warn(
      `pinned host key ${
        (handle as JsonObject).host_key_fingerprint
      } for sandbox ${record.id} (was ${(record.handle as JsonObject).host_key_fingerprint})`,
    );
  }

  /** The journal's records; a corrupt one is reported once (file and fix) and left out. */
  async records(): Promise<SandboxRecord[]> {
    return await this.journal.list({
      onCorrupt: (error: JournalError) => {
        if (this.#warned.has(error.message)) return;
        this.#warned.add(error.message);
        this.logger.warn(error.message);
      },
    });
  }
}

/** Refuse a path that is not an existing directory, naming the flag. */
export async function assertDirectory(path: string, flag: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`Cannot use ${flag} ${path}: no such directory`);
    }
    throw error;
  }
  if (!info.isDirectory) throw new UsageError(`Cannot use ${flag} ${path}: not a directory`);
}

/** A program name starting with "-" would be read as an option (of env, exec, or the shell). */
export function checkProgram(program: string): void {
  if (program.startsWith("-")) {
    throw new UsageError(
      `Cannot run ${
        JSON.stringify(program)
      }: a program name may not start with "-"; write ./${program} or its full path`,
    );
  }
}

/** Prefix `env NAME=value…` so the profile's environment reaches every command on any backend. */
export function withEnv(
  env: readonly string[] | undefined,
  argv: readonly string[],
): readonly string[] {
  if (!env?.length) return argv;
  checkProgram(argv[0]);
  return ["env", ...env, ...argv];
}

/** A confined extension syncing a directory may read it: the user named it. */
export function withRepo(
  grants: ResolvedPermissions | "none",
  repo: string | undefined,
): ResolvedPermissions | "none" {
  return grants === "none" || repo === undefined ? grants : withGrants(grants, { read: [repo] });
}

/** The first line of an error's text, as records keep it. */
export function oneLine(error: unknown): string {
  const message = errorText(error);
  return message.split("\n")[0];
}
