/**
 * Which local changes a `sync --watch` acts on: a change to a path that the
 * sync would not send (ignored by git, matched by the profile's
 * `sync.exclude`, inside `.git`) must not start a sync, or an editor's swap
 * files and a build's outputs would keep the sandbox busy.
 *
 * @module
 */

import { gitIgnored } from "./git_selection.ts";

/** What decides whether a change matters: the sync's own settings. */
export interface WatchFilterOptions {
  /** The profile's `sync.gitignore`. */
  gitignore: boolean;
  /** The profile's `sync.exclude` (rsync patterns). */
  exclude: readonly string[];
  /** The profile's `sync.include_git`. */
  includeGit?: boolean;
}

/**
 * Build the filter for `repo`.
 *
 * @param repo The local directory being synced.
 * @param options The sync's settings.
 * @returns A function that keeps, of absolute changed paths, those a sync would send.
 *
 * @example
 * ```ts ignore
 * import { changeFilter } from "./watch_filter.ts";
 * const relevant = changeFilter("/home/me/app", { gitignore: true, exclude: ["*.log"] });
 * console.log(await relevant(["/home/me/app/a.log", "/home/me/app/src/x.ts"])); // ["src/x.ts"]
 * ```
 */
export function changeFilter(
  repo: string,
  options: WatchFilterOptions,
): (paths: readonly string[], signal?: AbortSignal) => Promise<string[]> {
  const root = repo.replace(/\/+$/, "");
  const rules = options.exclude.map(excludeRule);
  return async (paths, signal) => {
    const kept = new Set<string>();
    for (const path of paths) {
      if (!path.startsWith(`${root}/`)) continue;
      const rel = path.slice(root.length + 1);
      const parts = rel.split("/");
      if (!options.includeGit && parts.includes(".git")) continue;
      if (rules.some((rule) => rule(parts))) continue;
      kept.add(rel);
    }
    if (!options.gitignore || kept.size === 0) return [...kept];
    const ignored = await gitIgnored(root, [...kept], signal);
    return [...kept].filter((rel) => !ignored.has(rel));
  };
}

/**
 * An rsync exclude pattern as a test on a path's segments, in rsync's terms:
 * a pattern without `/` matches any one name, a leading `/` anchors it at the
 * top, a trailing `/` is dropped (a changed path is not known to be a
 * directory, and anything under a matched directory is matched anyway).
 */
function excludeRule(pattern: string): (parts: readonly string[]) => boolean {
  const anchored = pattern.startsWith("/");
  const body = pattern.replace(/^\/+/, "").replace(/\/+$/, "");
  const regex = globRegExp(body);
  return (parts) => {
    // Every leading part of the path is a file or directory rsync would test.
    for (let end = 1; end <= parts.length; end++) {
      if (anchored || body.includes("/")) {
        const starts = anchored ? [0] : Array.from({ length: end }, (_, i) => i);
        for (const start of starts) {
          if (regex.test(parts.slice(start, end).join("/"))) return true;
        }
      } else if (regex.test(parts[end - 1])) {
        return true;
      }
    }
    return false;
  };
}

/** rsync's wildcards: `**` crosses `/`, `*` and `?` do not; `[...]` passes through. */
function globRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (c === "*") {
      source += "[^/]*";
    } else if (c === "?") {
      source += "[^/]";
    } else if (c === "[") {
      const close = glob.indexOf("]", i + 1);
      if (close === -1) {
        source += "\\[";
      } else {
        source += `[${glob.slice(i + 1, close).replace(/^!/, "^").replace(/\\/g, "\\\\")}]`;
        i = close;
      }
    } else {
      source += c.replace(/[.+^${}()|\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${source}$`);
}
