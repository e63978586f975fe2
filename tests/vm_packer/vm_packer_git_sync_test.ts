// Sync of a git work tree through the real CLI against real sshds, over rsync (the relay) and
// over the SFTP fallback: the workspace receives exactly the files `git ls-files --cached
// --others --exclude-standard` lists (submodule included) minus sync.exclude; a tracked file
// deleted locally is deleted remotely, remote-only ignored build output survives, and `.git`
// arrives only when the profile asks for it.
import assert from "node:assert/strict";
import { createOk, startTestVm, type TestVm } from "../harness/test_vm.ts";
import {
  filesUnder,
  gitListedFiles,
  makeGitCorpus,
  MUST_NOT_SEND,
  MUST_SEND,
} from "../../src/testing/git_corpus.ts";

const MARKER = ".sandboxer.json";

/** A directory of links to the programs sandboxer's remote scripts use, but not rsync. */
async function binWithoutRsync(): Promise<string> {
  const bin = await Deno.makeTempDir({ prefix: "sbx-norsync-bin-" });
  await Deno.chmod(bin, 0o755);
  const programs = [
    "sh",
    "mkdir",
    "rm",
    "ls",
    "grep",
    "printf",
    "find",
    "cat",
    "ln",
    "id",
    "chmod",
    // What the workspace protocol's removal and lock need of any host (docs/architecture.md).
    "head",
    "mv",
    "rmdir",
    "sleep",
    "tr",
    "cut",
    "flock",
  ];
  for (const program of programs) await Deno.symlink(`/usr/bin/${program}`, `${bin}/${program}`);
  return bin;
}

async function checkSync(vm: TestVm, method: "rsync" | "sftp"): Promise<void> {
  const repo = await makeGitCorpus(`${vm.dir}/corpus`);
  const profile = await vm.profile("git", { extra: ["sync:", '  exclude: ["*.secret"]'] });
  await Deno.writeTextFile(`${repo}/creds.secret`, "excluded by the profile\n");
  const expected = await gitListedFiles(repo);
  assert.ok(expected.includes("creds.secret"), "git lists it; sync.exclude takes it out");
  const wanted = expected.filter((f) => f !== "creds.secret");

  const record = await createOk(vm, ["--profile", profile, "--repo", repo, "--name", method]);
  const workspace = record.workspace as string;
  const sent = await filesUnder(workspace, [MARKER]);
  assert.deepEqual(sent, wanted);
  for (const name of MUST_SEND) assert.ok(sent.includes(name), `${name} was not sent`);
  for (const name of MUST_NOT_SEND) assert.ok(!sent.includes(name), `${name} was sent`);
  assert.equal(await Deno.readTextFile(`${workspace}/secrets/readme.txt`), "secrets/readme.txt\n");
  assert.equal(await Deno.readLink(`${workspace}/link`), "secrets/readme.txt");

  // Build output made on the host, which git would ignore, survives; a stray file does not.
  const made = await vm.cli([
    "exec",
    method,
    "--",
    "sh",
    "-c",
    "mkdir -p dist-newstyle && echo out > dist-newstyle/remote.bin && echo x > stray.txt",
  ]);
  assert.equal(made.code, 0, made.stderr);
  await Deno.remove(`${repo}/tracked-then-deleted.txt`);
  await Deno.remove(`${repo}/untracked.txt`);
  await Deno.mkdir(`${repo}/secrets/new`);
  await Deno.writeTextFile(`${repo}/secrets/new/key.pem`, "ignored\n");
  const synced = await vm.cli(["sync", method, "--repo", repo, "--json"]);
  assert.equal(synced.code, 0, synced.stderr);
  assert.equal(JSON.parse(synced.stdout).method, method);
  assert.ok(!synced.stderr.includes("git work tree"), `no fallback notice: ${synced.stderr}`);
  const after = await filesUnder(workspace, [MARKER]);
  const wantedAfter = (await gitListedFiles(repo)).filter((f) => f !== "creds.secret");
  assert.deepEqual(after, [...wantedAfter, "dist-newstyle/remote.bin"].sort());
  assert.ok(!after.includes("tracked-then-deleted.txt"), "a deleted tracked file is deleted");
  assert.ok(!after.includes("stray.txt"));
  assert.equal(JSON.parse(await Deno.readTextFile(`${workspace}/${MARKER}`)).id, method);

  const destroyed = await vm.cli(["destroy", method]);
  assert.equal(destroyed.code, 0, destroyed.stderr);
}

Deno.test("vm-packer sync of a git work tree over rsync sends exactly git's files", async () => {
  await using vm = await startTestVm();
  await checkSync(vm, "rsync");
});

Deno.test("vm-packer sync of a git work tree over the SFTP fallback sends exactly git's files", async () => {
  const bin = await binWithoutRsync();
  try {
    await using vm = await startTestVm({ extraConfig: [`SetEnv PATH=${bin}`] });
    await checkSync(vm, "sftp");
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test("vm-packer sync: sync.include_git sends .git; a tree outside git gets a one-line notice after the sync", async () => {
  await using vm = await startTestVm();
  const repo = await makeGitCorpus(`${vm.dir}/corpus`);
  const profile = await vm.profile("withgit", { extra: ["sync:", "  include_git: true"] });
  const record = await createOk(vm, ["--profile", profile, "--repo", repo, "--name", "withgit"]);
  const sent = await filesUnder(record.workspace as string, [MARKER]);
  assert.ok(sent.includes(".git/HEAD"));
  assert.ok(!sent.includes("secrets/key.pem"));

  const plain = `${vm.dir}/plain`;
  await Deno.mkdir(plain);
  await Deno.writeTextFile(`${plain}/.gitignore`, "*.log\n");
  await Deno.writeTextFile(`${plain}/a.txt`, "a\n");
  await Deno.writeTextFile(`${plain}/b.log`, "b\n");
  const other = await createOk(vm, ["--profile", profile, "--name", "plain"]);
  const synced = await vm.cli(["sync", "plain", "--repo", plain]);
  assert.equal(synced.code, 0, synced.stderr);
  const notices = synced.stderr.split("\n").filter((l) => l.includes("not in a git work tree"));
  assert.equal(notices.length, 1, synced.stderr);
  assert.match(notices[0], /\.gitignore files are read by rsync$/);
  // Outside git, .gitignore files are read by rsync as before.
  assert.deepEqual(await filesUnder(other.workspace as string, [MARKER]), [".gitignore", "a.txt"]);
});
