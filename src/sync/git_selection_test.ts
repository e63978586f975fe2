import assert from "node:assert/strict";
import {
  filesUnder,
  git,
  gitListedFiles,
  makeGitCorpus,
  MUST_NOT_SEND,
  MUST_SEND,
} from "../testing/git_corpus.ts";
import { selectFiles } from "./git_selection.ts";
import { literalRule } from "./path_bytes.ts";
import { rsyncFilterArgs } from "./rsync.ts";
import { run } from "../process/run.ts";

const text = new TextDecoder();
const bytes = (s: string) => new TextEncoder().encode(s);

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sbx-gitsel-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** rsync the source into `dest` with the selection, as a sync does (archive, --delete). */
async function rsyncInto(source: string, dest: string, filterArgs: readonly string[]) {
  const argv: [string, ...string[]] = [
    "rsync",
    "--archive",
    "--delete",
    ...rsyncFilterArgs({ gitignore: true, exclude: ["/.sandboxer.json"], selection: filterArgs }),
    "--",
    `${source}/`,
    `${dest}/`,
  ];
  const result = await run(argv, { allowFailure: true });
  assert.equal(result.code, 0, result.stderr);
}

Deno.test("literalRule() escapes exactly when rsync would read wildcards", () => {
  const rule = (s: string) => text.decode(literalRule(bytes(s)));
  assert.equal(rule("a/b c"), "/a/b c");
  assert.equal(rule("dir/"), "/dir/");
  // Without a wildcard rsync takes a backslash literally; with one, it escapes.
  assert.equal(rule("a\\b"), "/a\\b");
  assert.equal(rule("a[1]\\b"), "/a\\[1]\\\\b");
  assert.equal(rule("s*r?"), "/s\\*r\\?");
  // A newline would end the rule's line: it becomes "?", which makes the rule a wildcard one.
  assert.equal(rule("new\nline\\x"), "/new?line\\\\x");
  assert.equal(rule("#c"), "/#c");
});

Deno.test("selectFiles() in a git work tree sends exactly what git ls-files lists", async () => {
  await withTempDir(async (dir) => {
    const repo = await makeGitCorpus(`${dir}/corpus`);
    const expected = await gitListedFiles(repo);
    for (const name of MUST_SEND) assert.ok(expected.includes(name), `oracle lacks ${name}`);
    for (const name of MUST_NOT_SEND) assert.ok(!expected.includes(name), `oracle has ${name}`);

    await using selection = await selectFiles(repo, { gitignore: true });
    assert.equal(selection.mode, "git");
    assert.equal(selection.notice, undefined);
    const dest = `${dir}/dest`;
    await Deno.mkdir(dest);
    await rsyncInto(repo, dest, selection.filterArgs);
    assert.deepEqual(await filesUnder(dest), expected);
    // Twelve ignored objects in many/ became one rule; objs/ keeps literals (forced.o is tracked).
    // So few rules go on the command line: no temporary file.
    const rules = selection.filterArgs.filter((a) => a.startsWith("--exclude=/"))
      .map((a) => a.slice("--exclude=".length));
    assert.equal(rules.length, selection.rules);
    assert.ok(!selection.filterArgs.some((a) => a.startsWith("--exclude-from=")));
    assert.ok(rules.includes("/many/*.o"), rules.join(" "));
    assert.ok(rules.includes("/objs/a.o"), rules.join(" "));
    assert.ok(!rules.includes("/many/m0.o"), rules.join(" "));

    // Deletions: a tracked file deleted locally (still in the index) goes, and so does an
    // untracked one; remote-only paths git would ignore stay, others go.
    await Deno.writeTextFile(`${dest}/remote-only.txt`, "not in git's list: deleted\n");
    await Deno.mkdir(`${dest}/dist-newstyle`, { recursive: true });
    await Deno.writeTextFile(`${dest}/dist-newstyle/remote.bin`, "ignored: survives\n");
    await Deno.writeTextFile(`${dest}/.sandboxer.json`, "{}\n");
    await Deno.remove(`${repo}/tracked-then-deleted.txt`);
    await Deno.remove(`${repo}/untracked.txt`);
    assert.match(await git(repo, "ls-files", "--", "tracked-then-deleted.txt"), /tracked/);
    await using again = await selectFiles(repo, { gitignore: true });
    await rsyncInto(repo, dest, again.filterArgs);
    const after = await filesUnder(dest, [".sandboxer.json"]);
    assert.deepEqual(after, [...await gitListedFiles(repo), "dist-newstyle/remote.bin"].sort());
    assert.ok(!after.includes("tracked-then-deleted.txt"));
    assert.ok(!after.includes("remote-only.txt"));
  });
});

Deno.test("selectFiles() puts many rules in a file, which it removes when disposed", async () => {
  await withTempDir(async (dir) => {
    const repo = await makeGitCorpus(`${dir}/corpus`);
    // 250 ignored files that cannot be folded (each has its own extension).
    await Deno.mkdir(`${repo}/big`);
    await Deno.writeTextFile(`${repo}/big/.gitignore`, "f*\n");
    for (let i = 0; i < 250; i++) await Deno.writeTextFile(`${repo}/big/f${i}.x${i}`, "x");
    await Deno.writeTextFile(`${repo}/big/kept.txt`, "kept\n");
    let file: string;
    {
      await using selection = await selectFiles(repo, { gitignore: true });
      assert.ok(selection.rules > 250, `${selection.rules} rules`);
      const [from] = selection.filterArgs;
      assert.ok(from.startsWith("--exclude-from="), from);
      file = from.slice("--exclude-from=".length);
      assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
      const dest = `${dir}/dest`;
      await Deno.mkdir(dest);
      await rsyncInto(repo, dest, selection.filterArgs);
      assert.deepEqual(await filesUnder(dest), await gitListedFiles(repo));
    }
    await assert.rejects(Deno.stat(file), Deno.errors.NotFound);
  });
});

Deno.test("selectFiles() leaves .git out unless asked, and ignores nothing without gitignore", async () => {
  await withTempDir(async (dir) => {
    const repo = await makeGitCorpus(`${dir}/corpus`);
    const dest = `${dir}/dest`;
    await Deno.mkdir(dest);
    await using withGit = await selectFiles(repo, { gitignore: true, includeGit: true });
    await rsyncInto(repo, dest, withGit.filterArgs);
    const files = await filesUnder(dest);
    assert.ok(files.includes(".git/HEAD"));
    assert.ok(files.includes("mod/.git"), "the submodule's .git file comes along");
    assert.ok(!files.includes("secrets/key.pem"));

    await using all = await selectFiles(repo, { gitignore: false });
    assert.equal(all.mode, "all");
    assert.deepEqual(all.filterArgs, ["--exclude=.git"]);
    const fresh = `${dir}/fresh`;
    await Deno.mkdir(fresh);
    await rsyncInto(repo, fresh, all.filterArgs);
    const everything = await filesUnder(fresh);
    assert.ok(everything.includes("secrets/key.pem"));
    assert.ok(!everything.some((f) => f === ".git/HEAD" || f.endsWith("/.git")));
  });
});

Deno.test("selectFiles() outside a work tree keeps rsync's .gitignore reading, with a notice", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/.gitignore`, "*.log\n");
    await using selection = await selectFiles(dir, { gitignore: true });
    assert.equal(selection.mode, "gitignore");
    assert.deepEqual(selection.filterArgs, ["--filter=:- .gitignore", "--exclude=.git"]);
    assert.match(
      selection.notice ?? "",
      /is not in a git work tree, so \.gitignore files are read by rsync$/,
    );
    assert.equal(selection.notice?.split("\n").length, 1);
  });
});

Deno.test("selectFiles() of a directory git ignores as a whole falls back, with a notice", async () => {
  await withTempDir(async (dir) => {
    const repo = await makeGitCorpus(`${dir}/corpus`);
    await using selection = await selectFiles(`${repo}/dist-newstyle`, { gitignore: true });
    assert.equal(selection.mode, "gitignore");
    assert.match(selection.notice ?? "", /is itself ignored by its git repository/);
  });
});

Deno.test("selectFiles() without git on PATH falls back, with a notice", async () => {
  await withTempDir(async (dir) => {
    const repo = await makeGitCorpus(`${dir}/corpus`);
    // In a child process: PATH is the whole process's, and test files run side by side in one
    // process, so changing it here made a neighbour's spawn of `sh` fail with NotFound.
    const script = `${dir}/select.ts`;
    await Deno.writeTextFile(
      script,
      `import { selectFiles } from ${JSON.stringify(import.meta.resolve("./git_selection.ts"))};
await using selection = await selectFiles(Deno.args[0], { gitignore: true });
console.log(JSON.stringify({ mode: selection.mode, notice: selection.notice }));
`,
    );
    const result = await run(
      [Deno.execPath(), "run", "-q", "--no-config", "-A", script, repo],
      { env: { PATH: `${dir}/empty-bin`, NO_COLOR: "1" }, allowFailure: true },
    );
    assert.equal(result.code, 0, result.stderr);
    const selection = JSON.parse(result.stdout);
    assert.equal(selection.mode, "gitignore");
    assert.match(selection.notice ?? "", /^git is not installed/);
  });
});

Deno.test({
  name: "selectFiles() without --allow-run=git falls back, naming the flag",
  permissions: { read: true, write: true, env: true, run: ["rsync"] },
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "sbx-gitsel-perm-" });
    try {
      await using selection = await selectFiles(dir, { gitignore: true });
      assert.equal(selection.mode, "gitignore");
      assert.match(selection.notice ?? "", /--allow-run/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
