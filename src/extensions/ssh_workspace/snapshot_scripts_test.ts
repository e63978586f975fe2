// The snapshot scripts, run by a real `sh` on real trees in a temp dir (the remote side is a POSIX
// shell too): a save is a real copy (no shared inodes) without the workspace marker, an existing
// name is refused unless replaced, a restore copies into a new workspace and keeps its marker,
// another owner's or a malformed snapshot is listed as ignored and neither used, replaced nor
// removed, symlinks at every level are refused and never followed, prune reaps expired ones but
// not a copy still in progress, and a restore racing a --replace gets one whole snapshot.
// tests/vm_packer/snapshot_test.ts runs the same scripts over SSH through the CLI.
import assert from "node:assert/strict";
import { MAKE_WORKSPACE, MARKER_FILE } from "./remote_scripts.ts";
import {
  SNAPSHOT_EXIT,
  SNAPSHOT_INTO,
  SNAPSHOT_LIST,
  SNAPSHOT_MARKER,
  SNAPSHOT_PRUNE,
  SNAPSHOT_REMOVE,
  SNAPSHOT_SAVE,
} from "./snapshot_scripts.ts";
import { newNonce } from "./workspace_path.ts";
import { runScript, scriptRoot } from "../../testing/shell.ts";

const USER = "builder";
const OWNER = "b".repeat(32);

const sh = runScript;

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

async function fixture() {
  const { dir, root, workspace } = await scriptRoot("sbx-snapshot-scripts-", MAKE_WORKSPACE);
  return {
    dir,
    root,
    store: `${root}/.sbx-snapshots/${USER}`,
    workspace,
    save: (w: { args: string[] }, name: string, opts: { replace?: boolean; ttl?: number } = {}) =>
      sh(SNAPSHOT_SAVE, [
        ...w.args,
        USER,
        name,
        OWNER,
        newNonce(),
        String(opts.ttl ?? 3600),
        opts.replace ? "1" : "0",
      ]),
    into: (w: { args: string[] }, name: string, owner = OWNER) =>
      sh(SNAPSHOT_INTO, [...w.args, USER, name, owner]),
    list: () => sh(SNAPSHOT_LIST, [root, USER, OWNER]),
    remove: (name: string) => sh(SNAPSHOT_REMOVE, [root, USER, name, OWNER]),
    prune: () => sh(SNAPSHOT_PRUNE, [root, USER]),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("SNAPSHOT_SAVE makes a real copy; SNAPSHOT_INTO restores it into a new workspace", async () => {
  await using f = await fixture();
  const a = await f.workspace("a1");
  await Deno.mkdir(`${a.ws}/out`);
  await Deno.writeTextFile(`${a.ws}/out/build.o`, "object\n");
  await Deno.symlink("/etc/passwd", `${a.ws}/link`);
  const saved = await f.save(a, "base");
  assert.equal(saved.code, 0, saved.stderr);
  assert.match(saved.stdout, /^\d+ \d+ \d+\n$/);
  const snap = `${f.store}/base`;
  const marker = JSON.parse(await Deno.readTextFile(`${snap}/${SNAPSHOT_MARKER}`));
  assert.equal(marker.snapshot, "base");
  assert.equal(marker.owner, OWNER);
  assert.equal(marker.source, "a1");
  assert.ok(!await exists(`${snap}/${MARKER_FILE}`), "the workspace marker is left out");
  // A real copy: a change in the live workspace does not reach the snapshot.
  const [inWs, inSnap] = await Promise.all([
    Deno.stat(`${a.ws}/out/build.o`),
    Deno.stat(`${snap}/out/build.o`),
  ]);
  assert.notEqual(inWs.ino, inSnap.ino);
  await Deno.writeTextFile(`${a.ws}/out/build.o`, "changed in place\n");
  assert.equal(await Deno.readTextFile(`${snap}/out/build.o`), "object\n");
  assert.equal(await Deno.readLink(`${snap}/link`), "/etc/passwd", "links are copied as links");

  const again = await f.save(a, "base");
  assert.equal(again.code, SNAPSHOT_EXIT.exists, again.stderr);
  assert.match(again.stderr, /already exists/);
  const replaced = await f.save(a, "base", { replace: true });
  assert.equal(replaced.code, 0, replaced.stderr);
  assert.equal(await Deno.readTextFile(`${snap}/out/build.o`), "changed in place\n");

  const b = await f.workspace("b1");
  const restored = await f.into(b, "base");
  assert.equal(restored.code, 0, restored.stderr);
  assert.equal(await Deno.readTextFile(`${b.ws}/out/build.o`), "changed in place\n");
  assert.equal(JSON.parse(await Deno.readTextFile(`${b.ws}/${MARKER_FILE}`)).id, "b1");
  assert.ok(!await exists(`${b.ws}/${SNAPSHOT_MARKER}`));

  const listed = await f.list();
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /^snapshot\tbase\t\d+\t\d+\t\d+\ta1\n$/);
  const missing = await f.into(await f.workspace("c1"), "nope");
  assert.equal(missing.code, SNAPSHOT_EXIT.none, missing.stderr);

  const removed = await f.remove("base");
  assert.equal(removed.code, 0, removed.stderr);
  assert.match(removed.stdout, /^\d+ \d+ \d+ a1\n$/);
  assert.ok(!await exists(snap));
  assert.equal((await f.remove("base")).code, SNAPSHOT_EXIT.none);
});

Deno.test("a foreign, malformed or expired snapshot is refused and left alone", async () => {
  await using f = await fixture();
  const a = await f.workspace("a1");
  assert.equal((await f.save(a, "mine")).code, 0);
  const file = `${f.store}/mine/${SNAPSHOT_MARKER}`;
  const good = await Deno.readTextFile(file);
  await Deno.writeTextFile(file, good.replace(OWNER, "c".repeat(32)));
  for (const result of [await f.into(await f.workspace("b1"), "mine"), await f.remove("mine")]) {
    assert.equal(result.code, SNAPSHOT_EXIT.refused, result.stderr);
    assert.match(result.stderr, /another sandboxer/);
  }
  const replace = await f.save(a, "mine", { replace: true });
  assert.equal(replace.code, SNAPSHOT_EXIT.refused, replace.stderr);
  assert.ok(await exists(`${f.store}/mine/${SNAPSHOT_MARKER}`));
  assert.match((await f.list()).stdout, /^ignored\tmine\t.*another sandboxer/);
  await Deno.writeTextFile(file, '{"snapshot":"other"}');
  assert.equal((await f.remove("mine")).code, SNAPSHOT_EXIT.refused);
  await Deno.mkdir(`${f.store}/Bad Name`);
  assert.match((await f.list()).stdout, /ignored\tBad Name\tBad Name is not a snapshot name/);

  await Deno.writeTextFile(file, good.replace(/"expires":\d+/, '"expires":1'));
  const expired = await f.into(await f.workspace("c1"), "mine");
  assert.equal(expired.code, SNAPSHOT_EXIT.expired, expired.stderr);
  const pruned = await f.prune();
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.equal(pruned.stdout, "reaped mine (expired)\n");
  assert.ok(!await exists(`${f.store}/mine`));
  assert.ok(await exists(`${f.store}/Bad Name`), "what is not a snapshot is never reaped");
});

Deno.test("symlinks at .sbx-snapshots, the user's directory or the name are refused, not followed", async () => {
  await using f = await fixture();
  const a = await f.workspace("a1");
  assert.equal((await f.save(a, "base")).code, 0);
  const victim = `${f.dir}/precious`;
  const plantAt = async (path: string) => {
    await Deno.mkdir(`${victim}/sub`, { recursive: true });
    await Deno.writeTextFile(
      `${victim}/${SNAPSHOT_MARKER}`,
      await Deno.readTextFile(`${f.store}/base/${SNAPSHOT_MARKER}`),
    );
    await Deno.writeTextFile(`${victim}/sub/precious.txt`, "precious\n");
    await Deno.rename(path, `${path}.away`);
    await Deno.symlink(victim, path);
    return async () => {
      await Deno.remove(path);
      await Deno.rename(`${path}.away`, path);
    };
  };
  for (const path of [`${f.store}/base`, f.store, `${f.root}/.sbx-snapshots`]) {
    const undo = await plantAt(path);
    const b = await f.workspace(`b${path.length}`);
    const into = await f.into(b, "base");
    assert.equal(into.code, SNAPSHOT_EXIT.refused, `${path}: ${into.stderr}`);
    assert.match(into.stderr, /symlink/);
    assert.ok(!await exists(`${b.ws}/sub`), "nothing was copied through the link");
    assert.equal((await f.remove("base")).code, SNAPSHOT_EXIT.refused);
    const listed = await f.list();
    if (path.endsWith("/base")) assert.match(listed.stdout, /^ignored\tbase\t.*a symlink/);
    else assert.notEqual(listed.code, 0, `${path}: refused`);
    const save = await f.save(a, "base", { replace: true });
    assert.notEqual(save.code, 0);
    await f.prune();
    assert.equal(await Deno.readTextFile(`${victim}/sub/precious.txt`), "precious\n", path);
    await undo();
  }
});

Deno.test("prune leaves a .tmp- copy that is still locked (a long copy), and reaps a dead one", async () => {
  await using f = await fixture();
  assert.equal((await f.save(await f.workspace("a1"), "base")).code, 0);
  const held = `${f.store}/.tmp-held-${"1".repeat(32)}`;
  const dead = `${f.store}/.tmp-dead-${"2".repeat(32)}`;
  for (const dir of [held, dead]) {
    await Deno.mkdir(dir);
    await Deno.writeTextFile(`${dir}/file`, "partial\n");
    const aged = await runScript('touch -d "2 hours ago" "$1"', [dir]);
    assert.equal(aged.code, 0, aged.stderr);
  }
  const holder = new Deno.Command("flock", { args: [held, "sleep", "30"] }).spawn();
  try {
    // flock(1) has taken the lock once `flock -n` fails.
    for (let i = 0; i < 50; i++) {
      if ((await runScript('exec 7<"$1"; flock -n 7', [held])).code !== 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const pruned = await f.prune();
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.ok(await exists(`${held}/file`), "a copy in progress is left alone");
    assert.ok(!await exists(dead), "a dead copy is reaped");
  } finally {
    holder.kill();
    await holder.status;
  }
});

Deno.test("a restore racing a --replace copies one whole snapshot, never a mix", async () => {
  await using f = await fixture();
  const sources = [await f.workspace("v1"), await f.workspace("v2")];
  for (const [i, w] of sources.entries()) {
    for (let n = 0; n < 100; n++) await Deno.writeTextFile(`${w.ws}/f${n}`, `version ${i + 1}\n`);
  }
  assert.equal((await f.save(sources[0], "base")).code, 0);
  for (let round = 0; round < 4; round++) {
    const target = await f.workspace(`r${round}`);
    const [saved, restored] = await Promise.all([
      f.save(sources[(round + 1) % 2], "base", { replace: true }),
      f.into(target, "base"),
    ]);
    assert.equal(saved.code, 0, saved.stderr);
    assert.equal(restored.code, 0, restored.stderr);
    const versions = new Set<string>();
    for await (const entry of Deno.readDir(target.ws)) {
      if (entry.name.startsWith("f")) {
        versions.add(await Deno.readTextFile(`${target.ws}/${entry.name}`));
      }
    }
    assert.equal(versions.size, 1, `round ${round}: ${[...versions].join(", ")}`);
  }
});
