// Snapshots (issue 15 item 3) through the real CLI and a real sshd: `snapshot ID NAME` keeps a real
// copy of the workspace (build outputs too) that later changes to the source do not reach;
// `create --from-snapshot` starts from it (with --repo synced on top, and without); destroying
// either sandbox leaves it; list/rm with --json; an existing name is refused without --replace; a
// bad name is refused in one line; a missing, expired or foreign snapshot refuses the create and
// leaves nothing; gc and gc --target reap expired ones. Attacks: symlinks planted at
// `.sbx-snapshots`, at the user's directory and at the name, pointing at precious files, are
// refused and nothing is read, copied or deleted through them (by create, rm, list or gc) — on the
// loopback sshd and on an isolated host that shares no filesystem with this machine.
import assert from "node:assert/strict";
import { createOk, startTestVm } from "../harness/test_vm.ts";
import { type IsolatedHost, isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { writePoolProfile } from "../harness/pool_hosts.ts";
import { Manager, Sandbox } from "../../mod.ts";
import { SnapshotError } from "../../errors.ts";

const MARKER = ".sandboxer-snapshot.json";

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);
const lastLine = (text: string) => text.trim().split("\n").at(-1) ?? "";

/** `create --profile PROFILE --from-snapshot NAME --name ID` on a fixture. */
const createFrom = (
  fixture: { cli(args: readonly string[]): Promise<{ code: number; stderr: string }> },
  profile: string,
  name: string,
  id: string,
) => fixture.cli(["create", "--profile", profile, "--from-snapshot", name, "--name", id]);

async function makeRepo(dir: string): Promise<string> {
  const repo = `${dir}/repo`;
  await Deno.mkdir(`${repo}/src`, { recursive: true });
  await Deno.writeTextFile(`${repo}/src/main.c`, "int main() { return 0; }\n");
  await Deno.writeTextFile(`${repo}/.gitignore`, "out/\n");
  return repo;
}

Deno.test("snapshots: saved, started from, listed, removed, refused and reaped", async (t) => {
  await using vm = await startTestVm();
  const repo = await makeRepo(vm.dir);
  const profile = await vm.profile("snap");
  const store = `${vm.root}/.sbx-snapshots/${vm.sshd.user}`;
  const cli = async (args: string[], code = 0) => {
    const result = await vm.cli(args);
    assert.equal(result.code, code, `${args.join(" ")}: ${result.stderr}`);
    return result;
  };

  const source = await createOk(vm, ["--profile", profile, "--repo", repo, "--name", "s1"]);
  await cli(["exec", "s1", "--", "sh", "-c", "mkdir out && echo built > out/app.bin"]);

  await t.step(
    "snapshot ID NAME saves a real copy with its marker, without the workspace's",
    async () => {
      const result = await cli(["snapshot", "s1", "base", "--ttl", "2d", "--json"]);
      const info = JSON.parse(result.stdout);
      assert.equal(info.name, "base");
      assert.equal(info.source, "s1");
      assert.equal(info.path, `${store}/base`);
      assert.ok(info.bytes > 0);
      const days = (Date.parse(info.expires) - Date.parse(info.created)) / 86400_000;
      assert.equal(Math.round(days), 2);
      const marker = JSON.parse(await Deno.readTextFile(`${store}/base/${MARKER}`));
      const owner = (await Deno.readTextFile(`${vm.dir}/state/seeds/owner`)).trim();
      assert.equal(marker.owner, owner);
      assert.ok(!await exists(`${store}/base/.sandboxer.json`));
      assert.equal(await Deno.readTextFile(`${store}/base/out/app.bin`), "built\n");
      // An existing name is refused without --replace, in one line.
      const again = await cli(["snapshot", "s1", "base"], 1);
      assert.match(lastLine(again.stderr), /Snapshot base already exists .*--replace/);
    },
  );

  await t.step("changes to the source after the snapshot do not reach it", async () => {
    await cli(["exec", "s1", "--", "sh", "-c", "echo changed > out/app.bin && rm src/main.c"]);
    assert.equal(await Deno.readTextFile(`${store}/base/out/app.bin`), "built\n");
    assert.ok(await exists(`${store}/base/src/main.c`));
  });

  await t.step("create --from-snapshot starts from the snapshot's state", async () => {
    const plain = await createOk(vm, [
      "--profile",
      profile,
      "--from-snapshot",
      "base",
      "--name",
      "c1",
    ]);
    assert.equal(await Deno.readTextFile(`${plain.workspace}/out/app.bin`), "built\n");
    assert.ok(await exists(`${plain.workspace}/src/main.c`));
    assert.equal(
      JSON.parse(await Deno.readTextFile(`${plain.workspace}/.sandboxer.json`)).id,
      "c1",
    );
    assert.ok(!await exists(`${plain.workspace}/${MARKER}`));
    // With --repo the sync runs on top: a changed source file arrives, the build output stays.
    await Deno.writeTextFile(`${repo}/src/main.c`, "int main() { return 1; }\n");
    const synced = await createOk(vm, [
      ...["--profile", profile, "--from-snapshot", "base", "--repo", repo, "--name", "c2"],
    ]);
    assert.equal(await Deno.readTextFile(`${synced.workspace}/out/app.bin`), "built\n");
    assert.match(await Deno.readTextFile(`${synced.workspace}/src/main.c`), /return 1/);
    // Not empty after the restore, so its first sync sends the difference by rsync, not tar.
    const logs = await cli(["logs", "c2"]);
    assert.match(logs.stdout, /by rsync: 1 files sent/);
  });

  await t.step("destroying the source or a copy leaves the snapshot", async () => {
    await cli(["destroy", "s1"]);
    await cli(["destroy", "c1"]);
    assert.ok(!await exists(source.workspace!));
    assert.equal(await Deno.readTextFile(`${store}/base/out/app.bin`), "built\n");
  });

  await t.step("list and --json show name, size, created, expires and source", async () => {
    const text = await cli(["snapshot", "list", profile]);
    assert.match(text.stdout, /^NAME\s+SIZE\s+CREATED\s+EXPIRES\s+SOURCE\s+HOST/);
    assert.match(text.stdout, /^base\s+\d+(\.\d)? [KM]iB\s+\S+\s+\S+\s+s1\s/m);
    const scans = JSON.parse((await cli(["snapshot", "list", profile, "--json"])).stdout);
    assert.equal(scans.length, 1);
    assert.deepEqual(scans[0].snapshots.map((s: { name: string }) => s.name), ["base"]);
    // Without a profile: every host this state directory saved snapshots on.
    const known = JSON.parse((await cli(["snapshot", "list", "--json"])).stdout);
    assert.deepEqual(
      known.flatMap((s: { snapshots: { name: string }[] }) => s.snapshots.map((x) => x.name)),
      ["base"],
    );
  });

  await t.step("bad names are refused in one line naming the value", async () => {
    for (const name of ["Base", "_x", "a/b", "..", ".hidden", "x".repeat(64), "a b"]) {
      const result = await vm.cli(["snapshot", "c2", name]);
      assert.equal(result.code, 1, name);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
      assert.match(result.stderr, /is not a valid snapshot name/);
      assert.ok(result.stderr.includes(JSON.stringify(name)), result.stderr);
    }
    const create = await createFrom(vm, profile, "../x", "bad1");
    assert.equal(create.code, 1);
    assert.match(lastLine(create.stderr), /is not a valid snapshot name/);
  });

  await t.step(
    "a missing, foreign or expired snapshot refuses the create and leaves nothing",
    async () => {
      const before = await vm.rootEntries();
      const file = `${store}/base/${MARKER}`;
      const good = await Deno.readTextFile(file);
      const marker = JSON.parse(good);
      const cases: [string, string | undefined, RegExp][] = [
        ["nope", undefined, /Snapshot nope does not exist/],
        ["base", good.replace(marker.owner, "0".repeat(32)), /another sandboxer/],
        ["base", good.replace(`"snapshot":"base"`, `"snapshot":"other"`), /does not name it/],
        ["base", good.replace(/"expires":\d+/, '"expires":1'), /has expired/],
      ];
      for (const [name, text, message] of cases) {
        if (text !== undefined) await Deno.writeTextFile(file, text);
        const result = await createFrom(vm, profile, name, "r1");
        assert.equal(result.code, 1, result.stderr);
        assert.match(lastLine(result.stderr), message);
        assert.deepEqual(await vm.rootEntries(), before, "nothing was made");
        assert.equal((await vm.list()).filter((r) => r.id === "r1").length, 0, "no record is left");
        if (text !== undefined) assert.equal(await Deno.readTextFile(file), text, "left untouched");
      }
      // A foreign marker is not removed by rm either.
      await Deno.writeTextFile(file, cases[1][1]!);
      const rm = await vm.cli(["snapshot", "rm", "base", "--profile", profile]);
      assert.equal(rm.code, 1);
      assert.match(lastLine(rm.stderr), /another sandboxer/);
      assert.ok(await exists(`${store}/base/out/app.bin`));
      await Deno.writeTextFile(file, good);
    },
  );

  await t.step(
    "a snapshot refused while it is copied rolls the create back, leaving nothing",
    async () => {
      // A workspace marker inside the snapshot passes the check before create, and is refused by
      // the copy on the host (it would overwrite the new workspace's marker).
      const before = await vm.rootEntries();
      await Deno.writeTextFile(`${store}/base/.sandboxer.json`, '{"id":"evil","nonce":"0"}\n');
      await vm.chown(`${store}/base/.sandboxer.json`);
      try {
        const result = await createFrom(vm, profile, "base", "r2");
        assert.equal(result.code, 1, result.stderr);
        assert.match(lastLine(result.stderr), /holds a workspace marker/);
        assert.deepEqual(await vm.rootEntries(), before, "the workspace was rolled back");
        assert.equal((await vm.list()).filter((r) => r.id === "r2").length, 0, "no record is left");
      } finally {
        await Deno.remove(`${store}/base/.sandboxer.json`);
      }
    },
  );

  await t.step(
    "symlinks at the name, the user's directory and .sbx-snapshots are never followed",
    async () => {
      const precious = `${vm.dir}/precious`;
      for (const path of [`${store}/base`, store, `${vm.root}/.sbx-snapshots`]) {
        // The link points at a directory that looks like a valid snapshot (a copy of the marker).
        await Deno.mkdir(`${precious}/base/keep`, { recursive: true });
        await Deno.copyFile(`${store}/base/${MARKER}`, `${precious}/base/${MARKER}`);
        await Deno.copyFile(`${store}/base/${MARKER}`, `${precious}/${MARKER}`);
        await Deno.writeTextFile(`${precious}/base/keep/precious.txt`, "precious\n");
        await Deno.writeTextFile(`${precious}/keep.txt`, "precious\n");
        await vm.chown(precious);
        await Deno.rename(path, `${path}.away`);
        await Deno.symlink(precious, path);
        try {
          const create = await createFrom(vm, profile, "base", "l1");
          assert.equal(create.code, 1, create.stderr);
          assert.match(lastLine(create.stderr), /symlink/);
          assert.ok(!await exists(`${vm.root}/sbx-l1`));
          const rm = await vm.cli(["snapshot", "rm", "base", "--profile", profile]);
          assert.equal(rm.code, 1, rm.stderr);
          await vm.cli(["snapshot", "list", profile]);
          await vm.cli(["snapshot", "c2", "base", "--replace"]);
          // An expired marker behind the link: gc and gc --target must not follow it either.
          for (const m of [`${precious}/base/${MARKER}`, `${precious}/${MARKER}`]) {
            const text = await Deno.readTextFile(m);
            await Deno.writeTextFile(m, text.replace(/"expires":\d+/, '"expires":1'));
          }
          await vm.cli(["gc"]);
          await vm.cli(["gc", "--target", profile]);
          assert.equal(
            await Deno.readTextFile(`${precious}/base/keep/precious.txt`),
            "precious\n",
            path,
          );
          assert.equal(await Deno.readTextFile(`${precious}/keep.txt`), "precious\n", path);
          // Nothing was written through the link either (a save would leave a .tmp- or a copy).
          const tree = (await Array.fromAsync(Deno.readDir(precious))).map((e) => e.name).sort();
          assert.deepEqual(tree, [MARKER, "base", "keep.txt"], path);
          const inner = (await Array.fromAsync(Deno.readDir(`${precious}/base`))).map((e) =>
            e.name
          );
          assert.deepEqual(inner.sort(), [MARKER, "keep"], path);
        } finally {
          await Deno.remove(path);
          await Deno.rename(`${path}.away`, path);
          await Deno.remove(precious, { recursive: true });
        }
      }
    },
  );

  await t.step("a pool places --from-snapshot on the entry that keeps it", async () => {
    const { host, port, user, identityFile, knownHostsFile } = vm.sshd;
    const other = `${vm.dir}/pool-root`;
    await Deno.mkdir(other);
    await vm.chown(other);
    const entry = { host, port, user, identityFile, knownHostsFile, capacity: 2 };
    const pool = await writePoolProfile(vm.dir, "pool", [
      { ...entry, root: other },
      { ...entry, root: vm.root },
    ]);
    const scans = JSON.parse((await cli(["snapshot", "list", pool, "--json"])).stdout);
    assert.deepEqual(
      scans.map((s: { root: string; snapshots: { name: string }[] }) => [
        s.root,
        s.snapshots.map((x) => x.name),
      ]),
      [[other, []], [vm.root, ["base"]]],
    );
    for (const id of ["p1", "p2"]) {
      const made = await createOk(vm, ["--profile", pool, "--from-snapshot", "base", "--name", id]);
      assert.equal(made.workspace, `${vm.root}/sbx-${id}`, "placed where the snapshot is");
      assert.equal(await Deno.readTextFile(`${made.workspace}/out/app.bin`), "built\n");
    }
    // Both of that entry's slots are taken: the other entry does not keep it, so the pool is full.
    const full = await vm.cli([
      "create",
      "--profile",
      pool,
      "--from-snapshot",
      "base",
      "--name",
      "p3",
    ]);
    assert.equal(full.code, 1);
    assert.match(lastLine(full.stderr), /every slot of the pool is taken/);
    const none = await vm.cli([
      "create",
      "--profile",
      pool,
      "--from-snapshot",
      "nope",
      "--name",
      "p4",
    ]);
    assert.equal(none.code, 1);
    assert.match(lastLine(none.stderr), /Snapshot nope does not exist/);
    for (const id of ["p1", "p2"]) await cli(["destroy", id]);
    assert.equal((await vm.list()).filter((r) => ["p3", "p4"].includes(r.id)).length, 0);
  });

  await t.step(
    "the SDK: Sandbox.create({ fromSnapshot }), sandbox.snapshot(), manager.snapshots()",
    async () => {
      await using manager = await Manager.open({ stateDir: `${vm.dir}/state` });
      {
        await using box = await Sandbox.create({
          manager,
          profile,
          fromSnapshot: "base",
          name: "k1",
        });
        assert.equal((await box.exec(["cat", "out/app.bin"])).stdout, "built\n");
        const info = await box.snapshot("sdk-copy", { ttlSeconds: 3600 });
        assert.equal(info.source, "k1");
        assert.equal(Date.parse(info.expires) - Date.parse(info.created), 3600_000);
        await assert.rejects(
          box.snapshot("sdk-copy"),
          (e: Error) => e instanceof SnapshotError && /pass replace: true/.test(e.message),
        );
      }
      const [scan] = await manager.snapshots(profile);
      assert.deepEqual(scan.snapshots.map((s) => s.name), ["base", "sdk-copy"]);
      assert.equal((await manager.removeSnapshot(profile, "sdk-copy")).name, "sdk-copy");
      assert.ok(!await exists(`${store}/sdk-copy`));
    },
  );

  await t.step("--replace takes a new copy; rm removes only ours", async () => {
    await cli(["exec", "c2", "--", "sh", "-c", "echo second > out/app.bin"]);
    await cli(["snapshot", "c2", "base", "--replace"]);
    assert.equal(await Deno.readTextFile(`${store}/base/out/app.bin`), "second\n");
    const removed = JSON.parse((await cli(["snapshot", "rm", "base", "--json"])).stdout);
    assert.equal(removed.name, "base");
    assert.equal(removed.source, "c2");
    assert.ok(!await exists(`${store}/base`));
    const gone = await cli(["snapshot", "rm", "base", "--profile", profile], 1);
    assert.match(lastLine(gone.stderr), /Snapshot base does not exist/);
  });

  await t.step(
    "the ttl defaults to the profile's snapshot_ttl (--set works), else 7d",
    async () => {
      const ttl = async (id: string, name: string) => {
        const info = JSON.parse((await cli(["snapshot", id, name, "--json"])).stdout);
        return Math.round((Date.parse(info.expires) - Date.parse(info.created)) / 3600_000);
      };
      await createOk(vm, ["--profile", profile, "--set", "snapshot_ttl=1d", "--name", "t1"]);
      assert.equal(await ttl("t1", "day"), 24);
      assert.equal(await ttl("c2", "week"), 7 * 24);
      const bad = await vm.cli(["create", "--profile", profile, "--set", "snapshot_ttl=10s"]);
      assert.equal(bad.code, 1);
      assert.match(lastLine(bad.stderr), /snapshot_ttl/);
      await cli(["snapshot", "rm", "day"]);
      await cli(["snapshot", "rm", "week"]);
    },
  );

  await t.step("gc and gc --target reap expired snapshots and say so", async () => {
    await cli(["snapshot", "c2", "old1"]);
    await cli(["snapshot", "c2", "old2"]);
    await cli(["snapshot", "c2", "keep"]);
    for (const name of ["old1", "old2"]) {
      const file = `${store}/${name}/${MARKER}`;
      const text = await Deno.readTextFile(file);
      await Deno.writeTextFile(file, text.replace(/"expires":\d+/, '"expires":1'));
    }
    const gc = await cli(["gc"]);
    assert.match(gc.stdout, new RegExp(`reaped snapshot ${store}/old1 \\(expired\\)`));
    assert.ok(!await exists(`${store}/old1`));
    assert.ok(!await exists(`${store}/old2`));
    assert.ok(await exists(`${store}/keep/${MARKER}`));
    await cli(["snapshot", "c2", "old3"]);
    const file = `${store}/old3/${MARKER}`;
    await Deno.writeTextFile(
      file,
      (await Deno.readTextFile(file)).replace(/"expires":\d+/, '"expires":1'),
    );
    const target = await cli(["gc", "--target", profile]);
    assert.match(target.stdout, new RegExp(`reaped snapshot ${store}/old3 \\(expired\\)`));
    assert.ok(await exists(`${store}/keep/${MARKER}`));
  });
});

async function onHost(host: IsolatedHost, script: string, ...args: string[]) {
  const result = await host.ssh(["sh", "-c", script, "sh", ...args]);
  assert.equal(result.code, 0, `${script}: ${result.stderr}`);
  return result.stdout;
}

isolatedTest("snapshots on a host that shares no filesystem: symlink and rm attacks", async (t) => {
  await using host = await startIsolatedHost();
  const profile = await host.profile("p");
  const { workspace } = await createOk(host, ["--profile", profile, "--name", "h1"]);
  await onHost(host, 'cd "$1" && mkdir out && echo built > out/app.bin', workspace!);
  const saved = await host.cli(["snapshot", "h1", "base"]);
  assert.equal(saved.code, 0, saved.stderr);
  const store = `${host.root}/.sbx-snapshots/${host.user}`;
  // Only the host has these: a precious directory in its home that looks like a snapshot.
  const precious = `${host.homeDir}/precious`;
  const plant = `
    mkdir -p "$2/base/keep" && cp "$3/base/${MARKER}" "$2/base/" && cp "$3/base/${MARKER}" "$2/" &&
    echo precious > "$2/base/keep/precious.txt" && echo precious > "$2/keep.txt" &&
    mv "$1" "$1.away" && ln -s "$2" "$1"`;
  const unplant = 'rm "$1" && mv "$1.away" "$1" && rm -rf "$2"';
  for (const path of [`${store}/base`, store, `${host.root}/.sbx-snapshots`]) {
    await t.step(`a symlink at ${path.slice(host.root.length)}`, async () => {
      await onHost(host, plant, path, precious, store);
      try {
        const create = await createFrom(host, profile, "base", "l1");
        assert.equal(create.code, 1, create.stderr);
        assert.match(lastLine(create.stderr), /symlink/);
        const rm = await host.cli(["snapshot", "rm", "base", "--profile", profile]);
        assert.equal(rm.code, 1, rm.stderr);
        assert.match(lastLine(rm.stderr), /symlink|not a snapshot directory/);
        const save = await host.cli(["snapshot", "h1", "base", "--replace"]);
        assert.equal(save.code, 1, save.stderr);
        await onHost(
          host,
          `sed -i 's/"expires":[0-9]*/"expires":1/' "$1/${MARKER}" "$1/base/${MARKER}"`,
          precious,
        );
        await host.cli(["gc"]);
        await host.cli(["gc", "--target", profile]);
        const left = await onHost(
          host,
          'cat "$1/base/keep/precious.txt" "$1/keep.txt"; LC_ALL=C ls -A "$1" "$1/base" | tr "\\n" " "',
          precious,
        );
        // Nothing was written through the link either (a save would leave a .tmp- or a copy).
        assert.match(
          left,
          new RegExp(
            `:\\s*${MARKER.replaceAll(".", "\\.")} base keep\\.txt\\s+\\S+/base:\\s*${
              MARKER.replaceAll(".", "\\.")
            } keep\\s*$`,
          ),
        );
        assert.match(left, /^precious\nprecious\n/, path);
        assert.match(left, new RegExp(MARKER.replaceAll(".", "\\.")));
        assert.deepEqual((await host.rootEntries()).filter((n) => n.startsWith("sbx-")), [
          "sbx-h1",
        ]);
      } finally {
        await onHost(host, unplant, path, precious);
      }
    });
  }
  await t.step("rm removes the real snapshot and nothing else", async () => {
    const rm = await host.cli(["snapshot", "rm", "base", "--profile", profile]);
    assert.equal(rm.code, 0, rm.stderr);
    const left = await onHost(host, 'ls -a "$1"; cat "$2/out/app.bin"', store, workspace!);
    assert.doesNotMatch(left, /^base$/m);
    assert.match(left, /built/);
    assert.deepEqual(await host.canaryProblems(), []);
  });
});
