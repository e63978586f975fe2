/**
 * Turning a registration's declared permissions (with `{placeholders}` such
 * as `{target.host}`) into the exact grants of one sandbox's worker.
 *
 * @module
 */

import type { DeclaredPermissions, JsonObject, JsonValue } from "../../config/types.ts";

/** Declared permissions with every placeholder filled. */
export type ResolvedPermissions = {
  [K in keyof DeclaredPermissions]-?: string[];
};

const KINDS = ["net", "run", "read", "write", "env"] as const;

/**
 * Fill `{dotted.path}` placeholders from the validated config (and the
 * profile's own fields such as `sync.source`). An entry whose placeholder has
 * no value is dropped: an optional field that is not set needs no grant.
 *
 * @param declared The registration's permissions.
 * @param values The values placeholders refer to.
 * @returns The grants.
 */
export function resolvePermissions(
  declared: DeclaredPermissions,
  values: JsonObject,
): ResolvedPermissions {
  const resolved = { net: [], run: [], read: [], write: [], env: [] } as ResolvedPermissions;
  for (const kind of KINDS) {
    for (const entry of declared[kind] ?? []) {
      let missing = false;
      const filled = entry.replace(/\{([^{}]+)\}/g, (_, path: string) => {
        const value = lookup(values, path);
        if (value === undefined || value === null || typeof value === "object") {
          missing = true;
          return "";
        }
        return String(value);
      });
      if (!missing && filled !== "" && !resolved[kind].includes(filled)) {
        resolved[kind].push(filled);
      }
    }
  }
  return resolved;
}

/**
 * Add grants (for example read access to the directory being synced).
 *
 * @param base The sandbox's grants.
 * @param extra What to add.
 * @returns A new set of grants.
 */
export function withGrants(
  base: ResolvedPermissions,
  extra: Partial<ResolvedPermissions>,
): ResolvedPermissions {
  const merged = structuredClone(base);
  for (const kind of KINDS) {
    for (const entry of extra[kind] ?? []) {
      if (!merged[kind].includes(entry)) merged[kind].push(entry);
    }
  }
  return merged;
}

/**
 * The worker permission options for a set of grants: nothing beyond them,
 * and never sys, ffi or run-time imports from the network.
 *
 * @param grants The grants, or "none" for a worker that may touch nothing.
 * @param moduleUrl The extension module (a remote module needs import access to its host).
 * @returns Options for `new Worker(…, { deno: { permissions } })`.
 */
export function workerPermissions(
  grants: ResolvedPermissions | "none",
  moduleUrl: string,
): Deno.PermissionOptionsObject {
  const url = new URL(moduleUrl);
  const remote = url.protocol === "https:" || url.protocol === "http:";
  const list = (kind: typeof KINDS[number]) =>
    grants === "none" || grants[kind].length === 0 ? false : grants[kind];
  return {
    net: list("net"),
    run: list("run"),
    read: list("read"),
    write: list("write"),
    env: list("env"),
    sys: false,
    ffi: false,
    import: remote ? [url.host] : false,
  };
}

function lookup(values: JsonObject, path: string): JsonValue | undefined {
  let current: JsonValue | undefined = values;
  for (const key of path.split(".")) {
    if (current === null || typeof current !== "object" || Array.isArray(current)) return undefined;
    current = (current as JsonObject)[key];
  }
  return current;
}

/**
 * Split grants into those this process holds and those it lacks: a worker can
 * never have more than its parent, so the lacking ones are withheld.
 *
 * @param grants The resolved grants.
 * @returns What the worker can be given, and what is withheld.
 */
export function grantable(
  grants: ResolvedPermissions,
): { granted: ResolvedPermissions; withheld: ResolvedPermissions } {
  const granted = { net: [], run: [], read: [], write: [], env: [] } as ResolvedPermissions;
  const withheld = { net: [], run: [], read: [], write: [], env: [] } as ResolvedPermissions;
  for (const kind of KINDS) {
    for (const entry of grants[kind]) {
      const held = Deno.permissions.querySync(descriptor(kind, entry)).state === "granted";
      (held ? granted : withheld)[kind].push(entry);
    }
  }
  return { granted, withheld };
}

function descriptor(kind: typeof KINDS[number], entry: string): Deno.PermissionDescriptor {
  switch (kind) {
    case "net":
      return { name: "net", host: entry };
    case "run":
      return { name: "run", command: entry };
    case "read":
      return { name: "read", path: entry };
    case "write":
      return { name: "write", path: entry };
    case "env":
      return { name: "env", variable: entry };
  }
}
