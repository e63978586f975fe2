/**
 * A pool's configuration (`targets:`): checking it, and turning each entry
 * into the single-target configuration the rest of `ext.vm-packer` knows.
 *
 * @module
 */

import { isFile } from "../../../core/fs.ts";
import { ConfigError } from "../../../core/errors.ts";
import type { ConfigSource } from "../../../config/types.ts";
import type { JsonObject } from "../../../core/types.ts";
import { workspaceRootProblem } from "../../ssh_workspace/workspace_path.ts";
import type { PoolEntryConfig } from "../../base.ts";
import type { VmPackerConfig } from "../config.ts";

/** The fields of an entry that name its host. */
type EntryTarget = VmPackerConfig["target"];

/** Where a host's leases live, under its workspace root. */
export const POOL_DIR = ".sbx-pool";

/**
 * Refuse what a pool cannot be: `target` and `targets` together, a pool in
 * boot mode, an entry without a host, a bad per-entry workspace root or a
 * missing key file. Located at `targets[i].field`.
 *
 * @param raw The profile's extension fields as written.
 * @param config The validated config (with `targets`).
 * @param source Locations, for errors.
 * @throws {ConfigError} for the first problem.
 */
export function checkPoolConfig(raw: JsonObject, config: VmPackerConfig, source: ConfigSource) {
  const entries = config.targets ?? [];
  const writesTarget = Object.keys(raw).some((key) =>
    (key === "target" && raw[key] !== null) || key.startsWith("target.")
  );
  if (writesTarget) {
    throw new ConfigError(
      source.locate("targets"),
      "cannot be set together with target: give one host as target, or a pool as targets; keep one",
    );
  }
  if (config.mode === "boot") {
    throw new ConfigError(
      source.locate("targets"),
      "does not apply in boot mode (each sandbox boots its own VM on this machine); remove it",
    );
  }
  entries.forEach((entry, index) => {
    const at = (field: string) => source.locate(`targets[${index}].${field}`);
    if (entry.host === undefined && entry.vm === undefined) {
      throw new ConfigError(
        at("host"),
        'is required for each pool entry; add `host: <name>` (or `vm:`, a VM registered with "sandboxer ports register")',
      );
    }
    if (entry.vm !== undefined && entry.port !== undefined) {
      throw new ConfigError(
        at("vm"),
        "cannot be set together with port: the registered VM's port is used; keep one",
      );
    }
    if (entry.workspace_root !== undefined) {
      const problem = workspaceRootProblem(entry.workspace_root);
      if (problem) throw new ConfigError(at("workspace_root"), problem);
    }
    const key = entry.identity_file;
    if (key !== undefined && !isFile(key)) {
      throw new ConfigError(
        at("identity_file"),
        `no such file ${key}; give the path of the private key, or leave the field out to use ssh-agent`,
        { cause: new Deno.errors.NotFound(key) },
      );
    }
  });
}

/**
 * The single-target configuration of one entry: its target fields as
 * `target`, its workspace root (or the profile's) as `workspace.root`.
 *
 * @param config The pool's config.
 * @param index The entry's index.
 * @returns A config without `targets`.
 */
export function entryConfig(config: VmPackerConfig, index: number): VmPackerConfig {
  const { capacity: _capacity, workspace_root, ...target } = config.targets![index];
  const { targets: _targets, ...rest } = config;
  return { ...rest, target, workspace: { root: workspace_root ?? config.workspace.root } };
}

/**
 * A pool's hosts, each as a single-target config.
 *
 * @param config The parsed config.
 * @returns The entries, or undefined without `targets`.
 */
export function poolEntriesOf(
  config: VmPackerConfig,
): PoolEntryConfig<VmPackerConfig>[] | undefined {
  return config.targets?.map((entry, index) => ({
    label: entryLabel(entry),
    capacity: entry.capacity,
    config: entryConfig(config, index),
  }));
}

/**
 * `host:port` of an entry as written (`vm:NAME` for a registered VM), for messages.
 *
 * @param entry The entry.
 * @returns The label.
 */
export function entryLabel(entry: EntryTarget): string {
  if (entry.vm !== undefined) return `vm:${entry.vm}`;
  return `${entry.host}:${entry.port ?? 22}`;
}

/**
 * The name of an entry's lease directory under `<root>/.sbx-pool/`: its
 * host, port and user as written, so every sandboxer that lists the same
 * entry (on any machine) shares its slots, and two entries that reach one
 * machine differently keep their own.
 *
 * @param entry The entry.
 * @returns A name of `[A-Za-z0-9._-]` characters.
 */
export function entryKey(entry: EntryTarget): string {
  const parts = [entry.vm ? `vm-${entry.vm}` : entry.host!, String(entry.port ?? 22)];
  if (entry.user !== undefined) parts.push(entry.user);
  return parts.join("_").replace(/[^A-Za-z0-9._-]/g, "-").replace(/^\.+/, "-");
}
