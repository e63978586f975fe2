/**
 * A git work tree full of ignore rules that rsync's own `.gitignore` reading gets wrong, and the
 * oracle for it: the files `git ls-files --cached --others --exclude-standard` lists (in the
 * repository and, prefixed, in each checked-out submodule) that exist on disk.
 *
 * Built with the real `git`; every config it sets is repository-local (the user's global config
 * is never touched, but is neutralised for these git calls by `GIT_CONFIG_GLOBAL=/dev/null`).
 */
import assert from "node:assert/strict";

const decoder = new TextDecoder();

/** Environment for git calls on the corpus: no global or system config, fixed identity. */
export const GIT_ENV: Record<string, string> = {
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_AUTHOR_NAME: "corpus",
  GIT_AUTHOR_EMAIL: "corpus@sandboxer.invalid",
  GIT_COMMITTER_NAME: "corpus",
  GIT_COMMITTER_EMAIL: "corpus@sandboxer.invalid",
};

/** Run git in `dir`; returns stdout. */
export async function git(dir: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", {
    args: ["-C", dir, ...args],
    env: GIT_ENV,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, `git ${args.join(" ")}: ${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout);
}

async function write(root: string, path: string, text = `${path}\n`): Promise<void> {
  const full = `${root}/${path}`;
  await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(full, text);
}

/** Names the corpus must and must not send, checked besides the oracle (in case it is wrong). */
export const MUST_SEND: readonly string[] = [
  ".gitignore",
  "secrets/readme.txt",
  "#other",
  "keep.log",
  "logs/.keep",
  "sub/only-top.txt",
  "doc/x/b.html",
  "build/forced.txt",
  "objs/forced.o",
  "many/main.c",
  "sub/important.tmp",
  "sub/deep/x.log",
  "untracked.txt",
  "xweird[1]",
  "new\nline.txt",
  "link",
  "mod/lib.txt",
  "mod/inner/data.txt",
  "mod/new.txt",
  "mod/.gitignore",
  "tracked-then-deleted.txt",
];

/** Names git ignores (or that are git's own), which must never be sent. */
export const MUST_NOT_SEND: readonly string[] = [
  "secrets/key.pem",
  "secrets/a/b/key.pem",
  "#hash",
  "!bang",
  "app.log",
  "logs/a.txt",
  "only-top.txt",
  "doc/a.html",
  "trailing-space ",
  "build/out.bin",
  "objs/a.o",
  "many/m0.o",
  "sub/a.tmp",
  "info-excluded.txt",
  "global-excluded.txt",
  "weird[1]",
  "weird\\back",
  "weird*star",
  "new\nline.ign",
  "mod/x.cache",
  "mod/y.cache",
  "dist-newstyle/cache.bin",
  ".git/HEAD",
  "mod/.git",
];

/**
 * Make the corpus in `dir` (which must not exist yet): a repository with a checked-out
 * submodule, committed, plus untracked and ignored files.
 *
 * @returns The work tree's path.
 */
export async function makeGitCorpus(dir: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  // The submodule's own repository, with its own ignore rules.
  const upstream = `${dir}/upstream-mod`;
  await Deno.mkdir(upstream);
  await git(upstream, "init", "-q", "-b", "main");
  await write(upstream, ".gitignore", "*.cache\n");
  await write(upstream, "lib.txt");
  await write(upstream, "inner/data.txt");
  await git(upstream, "add", "-A");
  await git(upstream, "commit", "-q", "-m", "mod");

  const repo = `${dir}/repo`;
  await Deno.mkdir(repo);
  await git(repo, "init", "-q", "-b", "main");
  await write(
    repo,
    ".gitignore",
    [
      "*.log",
      "!keep.log",
      "build/",
      "dist-newstyle/",
      // git: "**/" matches zero or more directories, so this ignores secrets/key.pem too.
      "secrets/**/key.pem",
      "\\#hash",
      "\\!bang",
      "logs/*",
      "!logs/.keep",
      "/only-top.txt",
      "doc/*.html",
      "trailing-space\\ ",
      "*.o",
      "weird*",
      "*.ign",
      "",
    ].join("\n"),
  );
  await write(repo, "sub/.gitignore", "*.tmp\n!important.tmp\n");
  await write(repo, "sub/deep/.gitignore", "!*.log\n");
  await write(repo, ".git/info/exclude", "info-excluded.txt\n");
  await write(dir, "global-excludes", "global-excluded.txt\n");
  await git(repo, "config", "core.excludesFile", `${dir}/global-excludes`);

  for (
    const path of [
      "secrets/readme.txt",
      "secrets/key.pem",
      "secrets/a/b/key.pem",
      "#hash",
      "#other",
      "!bang",
      "app.log",
      "keep.log",
      "logs/a.txt",
      "logs/.keep",
      "only-top.txt",
      "sub/only-top.txt",
      "doc/a.html",
      "doc/x/b.html",
      "trailing-space ",
      "build/out.bin",
      "build/forced.txt",
      "objs/a.o",
      "objs/b.o",
      "objs/main.c",
      "objs/forced.o",
      "many/main.c",
      "sub/a.tmp",
      "sub/important.tmp",
      "sub/deep/x.log",
      "info-excluded.txt",
      "global-excluded.txt",
      "weird[1]",
      "weird\\back",
      "weird*star",
      "xweird[1]",
      "new\nline.ign",
      "new\nline.txt",
      "tracked-then-deleted.txt",
    ]
  ) {
    await write(repo, path);
  }
  // Enough ignored objects in one directory to be folded into one rule.
  for (let i = 0; i < 12; i++) await write(repo, `many/m${i}.o`);
  await Deno.symlink("secrets/readme.txt", `${repo}/link`);
  await git(repo, "add", "-A");
  // Tracked although ignored: git lists them, so they are sent.
  await git(repo, "add", "-f", "build/forced.txt", "objs/forced.o");
  await git(
    repo,
    "-c",
    "protocol.file.allow=always",
    "submodule",
    "add",
    "-q",
    upstream,
    "mod",
  );
  await git(repo, "commit", "-q", "-m", "corpus");
  await write(repo, "mod/x.cache");
  await write(repo, "mod/y.cache");
  await write(repo, "mod/new.txt");
  await write(repo, "untracked.txt");
  await write(repo, "dist-newstyle/cache.bin");
  return repo;
}

function nulList(text: string): string[] {
  return text.split("\0").filter((p) => p !== "");
}

async function isFileOrLink(path: string): Promise<boolean> {
  try {
    const info = await Deno.lstat(path);
    return info.isFile || info.isSymlink;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * The oracle: what git lists for the tree (cached, untracked, not ignored), submodules
 * included, that exists as a file or symlink, sorted.
 *
 * @param repo The work tree.
 * @returns Paths relative to it.
 */
export async function gitListedFiles(repo: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  const listed = nulList(
    await git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard"),
  );
  for (const path of listed) {
    const full = `${repo}/${path}`;
    if (await isFileOrLink(full)) out.push(`${prefix}${path}`);
    else if (await isFileOrLink(`${full}/.git`)) {
      out.push(...await gitListedFiles(full, `${prefix}${path}/`));
    }
  }
  return out.sort();
}

/**
 * Files and symlinks under `dir`, relative and sorted, leaving out `skip` names at the top.
 *
 * @param dir A directory.
 * @param skip Top-level names to leave out (the workspace marker).
 * @returns The paths.
 */
export async function filesUnder(dir: string, skip: readonly string[] = []): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for await (const entry of Deno.readDir(rel === "" ? dir : `${dir}/${rel}`)) {
      const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (rel === "" && skip.includes(entry.name)) continue;
      if (entry.isDirectory) await walk(path);
      else out.push(path);
    }
  };
  await walk("");
  return out.sort();
}
