/**
 * Turning a registration's declared permissions (with `{placeholders}` such
 * as `{target.host}`) into the exact grants of one sandbox's worker, and
 * finding the files a confined extension's code may load.
 *
 * @module
 */

import { dirname, isAbsolute, normalize, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ConfigError, type ConfigLocation, ExtensionError } from "../../core/errors.ts";
import type { ConfigSource, DeclaredPermissions } from "../../config/types.ts";
import type { JsonObject, JsonValue } from "../../core/types.ts";

/** Declared permissions with every placeholder filled. */
export type ResolvedPermissions = {
  [K in keyof DeclaredPermissions]-?: string[];
};

const KINDS = ["net", "run", "read", "write", "env"] as const;
type Kind = typeof KINDS[number];

/** Options for {@linkcode resolvePermissions}. */
export interface ResolveOptions {
  /** Where the profile's values came from, so a refused value is reported at its place. */
  source?: ConfigSource;
  /** The user's home directory: a path grant may be neither it nor one of its ancestors. */
  home?: string;
  /** Directory relative path grants are resolved against, as Deno does. Default: `Deno.cwd()`. */
  cwd?: string;
}

const PLACEHOLDER = /\{([^{}]+)\}/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOST_LABEL = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?";
const HOST_NAME = new RegExp(`^(?=.{1,253}$)${HOST_LABEL}(?:\\.${HOST_LABEL})*\\.?$`);
const IPV6_BRACKETED = /^\[[0-9A-Fa-f:.]{2,45}\]$/;
const PROGRAM_NAME = /^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$/;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Fill `{dotted.path}` placeholders from the validated config (and the
 * profile's own fields such as `sync.source`). An entry whose placeholder has
 * no value is dropped: an optional field that is not set needs no grant.
 *
 * A value may only ever narrow what the registration declares: one that
 * would widen a grant (a wildcard, an address range, a comma, an empty
 * string, `/` or the home directory as a path, a port outside 1–65535, …)
 * is refused with a {@linkcode ConfigError} at the profile field it came from.
 *
 * @param declared The registration's permissions.
 * @param values The values placeholders refer to.
 * @param options Where the values came from, and the paths checks need.
 * @returns The grants.
 * @throws {ConfigError} when a value would widen a grant.
 */
export function resolvePermissions(
  declared: DeclaredPermissions,
  values: JsonObject,
  options: ResolveOptions = {},
): ResolvedPermissions {
  const resolved = { net: [], run: [], read: [], write: [], env: [] } as ResolvedPermissions;
  for (const kind of KINDS) {
    for (const template of declared[kind] ?? []) {
      for (const [entryValues, entryOptions] of perEntry(template, values, options)) {
        const filled = fill(kind, template, entryValues, entryOptions);
        if (filled !== undefined && !resolved[kind].includes(filled)) resolved[kind].push(filled);
      }
    }
  }
  return resolved;
}

/**
 * A pool (`targets:`, a list of target mappings) needs the grants of every entry: a template
 * naming `{target.…}` is filled once per entry, its refusals located at `targets[i].…`.
 */
function perEntry(
  template: string,
  values: JsonObject,
  options: ResolveOptions,
): [JsonObject, ResolveOptions][] {
  const entries = values.targets;
  if (!template.includes("{target.") || !Array.isArray(entries)) return [[values, options]];
  return entries.map((entry, index) => [
    { ...values, target: entry },
    {
      ...options,
      source: options.source && {
        file: options.source.file,
        locate: (field: string) =>
          options.source!.locate(field.replace(/^target\./, `targets[${index}].`)),
      },
    },
  ]);
}

/** One entry filled and checked; undefined when a placeholder has no value. */
function fill(
  kind: Kind,
  template: string,
  values: JsonObject,
  options: ResolveOptions,
): string | undefined {
  const fields: { path: string; value: string }[] = [];
  for (const [, path] of template.matchAll(PLACEHOLDER)) {
    const value = lookup(values, path);
    if (value === undefined || value === null || typeof value === "object") return undefined;
    fields.push({ path, value: String(value) });
  }
  if (fields.length === 0) return template;
  const refuse = (path: string, value: string, reason: string, fix: string): never => {
    const location: ConfigLocation = options.source?.locate(path) ??
      { file: "profile", field: path };
    throw new ConfigError(
      location,
      `${
        JSON.stringify(value)
      } cannot be used here: it fills {${path}} in the extension's ${kind} permission ${
        JSON.stringify(template)
      } and ${reason}; ${fix}`,
    );
  };
  for (const { path, value } of fields) {
    const reason = valueProblem(kind, value);
    if (reason) refuse(path, value, reason, FIX[kind]);
  }
  const filled = substitute(template, values);
  if (kind === "net") {
    checkNet(template, values, (path, reason, fix) => {
      refuse(path, String(lookup(values, path)), reason, fix);
    });
    return filled;
  }
  const blame = fields[0];
  const reason = kind === "env"
    ? (ENV_NAME.test(filled) ? undefined : `would make ${JSON.stringify(filled)}, not a name`)
    : kind === "run"
    ? programProblem(filled)
    : pathProblem(filled, options);
  if (reason) refuse(blame.path, blame.value, reason, FIX[kind]);
  return filled;
}

const FIX: Record<Kind, string> = {
  net: "give one host name or IP address, and a port from 1 to 65535",
  run: "give one program name or an absolute path to one program",
  read: "give the one file or directory the extension needs, as an absolute path",
  write: "give the one file or directory the extension needs, as an absolute path",
  env: "give one environment variable name (letters, digits, _)",
};

/** What no substituted value may contain, whatever the kind. */
function valueProblem(kind: Kind, value: string): string | undefined {
  if (value === "") return "is empty";
  if (CONTROL.test(value)) return "contains a control character";
  if (value.includes(",")) return "contains a comma, which would split it into several grants";
  if (value.includes("*")) return "contains *, a wildcard that would widen the grant";
  if (value.startsWith("-")) return 'starts with "-", which reads as an option';
  if (kind === "net" && value.includes("/")) {
    return 'contains "/", which Deno reads as an address range';
  }
  if (kind === "net" && /\s/.test(value)) return "contains white space";
  if (kind === "env" && !/^[A-Za-z0-9_]+$/.test(value)) {
    return "is not part of an environment variable name";
  }
  if ((kind === "read" || kind === "write" || kind === "run") && value.split("/").includes("..")) {
    return 'contains "..", which could climb out of the directory meant';
  }
  return undefined;
}

/**
 * A net entry is `host` or `host:port`; check each part filled, blaming the
 * placeholder that fills it.
 */
function checkNet(
  template: string,
  values: JsonObject,
  refuse: (path: string, reason: string, fix: string) => void,
): void {
  const split = topLevelColon(template);
  const hostTemplate = split < 0 ? template : template.slice(0, split);
  const portTemplate = split < 0 ? undefined : template.slice(split + 1);
  const firstField = (part: string) => [...part.matchAll(PLACEHOLDER)][0]?.[1];
  const host = substitute(hostTemplate, values);
  const hostField = firstField(hostTemplate);
  if (hostField !== undefined && !HOST_NAME.test(host) && !IPV6_BRACKETED.test(host)) {
    refuse(
      hostField,
      host.includes(":")
        ? `would make the host ${
          JSON.stringify(host)
        }, whose ":" Deno would read as a port (an IPv6 address needs [brackets])`
        : `would make the host ${JSON.stringify(host)}, which is not one host name or IP address`,
      host.includes(":")
        ? "give a host name or IPv4 address without a port, or an IPv6 address in [brackets]"
        : FIX.net,
    );
  }
  if (portTemplate === undefined) return;
  const port = substitute(portTemplate, values);
  const portField = firstField(portTemplate);
  const number = /^[0-9]{1,5}$/.test(port) ? Number(port) : NaN;
  if (portField !== undefined && !(number >= 1 && number <= 65535)) {
    refuse(
      portField,
      `would make the port ${JSON.stringify(port)}, which is not a port from 1 to 65535`,
      "give one port from 1 to 65535",
    );
  }
}

/** Index of the `:` that separates host and port, outside `{…}` and `[…]`; -1 if none. */
function topLevelColon(template: string): number {
  let braces = 0;
  let brackets = 0;
  let found = -1;
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c === "{") braces++;
    else if (c === "}") braces--;
    else if (c === "[") brackets++;
    else if (c === "]") brackets--;
    else if (c === ":" && braces === 0 && brackets === 0) found = i;
  }
  return found;
}

function programProblem(program: string): string | undefined {
  if (isAbsolute(program)) {
    return normalize(program) === program && program !== "/"
      ? undefined
      : `would make ${JSON.stringify(program)}, which is not a normalised path to a program`;
  }
  return PROGRAM_NAME.test(program)
    ? undefined
    : `would make ${JSON.stringify(program)}, which is not a program name`;
}

function pathProblem(path: string, options: ResolveOptions): string | undefined {
  if (path.split("/").includes("..")) {
    return `would make ${JSON.stringify(path)}, which climbs out with ".."`;
  }
  const full = normalize(resolve(options.cwd ?? Deno.cwd(), path));
  const home = options.home ? normalize(resolve(options.home)) : undefined;
  const broad = (at: string, via = "") => {
    if (at === "/") return `would grant the whole file system${via}`;
    if (home && (home === at || home.startsWith(`${at}${sep}`))) {
      return at === home
        ? `would grant your whole home directory${via}`
        : `would grant ${at}, which holds your home directory${via}`;
    }
    return undefined;
  };
  // Deno checks the path as written, so a link (/proc/self/root, ~/all -> /) grants its target.
  let real: string | undefined;
  try {
    real = Deno.realPathSync(full);
  } catch {
    // Not there yet (a file the extension will create), or not ours to look at.
  }
  return broad(full) ??
    (real && real !== full ? broad(real, ` (${full} leads to ${real})`) : undefined);
}

function substitute(template: string, values: JsonObject): string {
  return template.replace(PLACEHOLDER, (_, path: string) => String(lookup(values, path)));
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
 * The worker permission options for a set of grants: nothing beyond them and
 * the extension's own code files, and never sys, ffi or run-time imports
 * from the network.
 *
 * @param grants The grants, or "none" for a worker that may touch nothing but its code.
 * @param code Where the extension's code is (see {@linkcode extensionCode}).
 * @returns Options for `new Worker(…, { deno: { permissions } })`.
 */
export function workerPermissions(
  grants: ResolvedPermissions | "none",
  code: ExtensionCode,
): Deno.PermissionOptionsObject {
  const list = (kind: Kind) =>
    grants === "none" || grants[kind].length === 0 ? false : grants[kind];
  const declaredRead = grants === "none" ? [] : grants.read;
  const read = [...declaredRead, ...code.files.filter((file) => !declaredRead.includes(file))];
  return {
    net: list("net"),
    run: list("run"),
    read: read.length ? read : false,
    write: list("write"),
    env: list("env"),
    sys: false,
    ffi: false,
    import: code.remoteHost ? [code.remoteHost] : false,
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

function descriptor(kind: Kind, entry: string): Deno.PermissionDescriptor {
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

/** Where a confined extension's code is, and what its worker needs to load it. */
export interface ExtensionCode {
  /** The module to import: for a file, its canonical `file:` URL (symlinks resolved). */
  url: string;
  /** The module's directory (canonical), for a file module. */
  dir?: string;
  /** Every regular file under `dir` (no symlinks, no dot-files): what its code may load and read. */
  files: string[];
  /** For a module loaded from a URL: the host it may import from. */
  remoteHost?: string;
}

/** Options for {@linkcode extensionCode}. */
export interface ExtensionCodeOptions {
  /** The user's home directory: it and its ancestors are no module directory. */
  home?: string;
  /** sandboxer's state directory: no module directory may hold it. */
  stateDir?: string;
  /** Refuse a module directory with more regular files than this. @default {2000} */
  maxFiles?: number;
}

/**
 * Find the files a confined extension's code may load. A worker loads the
 * extension by a computed specifier, so Deno checks every file of its module
 * graph against the worker's read grants; granting exactly the regular files
 * of the module's own directory (symlinks and dot-files left out, so a link
 * to `~/.ssh/id_ed25519` placed there stays unreadable) lets its code load
 * its own files and nothing else. sandboxer's SDK is preloaded by the worker
 * entry and `npm:` packages load without a read check, so neither needs a grant.
 *
 * @param extensionId The extension, for errors.
 * @param moduleUrl The registration's module URL.
 * @param options Directories that no module directory may be or hold.
 * @returns Where the code is and the files to grant.
 * @throws {ExtensionError} when the module is missing or its directory is too broad to grant.
 */
export async function extensionCode(
  extensionId: string,
  moduleUrl: string,
  options: ExtensionCodeOptions = {},
): Promise<ExtensionCode> {
  const url = new URL(moduleUrl);
  if (url.protocol !== "file:") return { url: url.href, files: [], remoteHost: url.host };
  let real: string;
  try {
    real = await Deno.realPath(fileURLToPath(url));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ExtensionError(
        extensionId,
        `has no module at ${fileURLToPath(url)}; fix "module" in its registration`,
      );
    }
    throw error;
  }
  const dir = dirname(real);
  const tooBroad = (why: string): never => {
    throw new ExtensionError(
      extensionId,
      `has its module in ${dir}, ${why}: its code could read every file there; move the module and its files into a directory of their own`,
    );
  };
  const within = (path: string | undefined) =>
    path !== undefined && (path === dir || path.startsWith(dir === "/" ? "/" : `${dir}${sep}`));
  if (dir === "/") tooBroad("the root directory");
  const home = options.home ? await realOrSelf(options.home) : undefined;
  if (within(home)) {
    tooBroad(home === dir ? "your home directory" : "which holds your home directory");
  }
  const stateDir = options.stateDir ? await realOrSelf(options.stateDir) : undefined;
  if (within(stateDir)) tooBroad("which holds sandboxer's state directory");
  const maxFiles = options.maxFiles ?? 2000;
  const files: string[] = [];
  const walk = async (at: string) => {
    for await (const entry of Deno.readDir(at)) {
      // Dot-files are config and secrets (.env, .git, .ssh), never an extension's code.
      if (entry.name.startsWith(".") || entry.isSymlink) continue;
      const path = `${at}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile) {
        files.push(path);
        if (files.length > maxFiles) tooBroad(`which holds more than ${maxFiles} files`);
      }
    }
  };
  await walk(dir);
  if (!files.includes(real)) files.push(real);
  return { url: pathToFileURL(real).href, dir, files };
}

async function realOrSelf(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return normalize(resolve(path));
  }
}
