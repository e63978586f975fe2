/**
 * Registered extensions: the YAML registrations found on the extension path,
 * and how to get an instance for an id.
 *
 * @module
 */

import { type ConfigError, ExtensionError } from "../core/errors.ts";
import { didYouMean } from "../config/did_you_mean.ts";
import { BUILTIN_EXTENSIONS_DIR } from "../config/builtin_files.ts";
import type { EmbeddedDir } from "../config/files.ts";
import { loadRegistrations } from "../config/registration.ts";
import type { ExtensionRegistration } from "../config/types.ts";
import type { SandboxExtension } from "./base.ts";
import { BUILTIN_EXTENSIONS } from "./builtin.ts";
import { ConfinedExtension } from "./confined/host.ts";
import type { ResolvedPermissions } from "./confined/permissions.ts";
import type { ExtensionOptions } from "./types.ts";

/** Where registrations are read from. */
export interface RegistryOptions {
  /** The built-in registrations; default sandboxer's own, embedded in its module graph. */
  builtin?: EmbeddedDir;
  /** More directories, searched after the built-ins. */
  dirs?: readonly string[];
}

/** The registrations found, including the broken ones, and a way to instantiate them. */
export class ExtensionRegistry {
  /** Valid registrations, first id wins. */
  readonly registrations: readonly ExtensionRegistration[];
  /** Broken registration files, each a clear error; they never hide the healthy ones. */
  readonly errors: readonly ConfigError[];

  /**
   * Create it.
   *
   * @param registrations Valid registrations.
   * @param errors Broken registrations.
   */
  constructor(registrations: readonly ExtensionRegistration[], errors: readonly ConfigError[]) {
    this.registrations = registrations;
    this.errors = errors;
  }

  /**
   * Read the built-in registrations and every `ext.*.yaml` in the extra directories.
   *
   * @param options The directories.
   * @returns The registry.
   */
  static async load(options: RegistryOptions = {}): Promise<ExtensionRegistry> {
    const builtin = options.builtin ?? BUILTIN_EXTENSIONS_DIR;
    const { registrations, errors } = await loadRegistrations(
      [builtin.path, ...(options.dirs ?? [])],
      { builtinDir: builtin.path, embedded: [builtin] },
    );
    return new ExtensionRegistry(registrations, errors);
  }

  /**
   * The registration for an id.
   *
   * @param id `ext.<name>`.
   * @returns The registration.
   * @throws {ExtensionError} when no valid registration has that id.
   */
  get(id: string): ExtensionRegistration {
    const found = this.registrations.find((r) => r.id === id);
    if (found) return found;
    const broken = this.errors.find((e) => e.location.file.endsWith(`/${id}.yaml`));
    if (broken) {
      throw new ExtensionError(id, `has a broken registration: ${broken.message}`, {
        cause: broken,
      });
    }
    const guess = didYouMean(id, this.registrations.map((r) => r.id));
    throw new ExtensionError(
      id,
      `is not registered${
        guess ? ` (did you mean "${guess}"?)` : ""
      }; run "sandboxer extensions" to list them, or add its directory to $SANDBOXER_EXTENSION_PATH`,
    );
  }

  /**
   * Construct the extension for an id: built-ins from the static table;
   * any other registration runs confined in a worker with exactly `grants`.
   *
   * @param id `ext.<name>`.
   * @param options Constructor options.
   * @param grants For third-party extensions: what their code may touch ("none" to only validate config).
   * @returns A new instance.
   */
  instantiate(
    id: string,
    options: ExtensionOptions,
    grants: ResolvedPermissions | "none" = "none",
  ): SandboxExtension<unknown> {
    const registration = this.get(id);
    if (registration.builtin) {
      const builtin = BUILTIN_EXTENSIONS[id];
      if (!builtin) {
        throw new ExtensionError(
          id,
          "is registered as built-in but this build does not include it",
        );
      }
      return new builtin(options);
    }
    return new ConfinedExtension(registration, grants, options);
  }
}
