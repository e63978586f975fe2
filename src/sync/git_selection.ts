/**
 * Which files a sync sends. In a git work tree it is git's own answer —
 * exactly the files `git ls-files --cached --others --exclude-standard`
 * lists (nested `.gitignore` files and negations, `.git/info/exclude`,
 * `core.excludesFile`, escaped `\#` and `\!` patterns, files tracked despite
 * an ignore rule), with the files of checked-out submodules chosen the same
 * way inside each submodule. Outside a work tree, or without a usable `git`,
 * it is rsync's own reading of `.gitignore` files, as before, and the caller
 * prints {@linkcode FileSelection.notice}.
 *
 * How git's answer reaches rsync: one `git ls-files -z --others --ignored
 * --exclude-standard --directory` per repository lists what git leaves out
 * (a wholly ignored directory as one entry); submodules are found in
 * `.gitmodules`. Each ignored path becomes an
 * anchored literal exclude (`/build/`, `/src/a.o`): up to 200 of them as
 * `--exclude=` arguments, more in a temporary `--exclude-from` file (which
 * needs write access to the temp directory). rsync applies excludes on both sides, so a path
 * ignored here is also never deleted there. Many ignored files of one
 * extension in one directory (an in-tree C build) are folded into one
 * `/dir/*.o` rule when every entry of the directory that it matches is
 * ignored, so rsync's per-file rule check stays short.
 *
 * Paths that exist only on the remote side (build outputs such as
 * `dist-newstyle/`) are not in git's listing; they are protected from
 * `--delete` by the receiving side's `.gitignore` files, read by rsync
 * (`--filter=:-r .gitignore`) exactly as before. `.git` itself is never sent
 * unless `includeGit`.
 *
 * Directories are created as rsync walks them, so a directory that holds only
 * ignored files arrives empty.
 *
 * @module
 */

import { exists } from "../core/fs.ts";
import { MissingProgramError, PermissionError } from "../core/errors.ts";
import { mapPermissionError } from "../core/permissions.ts";
import { run } from "../process/run.ts";
import {
  compareBytes,
  concat,
  extensionOf,
  foldedRule,
  joinLines,
  literalRule,
  SLASH,
  splitNul,
  splitPath,
  startsWith,
} from "./path_bytes.ts";

/** Options for {@linkcode selectFiles}. */
export interface SelectFilesOptions {
  /** Leave out what git (or `.gitignore` files) ignore: the profile's `sync.gitignore`. */
  gitignore: boolean;
  /** Send `.git` directories and files as well: the profile's `sync.include_git`. */
  includeGit?: boolean;
  /** Aborting it stops git. */
  signal?: AbortSignal;
}

/** The files of one sync, as rsync filter arguments; dispose it once rsync has finished. */
export interface FileSelection extends AsyncDisposable {
  /**
   * `git`: git's own listing. `gitignore`: rsync's reading of `.gitignore`
   * files (no work tree, or no usable git). `all`: nothing is ignored.
   */
  readonly mode: "git" | "gitignore" | "all";
  /** rsync filter arguments, in order; used by the rsync sync and the SFTP fallback alike. */
  readonly filterArgs: readonly string[];
  /** Why git's listing is not used although ignore rules were asked for: one line. */
  readonly notice?: string;
  /** Number of exclude rules made from git's listing. */
  readonly rules: number;
}

/** rsync's reading of `.gitignore` files, as sandboxer used before git was asked. */
export const GITIGNORE_FILTER = "--filter=:- .gitignore";
/** The same rules on the receiving side only: they spare remote-only ignored paths. */
const RECEIVER_GITIGNORE_FILTER = "--filter=:-r .gitignore";
/** `.git` directories (and submodules' `.git` files) at any depth. */
const GIT_DIR_EXCLUDE = "--exclude=.git";

/** How far the selection goes before it changes tactics. */
const LIMITS = {
  /** At least this many ignored entries with one extension in one directory are folded. */
  foldMin: 8,
  /** Up to this many rules (and bytes) go on rsync's command line; more go in a file. */
  argumentRules: 200,
  argumentBytes: 16_384,
  /** Nested submodules deeper than this are taken as a loop. */
  submoduleDepth: 16,
} as const;

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** git could not give a listing; the message is the notice. */
class GitUnusable extends Error {}

/**
 * Decide how the files of `source` are selected and prepare the rsync
 * arguments for it.
 *
 * @param source The local directory being synced.
 * @param options Ignore rules on or off, `.git` in or out, abort signal.
 * @returns The selection; dispose it after rsync has run (it may hold a temporary file).
 * @throws {PermissionError} When the exclude file cannot be written in the temp directory.
 *
 * @example
 * ```ts ignore
 * import { selectFiles } from "./git_selection.ts";
 * await using selection = await selectFiles("/home/me/app", { gitignore: true });
 * if (selection.notice) console.error(selection.notice);
 * console.log(selection.filterArgs); // ["--exclude-from=/tmp/sbx-select-…", "--exclude=.git", …]
 * ```
 */
export async function selectFiles(
  source: string,
  options: SelectFilesOptions,
): Promise<FileSelection> {
  const gitArgs = options.includeGit ? [] : [GIT_DIR_EXCLUDE];
  if (!options.gitignore) return fixed("all", gitArgs);
  let excluded: Uint8Array[];
  try {
    excluded = await ignoredPaths(source, new Uint8Array(0), 0, options.signal);
  } catch (error) {
    if (!(error instanceof GitUnusable)) throw error;
    return fixed("gitignore", [GITIGNORE_FILTER, ...gitArgs], error.message);
  }
  const rules = await foldRules(source, excluded, options.signal);
  const asArgs = rulesAsArguments(rules);
  if (asArgs !== undefined) {
    return {
      ...fixed("git", [...asArgs, ...gitArgs, RECEIVER_GITIGNORE_FILTER]),
      rules: rules.length,
    };
  }
  const file = await Deno.makeTempFile({ prefix: "sbx-select-" }).catch((error) => {
    if (error instanceof Deno.errors.NotCapable) {
      throw mapPermissionError(error, "write", "the temp directory", "--allow-write");
    }
    throw error;
  });
  try {
    await Deno.writeFile(file, joinLines(rules));
  } catch (error) {
    await Deno.remove(file).catch(() => {});
    throw error;
  }
  return {
    mode: "git",
    filterArgs: [`--exclude-from=${file}`, ...gitArgs, RECEIVER_GITIGNORE_FILTER],
    rules: rules.length,
    async [Symbol.asyncDispose]() {
      await Deno.remove(file).catch(() => {});
    },
  };
}

/**
 * The rules as `--exclude=` arguments when they are few and valid UTF-8 (a
 * command line holds only text): no temporary file, so no write permission.
 */
function rulesAsArguments(rules: readonly Uint8Array[]): string[] | undefined {
  let size = 0;
  for (const rule of rules) size += rule.length;
  if (rules.length > LIMITS.argumentRules || size > LIMITS.argumentBytes) return undefined;
  const strict = new TextDecoder("utf-8", { fatal: true });
  try {
    return rules.map((rule) => `--exclude=${strict.decode(rule)}`);
  } catch {
    return undefined;
  }
}

function fixed(
  mode: FileSelection["mode"],
  filterArgs: string[],
  notice?: string,
): FileSelection {
  const selection: FileSelection = {
    mode,
    filterArgs,
    rules: 0,
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
  return notice === undefined ? selection : { ...selection, notice };
}

/**
 * Which of `paths` (relative to `source`) git ignores, by the same rules as
 * the listing a sync uses: `git check-ignore` leaves tracked files out, as
 * `ls-files` does. Outside a work tree, or without git, nothing is reported
 * ignored, so a watcher errs towards one sync too many.
 *
 * @param source The local directory being synced.
 * @param paths Changed paths, relative to `source`.
 * @param signal Aborting it stops git.
 * @returns The ignored ones.
 */
export async function gitIgnored(
  source: string,
  paths: readonly string[],
  signal?: AbortSignal,
): Promise<Set<string>> {
  if (paths.length === 0) return new Set();
  try {
    // Exit 1 means "none of them is ignored"; NUL-separated on both sides, so any name survives.
    const out = await git(source, ["check-ignore", "-z", "--stdin"], signal, [1], {
      stdin: joinNul(paths),
    });
    return new Set(splitNul(out).map((path) => text.decode(path)));
  } catch (error) {
    if (error instanceof GitUnusable) return new Set();
    throw error;
  }
}

function joinNul(paths: readonly string[]): Uint8Array {
  return utf8.encode(paths.map((path) => `${path}\0`).join(""));
}

/**
 * Run git in `dir` and return its raw stdout; a failure (an exit code other
 * than 0 and `alsoFine`) is {@linkcode GitUnusable}.
 */
async function git(
  dir: string,
  args: string[],
  signal?: AbortSignal,
  alsoFine: readonly number[] = [],
  input: { stdin?: Uint8Array } = {},
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let result;
  try {
    result = await run(["git", "-C", dir, ...args], {
      signal,
      allowFailure: true,
      stdin: input.stdin,
      onStdout: (chunk) => chunks.push(chunk.slice()),
    });
  } catch (error) {
    if (error instanceof MissingProgramError) {
      throw new GitUnusable("git is not installed, so .gitignore files are read by rsync");
    }
    if (error instanceof PermissionError) {
      throw new GitUnusable(
        "sandboxer may not run git (add it to --allow-run), so .gitignore files are read by rsync",
      );
    }
    throw error;
  }
  if (result.code !== 0 && !alsoFine.includes(result.code)) {
    const why = result.stderr.trim().split("\n").at(-1)?.replace(/^fatal: /, "") ?? "";
    throw new GitUnusable(
      /not a git repository/.test(result.stderr)
        ? `${dir} is not in a git work tree, so .gitignore files are read by rsync`
        : `git cannot list ${dir} (${
          why || `exit ${result.code}`
        }), so .gitignore files are read by rsync`,
    );
  }
  let size = 0;
  for (const chunk of chunks) size += chunk.length;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

const DOT_SLASH = utf8.encode("./");
const DOT_GIT = "/.git";

/**
 * What git leaves out of the repository at `root/prefix` and of its
 * checked-out submodules, as paths relative to `root` (directories end in `/`).
 */
async function ignoredPaths(
  root: string,
  prefix: Uint8Array,
  depth: number,
  signal?: AbortSignal,
): Promise<Uint8Array[]> {
  const dir = prefix.length === 0 ? root : `${root}/${text.decode(prefix.subarray(0, -1))}`;
  // Both at once; allSettled so a failure of one never leaves the other's rejection unheard.
  const [ignored, where] = await Promise.allSettled([
    git(
      dir,
      ["ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"],
      signal,
    ),
    git(dir, ["rev-parse", "--show-toplevel", "--show-prefix"], signal),
  ]);
  if (ignored.status === "rejected") throw ignored.reason;
  if (where.status === "rejected") throw where.reason;
  const listed = splitNul(ignored.value);
  if (listed.length === 1 && compareBytes(listed[0], DOT_SLASH) === 0 && depth === 0) {
    throw new GitUnusable(
      `${root} is itself ignored by its git repository, so .gitignore files are read by rsync`,
    );
  }
  const paths = dropCoveredDirectories(listed).map((p) => concat([prefix, p]));
  if (depth >= LIMITS.submoduleDepth) return paths;
  const [top, inTop = ""] = text.decode(where.value).split("\n");
  for (const submodule of await submodulePaths(top, signal)) {
    if (!submodule.startsWith(inTop)) continue;
    const below = submodule.slice(inTop.length);
    // Only a checked-out submodule has files (and a .git of its own) to list.
    if (below === "" || !(await exists(`${dir}/${below}${DOT_GIT}`))) continue;
    const next = concat([prefix, utf8.encode(`${below}/`)]);
    paths.push(...await ignoredPaths(root, next, depth + 1, signal));
  }
  return paths;
}

/**
 * The submodule paths `.gitmodules` registers at the top of a work tree
 * (relative to it). Reading that small file costs far less than listing the
 * whole index for gitlinks; a repository nested without `git submodule add`
 * is sent as a plain directory.
 */
async function submodulePaths(top: string, signal?: AbortSignal): Promise<string[]> {
  if (!(await exists(`${top}/.gitmodules`))) return [];
  const out = await git(
    top,
    ["config", "-z", "--file", ".gitmodules", "--get-regexp", "^submodule\\..*\\.path$"],
    signal,
    [1], // no submodule registered
  );
  // Each entry is "submodule.<name>.path\n<path>".
  return splitNul(out).map((entry) => text.decode(entry.subarray(entry.indexOf(0x0a) + 1)))
    .filter((path) => path !== "" && !path.startsWith("/") && !path.split("/").includes(".."));
}

/**
 * git lists a directory whose contents are all ignored both as `dir/` and
 * entry by entry; only a directory listed alone is ignored as a whole. Keep
 * the entries, so a remote file git would not ignore there is still deleted.
 */
function dropCoveredDirectories(listed: Uint8Array[]): Uint8Array[] {
  const sorted = [...listed].sort(compareBytes);
  const kept: Uint8Array[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const entry = sorted[i];
    const isDir = entry[entry.length - 1] === SLASH;
    if (compareBytes(entry, DOT_SLASH) === 0) continue;
    if (isDir && i + 1 < sorted.length && startsWith(sorted[i + 1], entry)) continue;
    kept.push(entry);
  }
  return kept;
}

/**
 * The exclude rules for the ignored paths: one anchored literal each, except
 * that `LIMITS.foldMin` or more ignored entries of one extension in one directory
 * become one `/dir/*.ext` rule when nothing else in that directory matches it
 * (checked on disk, and with git for files deleted locally but still tracked).
 */
async function foldRules(
  root: string,
  paths: readonly Uint8Array[],
  signal?: AbortSignal,
): Promise<Uint8Array[]> {
  const groups = new Map<string, { dir: Uint8Array; ext: Uint8Array; paths: Uint8Array[] }>();
  for (const path of paths) {
    const [dir, name] = splitPath(path);
    const ext = extensionOf(name);
    if (ext === undefined) continue;
    const key = `${text.decode(dir)}\0${text.decode(ext)}`;
    const group = groups.get(key);
    if (group) group.paths.push(path);
    else groups.set(key, { dir, ext, paths: [path] });
  }
  const candidates = [...groups.values()].filter((g) => g.paths.length >= LIMITS.foldMin);
  const folded = new Set<Uint8Array>();
  const verdicts = new Array<boolean>(candidates.length);
  let next = 0;
  const worker = async () => {
    while (next < candidates.length) {
      signal?.throwIfAborted();
      const i = next++;
      const group = candidates[i];
      verdicts[i] = await onlyIgnoredMatch(root, group.dir, group.ext, group.paths.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, candidates.length) }, worker));
  const foldable = candidates.filter((_, i) => verdicts[i]);
  // A file deleted locally but still in the index would be spared by the wider rule.
  const tracked = await trackedMatches(root, foldable, signal);
  const rules: Uint8Array[] = [];
  for (const group of foldable) {
    if (tracked.has(group)) continue;
    for (const path of group.paths) folded.add(path);
    rules.push(foldedRule(group.dir, group.ext));
  }
  for (const path of paths) if (!folded.has(path)) rules.push(literalRule(path));
  return rules;
}

/** Whether `dir` (relative to root) holds exactly `count` entries named `*.ext`. */
async function onlyIgnoredMatch(
  root: string,
  dir: Uint8Array,
  ext: Uint8Array,
  count: number,
): Promise<boolean> {
  const suffix = `.${text.decode(ext)}`;
  // The names came from git as bytes; a directory that does not decode is not folded.
  const path = `${root}/${text.decode(dir)}`;
  if (path.includes("\ufffd")) return false;
  let matching = 0;
  try {
    for await (const entry of Deno.readDir(path)) {
      // rsync's "*" also matches nothing: a file named ".o" counts for "*.o" too.
      if (entry.name.endsWith(suffix)) matching++;
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
  return matching === count;
}

async function trackedMatches<T extends { dir: Uint8Array; ext: Uint8Array }>(
  root: string,
  groups: readonly T[],
  signal?: AbortSignal,
): Promise<Set<T>> {
  const hit = new Set<T>();
  if (groups.length === 0) return hit;
  // One listing of the tracked files under the folded directories (names taken literally);
  // the suffix is matched here.
  const specs = [...new Set(groups.map((g) => `:(literal)${text.decode(g.dir) || "."}`))];
  const out = await git(
    root,
    ["ls-files", "-z", "--cached", "--recurse-submodules", "--", ...specs],
    signal,
  );
  const namesByDir = new Map<string, Uint8Array[]>();
  for (const path of splitNul(out)) {
    const [dir, name] = splitPath(path);
    const key = text.decode(dir);
    const names = namesByDir.get(key);
    if (names) names.push(name);
    else namesByDir.set(key, [name]);
  }
  for (const group of groups) {
    const suffix = concat([utf8.encode("."), group.ext]);
    const names = namesByDir.get(text.decode(group.dir)) ?? [];
    const endsWithSuffix = (name: Uint8Array) =>
      name.length >= suffix.length &&
      compareBytes(name.subarray(name.length - suffix.length), suffix) === 0;
    if (names.some(endsWithSuffix)) hit.add(group);
  }
  return hit;
}
