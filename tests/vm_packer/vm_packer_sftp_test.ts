// The SFTP fallback of ext.vm-packer sync, through the real CLI against real sshds: a host without
// rsync (an isolated host whose rootfs lacks it) gets the same tree over SFTP as a host with rsync
// gets from rsync
// (filters, odd names, modes, symlinks, type changes, protected remote files, deletions that
// never follow symlinks); a passphrase key without ssh-agent syncs over SFTP too.
import assert from "node:assert/strict";
import { type IsolatedHost, isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { createOk, snapshotTree, startTestVm } from "../harness/test_vm.ts";
import { exists } from "../helpers.ts";

const ODD = "a b $(x) 'q'.txt";
const MARKER = ".sandboxer.json";
const FALLBACK_WARNING = "syncing over SFTP (slower, no delta transfer)";

/** The source tree, first version: every kind of entry and name the sync must carry. */
async function writeSourceV1(repo: string, outsideTarget: string): Promise<void> {
  const write = (path: string, text: string) => Deno.writeTextFile(`${repo}/${path}`, text);
  for (const dir of ["sub/deeper", "emptydir", "ro", "evil", "y", "build"]) {
    await Deno.mkdir(`${repo}/${dir}`, { recursive: true });
  }
  await write(".gitignore", "*.log\nbuild/\n");
  await write(ODD, "odd\n");
  await write("new\nline", "newline in the name\n");
  await write("\\#012weird", "looks like an rsync escape\n");
  await write("-dash.txt", "dash\n");
  await write("ünï.txt", "unicode\n");
  await write("exec.sh", "#!/bin/sh\necho hi\n");
  await Deno.chmod(`${repo}/exec.sh`, 0o755);
  await write("readonly.txt", "read only\n");
  await Deno.chmod(`${repo}/readonly.txt`, 0o444);
  await write("empty.txt", "");
  // Every byte value, and more than one SFTP write request's worth.
  const binary = new Uint8Array(300_000);
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 7 + (i >> 8)) & 0xff;
  await Deno.writeFile(`${repo}/binary.bin`, binary);
  await write("sub/deeper/nested.txt", "nested\n");
  await write("ro/f.txt", "in a read-only dir\n");
  await Deno.chmod(`${repo}/ro`, 0o555);
  await write("evil/f.txt", "must land in a real directory\n");
  await write("x", "a file that becomes a directory\n");
  await write("y/z", "a directory that becomes a file\n");
  await Deno.symlink(ODD, `${repo}/link-rel`);
  await Deno.symlink(outsideTarget, `${repo}/link-abs`);
  await Deno.symlink("does/not/exist", `${repo}/dangling`);
  // Filtered out: by .gitignore, and by the profile's sync.exclude.
  await write("skip.log", "ignored\n");
  await write("build/out", "ignored\n");
  await write("secret.env", "excluded\n");
}

/** The source tree, second version: adds, deletes, edits, mode and type changes. */
async function writeSourceV2(repo: string): Promise<void> {
  await Deno.remove(`${repo}/empty.txt`);
  await Deno.writeTextFile(`${repo}/added.txt`, "added\n");
  await Deno.writeTextFile(`${repo}/sub/deeper/nested.txt`, "nested, and now longer\n");
  await Deno.chmod(`${repo}/exec.sh`, 0o700);
  await Deno.chmod(`${repo}/readonly.txt`, 0o644);
  await Deno.writeTextFile(`${repo}/readonly.txt`, "read only, rewritten\n");
  await Deno.chmod(`${repo}/readonly.txt`, 0o444);
  await Deno.chmod(`${repo}/ro`, 0o755);
  await Deno.writeTextFile(`${repo}/ro/f.txt`, "in a read-only dir, rewritten\n");
  await Deno.chmod(`${repo}/ro`, 0o555);
  await Deno.remove(`${repo}/x`);
  await Deno.mkdir(`${repo}/x`);
  await Deno.writeTextFile(`${repo}/x/inner.txt`, "x is a directory now\n");
  await Deno.remove(`${repo}/y`, { recursive: true });
  await Deno.writeTextFile(`${repo}/y`, "y is a file now\n");
  await Deno.remove(`${repo}/link-rel`);
  await Deno.symlink("ünï.txt", `${repo}/link-rel`);
}

/**
 * What happens on the host between syncs: build output (gitignored, so protected), junk (not
 * ignored, so deleted), and symlinks that a careless deletion or write would follow.
 */
async function changeWorkspace(
  host: IsolatedHost,
  workspace: string,
  outside: string,
): Promise<void> {
  const at = (path: string) => host.path(`${workspace}/${path}`);
  await Deno.mkdir(at("build"), { recursive: true });
  await Deno.writeTextFile(at("build/out.o"), "build output\n");
  await Deno.writeTextFile(at("debug.log"), "log\n");
  await Deno.writeTextFile(at("junk.txt"), "junk\n");
  await Deno.mkdir(at("rmme"));
  await Deno.writeTextFile(at("rmme/file"), "gone\n");
  await Deno.symlink(outside, at("rmme/link"));
  await Deno.mkdir(at("kept"));
  await Deno.writeTextFile(at("kept/keep.log"), "protected\n");
  await Deno.writeTextFile(at("kept/gone.txt"), "deleted\n");
  await Deno.remove(at("evil"), { recursive: true });
  await Deno.symlink(outside, at("evil"));
  await host.chown(workspace);
}

/** A directory outside every workspace, writable by the login user, that must never change. */
async function outsideDir(host: IsolatedHost): Promise<string> {
  const outside = `${host.homeDir}/outside`;
  await Deno.mkdir(host.path(outside));
  await Deno.writeTextFile(host.path(`${outside}/precious.txt`), "keep me\n");
  await host.chown(outside);
  return outside;
}

async function syncJson(vm: Pick<IsolatedHost, "cli">, id: string, repo: string) {
  const result = await vm.cli(["sync", id, "--repo", repo, "--json"]);
  assert.equal(result.code, 0, result.stderr);
  return { report: JSON.parse(result.stdout), stderr: result.stderr };
}

const SYNC_PROFILE = ["sync:", '  exclude: ["secret.env"]'];

isolatedTest(
  "vm-packer sync falls back to SFTP without remote rsync and matches rsync's tree",
  async (t) => {
    await using bare = await startIsolatedHost({ without: ["rsync"] });
    await using full = await startIsolatedHost();
    const repo = `${bare.dir}/repo`;
    await Deno.mkdir(repo);
    const outsideBare = await outsideDir(bare);
    const outsideFull = await outsideDir(full);
    await writeSourceV1(repo, "/nonexistent/outside-target");

    const a = await createOk(bare, [
      "--profile",
      await bare.profile("bare", { extra: SYNC_PROFILE }),
    ]);
    const b = await createOk(full, [
      "--profile",
      await full.profile("full", { extra: SYNC_PROFILE }),
    ]);
    const wsA = bare.path(a.workspace as string);
    const wsB = full.path(b.workspace as string);
    // A fresh workspace's first sync would be one tar stream (tar_first_sync_test.ts): take the
    // note that says so, so this first sync is the SFTP one and the rsync one compared here.
    for (const [host, record] of [[bare, a], [full, b]] as const) {
      const nonce = (record.handle as { nonce: string }).nonce;
      await Deno.remove(`${host.env.SANDBOXER_HOME}/fresh/${record.id}.${nonce}`);
    }

    await t.step("the bare host really has no rsync, the other one has", async () => {
      const missing = await bare.cli(["exec", a.id, "--", "sh", "-c", "command -v rsync"]);
      assert.notEqual(missing.code, 0, `rsync found at ${missing.stdout}`);
      const present = await full.cli(["exec", b.id, "--", "sh", "-c", "command -v rsync"]);
      assert.equal(present.code, 0, present.stderr);
    });

    await t.step("first sync: SFTP with a warning; same tree as rsync", async () => {
      const viaSftp = await syncJson(bare, a.id, repo);
      assert.ok(
        viaSftp.stderr.includes(`rsync is not installed on ${bare.host}; ${FALLBACK_WARNING}`),
        viaSftp.stderr,
      );
      assert.equal(viaSftp.report.method, "sftp");
      assert.ok(viaSftp.report.files >= 14, JSON.stringify(viaSftp.report));
      const viaRsync = await syncJson(full, b.id, repo);
      assert.equal(viaRsync.report.method, "rsync");
      assert.doesNotMatch(viaRsync.stderr, /SFTP/);

      const treeA = await snapshotTree(wsA, { skip: [MARKER] });
      assert.deepEqual(treeA, await snapshotTree(wsB, { skip: [MARKER] }));
      for (const filtered of ["skip.log", "build", "secret.env"]) {
        assert.equal(filtered in treeA, false, `${filtered} must not be sent`);
      }
      assert.equal(treeA["link-abs"], "symlink -> /nonexistent/outside-target");
      assert.equal(treeA["ro"], "dir 555");
      assert.deepEqual(
        await Deno.readFile(`${wsA}/binary.bin`),
        await Deno.readFile(`${repo}/binary.bin`),
      );
      assert.equal(JSON.parse(await Deno.readTextFile(`${wsA}/${MARKER}`)).id, a.id);
    });

    await t.step("second sync after local and remote changes: still the same tree", async () => {
      await writeSourceV2(repo);
      await changeWorkspace(bare, a.workspace as string, outsideBare);
      await changeWorkspace(full, b.workspace as string, outsideFull);

      const viaSftp = await syncJson(bare, a.id, repo);
      assert.equal(viaSftp.report.method, "sftp");
      assert.ok(viaSftp.report.deleted >= 4, JSON.stringify(viaSftp.report));
      const viaRsync = await syncJson(full, b.id, repo);
      assert.equal(viaRsync.report.method, "rsync");

      const treeA = await snapshotTree(wsA, { skip: [MARKER] });
      assert.deepEqual(treeA, await snapshotTree(wsB, { skip: [MARKER] }));
      // Spot checks of what both did, so "equal" cannot mean "equally wrong".
      assert.equal(await Deno.readTextFile(`${wsA}/build/out.o`), "build output\n");
      assert.equal(await Deno.readTextFile(`${wsA}/debug.log`), "log\n");
      assert.equal(await Deno.readTextFile(`${wsA}/kept/keep.log`), "protected\n");
      for (const gone of ["junk.txt", "rmme", "kept/gone.txt", "empty.txt"]) {
        assert.equal(await exists(`${wsA}/${gone}`), false, `${gone} must be deleted`);
      }
      assert.equal(treeA["evil"], "dir 755");
      assert.equal(treeA["x"], "dir 755");
      assert.match(treeA["y"], /^file 644 /);
      assert.match(treeA["exec.sh"], /^file 700 /);
      assert.equal(treeA["link-rel"], "symlink -> ünï.txt");
      assert.equal(await Deno.readTextFile(`${wsA}/ro/f.txt`), "in a read-only dir, rewritten\n");
      assert.equal(JSON.parse(await Deno.readTextFile(`${wsA}/${MARKER}`)).id, a.id);
      for (const outside of [bare.path(outsideBare), full.path(outsideFull)]) {
        const names = (await Array.fromAsync(Deno.readDir(outside))).map((e) => e.name);
        assert.deepEqual(names, ["precious.txt"], `${outside} was written through a symlink`);
        assert.equal(await Deno.readTextFile(`${outside}/precious.txt`), "keep me\n");
      }
    });

    await t.step("an unchanged tree syncs again to the same result", async () => {
      const before = await snapshotTree(wsA, { skip: [MARKER] });
      const again = await syncJson(bare, a.id, repo);
      assert.equal(again.report.deleted, 0);
      assert.deepEqual(await snapshotTree(wsA, { skip: [MARKER] }), before);
    });

    await t.step("both workspaces tear down, read-only directory included", async () => {
      const result = await bare.cli(["destroy", a.id]);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await bare.rootEntries(), []);
      const other = await full.cli(["destroy", b.id]);
      assert.equal(other.code, 0, other.stderr);
      assert.deepEqual(await full.rootEntries(), []);
    });
  },
);

// On Linux rsync runs over the pooled, already authenticated connection: the passphrase key
// needs no agent and the sync stays rsync. Elsewhere rsync's own ssh cannot use it: SFTP.
const RELAY = Deno.build.os === "linux";

Deno.test("vm-packer sync with a passphrase key and no agent: rsync over the connection (Linux), else SFTP", async () => {
  const passphrase = "correct-horse-7731";
  await using vm = await startTestVm({ keyPassphrase: passphrase });
  const repo = `${vm.dir}/repo`;
  await Deno.mkdir(`${repo}/sub`, { recursive: true });
  await Deno.writeTextFile(`${repo}/.gitignore`, "*.log\n");
  await Deno.writeTextFile(`${repo}/${ODD}`, "odd\n");
  await Deno.writeTextFile(`${repo}/sub/a.txt`, "a\n");
  await Deno.writeTextFile(`${repo}/skip.log`, "ignored\n");
  const profile = await vm.profile("passphrase", {
    target: { passphrase_env: "SANDBOXER_KEY_PASSPHRASE" },
  });
  // An agent inherited from the caller would let rsync's ssh in: make sure there is none.
  const env: Record<string, string> = { SANDBOXER_KEY_PASSPHRASE: passphrase };
  if (Deno.env.get("SSH_AUTH_SOCK") !== undefined) env.SSH_AUTH_SOCK = "";

  const result = await vm.cli(["create", "--profile", profile, "--repo", repo, "--json"], env);
  assert.equal(result.code, 0, result.stderr);
  if (RELAY) {
    assert.ok(!result.stderr.includes(FALLBACK_WARNING), result.stderr);
  } else {
    assert.match(result.stderr, /needs a passphrase and no ssh-agent is running/);
    assert.ok(result.stderr.includes(FALLBACK_WARNING), result.stderr);
  }
  assert.ok(!result.stderr.includes(passphrase) && !result.stdout.includes(passphrase));
  const { id, workspace } = JSON.parse(result.stdout);
  assert.deepEqual(Object.keys(await snapshotTree(workspace)), [
    ".",
    ".gitignore",
    MARKER,
    ODD,
    "sub",
    "sub/a.txt",
  ]);

  await Deno.writeTextFile(`${repo}/sub/b.txt`, "b\n");
  await Deno.remove(`${repo}/sub/a.txt`);
  const sync = await vm.cli(["sync", id, "--repo", repo, "--json"], env);
  assert.equal(sync.code, 0, sync.stderr);
  assert.equal(JSON.parse(sync.stdout).method, RELAY ? "rsync" : "sftp");
  assert.deepEqual(Object.keys(await snapshotTree(`${workspace}/sub`)), [".", "b.txt"]);
});
