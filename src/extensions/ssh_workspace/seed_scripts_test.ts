// The seed scripts, run by a real `sh` on real trees in a temp dir (the remote side is a POSIX
// shell too): an update makes a seed atomically with its marker, a create copies it (never links
// it) and keeps its own marker, another owner's seed is neither used nor replaced, symlinks are
// refused at every level and never followed by a prune, and prune reaps by age and by budget; a
// repository seen again gets a spare copy made in the background, which the next create takes whole
// (one taker of several), and which is never taken when it is a symlink or holds a marker.
// tests/vm_packer/warm_workspace_test.ts runs the same scripts over SSH through the CLI.
import assert from "node:assert/strict";
import { MAKE_WORKSPACE, MARKER_FILE } from "./remote_scripts.ts";
import { SEED_EXIT, SEED_INTO, SEED_MARKER, SEED_PRUNE, SEED_UPDATE } from "./seed_scripts.ts";
import { newNonce } from "./workspace_path.ts";
import { runScript, scriptRoot } from "../../testing/shell.ts";

const USER = "builder";
const OWNER = "a".repeat(32);

const sh = runScript;

async function fixture() {
  const { dir, root, workspace } = await scriptRoot("sbx-seed-scripts-", MAKE_WORKSPACE);
  return {
    dir,
    root,
    seeds: `${root}/.sbx-seeds/${USER}`,
    workspace,
    update: (
      w: { args: string[] },
      hash: string,
      opts: { owner?: string; ttl?: number; kb?: number; spare?: boolean } = {},
    ) =>
      sh(SEED_UPDATE, [
        ...w.args,
        USER,
        hash,
        opts.owner ?? OWNER,
        newNonce(),
        String(opts.ttl ?? 3600),
        String(opts.kb ?? 100_000),
        opts.spare ? "1" : "0",
      ]),
    into: (w: { args: string[] }, hash: string, owner = OWNER) =>
      sh(SEED_INTO, [...w.args, USER, hash, owner]),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

const HASH = "0123456789abcdef0123456789abcdef";
const OTHER = "fedcba9876543210fedcba9876543210";

Deno.test("SEED_UPDATE makes a seed with its marker; SEED_INTO copies it into a new workspace", async () => {
  await using f = await fixture();
  const a = await f.workspace("a");
  await Deno.mkdir(`${a.ws}/src`);
  await Deno.writeTextFile(`${a.ws}/src/main.c`, "int main;\n");
  const updated = await f.update(a, HASH);
  assert.equal(updated.code, 0, updated.stderr);
  const marker = JSON.parse(await Deno.readTextFile(`${f.seeds}/${HASH}/${SEED_MARKER}`));
  assert.equal(marker.seed, HASH);
  assert.equal(marker.owner, OWNER);
  assert.ok(!await Deno.lstat(`${f.seeds}/${HASH}/${MARKER_FILE}`).then(() => true, () => false));
  const b = await f.workspace("b");
  const copied = await f.into(b, HASH);
  assert.equal(copied.code, 0, copied.stderr);
  assert.equal(await Deno.readTextFile(`${b.ws}/src/main.c`), "int main;\n");
  assert.equal(JSON.parse(await Deno.readTextFile(`${b.ws}/${MARKER_FILE}`)).id, "b");
  assert.equal((await Deno.stat(`${b.ws}/src/main.c`)).nlink, 1, "a copy, not a link");
  assert.ok(!await Deno.lstat(`${b.ws}/${SEED_MARKER}`).then(() => true, () => false));
  // No seed of another repository.
  assert.equal((await f.into(b, OTHER)).code, SEED_EXIT.none);
});

Deno.test("another owner's seed is neither used nor replaced", async () => {
  await using f = await fixture();
  const a = await f.workspace("a");
  assert.equal((await f.update(a, HASH, { owner: "b".repeat(32) })).code, 0);
  const before = await Deno.readTextFile(`${f.seeds}/${HASH}/${SEED_MARKER}`);
  const b = await f.workspace("b");
  const used = await f.into(b, HASH);
  assert.equal(used.code, SEED_EXIT.refused);
  assert.match(used.stderr, /another sandboxer/);
  assert.equal((await f.update(a, HASH)).code, SEED_EXIT.refused);
  assert.equal(await Deno.readTextFile(`${f.seeds}/${HASH}/${SEED_MARKER}`), before);
});

Deno.test("symlinks at the seed, the user's directory or .sbx-seeds are refused and not followed", async () => {
  await using f = await fixture();
  const a = await f.workspace("a");
  assert.equal((await f.update(a, HASH)).code, 0);
  const victim = `${f.dir}/victim`;
  await Deno.rename(`${f.seeds}/${HASH}`, victim);
  const expired = (await Deno.readTextFile(`${victim}/${SEED_MARKER}`))
    .replace(/"expires":\d+/, '"expires":1');
  await Deno.writeTextFile(`${victim}/${SEED_MARKER}`, expired);
  await Deno.symlink(victim, `${f.seeds}/${HASH}`);
  const b = await f.workspace("b");
  assert.equal((await f.into(b, HASH)).code, SEED_EXIT.refused);
  assert.equal((await f.update(a, HASH)).code, SEED_EXIT.refused);
  assert.equal((await sh(SEED_PRUNE, [f.root, USER, "0"])).code, 0);
  assert.equal(await Deno.readTextFile(`${victim}/${SEED_MARKER}`), expired, "prune followed it");
  await Deno.remove(`${f.seeds}/${HASH}`);
  await Deno.rename(f.seeds, `${f.dir}/users`);
  await Deno.symlink(`${f.dir}/users`, f.seeds);
  assert.equal((await f.into(b, HASH)).code, SEED_EXIT.refused);
  assert.equal((await sh(SEED_PRUNE, [f.root, USER, "0"])).code, SEED_EXIT.refused);
  await Deno.remove(f.seeds);
  await Deno.rename(`${f.root}/.sbx-seeds`, `${f.dir}/seeds`);
  await Deno.symlink(`${f.dir}/seeds`, `${f.root}/.sbx-seeds`);
  assert.equal((await f.update(a, OTHER)).code, SEED_EXIT.refused);
});

Deno.test("prune reaps expired seeds, then the oldest over the budget; a big tree is not kept", async () => {
  await using f = await fixture();
  const a = await f.workspace("a");
  await Deno.writeTextFile(`${a.ws}/data`, "x".repeat(40_000));
  assert.equal((await f.update(a, HASH)).code, 0);
  const second = await f.update(a, OTHER, { kb: 60 });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, new RegExp(`reaped ${HASH} \\(over the budget`));
  assert.deepEqual(await names(f.seeds), [OTHER]);
  const file = `${f.seeds}/${OTHER}/${SEED_MARKER}`;
  await Deno.writeTextFile(
    file,
    (await Deno.readTextFile(file)).replace(/"expires":\d+/, '"expires":1'),
  );
  const pruned = await sh(SEED_PRUNE, [f.root, USER, "0"]);
  assert.equal(pruned.stdout.trim(), `reaped ${OTHER} (expired)`);
  assert.deepEqual(await names(f.seeds), []);
  const big = await f.update(a, HASH, { kb: 10 });
  assert.equal(big.code, SEED_EXIT.tooBig);
  assert.deepEqual(await names(f.seeds), []);
  assert.equal((await sh(SEED_PRUNE, [f.root, "nobody-here", "0"])).stdout.trim(), "none");
});

Deno.test("SEED_UPDATE wipes a crash's .old- leftover; the seed it replaces goes in the background", async () => {
  await using f = await fixture();
  const a = await f.workspace("a");
  await Deno.writeTextFile(`${a.ws}/one.txt`, "1\n");
  assert.equal((await f.update(a, HASH)).code, 0);
  const first = JSON.parse(await Deno.readTextFile(`${f.seeds}/${HASH}/${SEED_MARKER}`));
  const leftover = `${f.seeds}/.old-${OTHER}-${"c".repeat(32)}`;
  await Deno.mkdir(`${leftover}/deep`, { recursive: true });
  await Deno.writeTextFile(`${leftover}/deep/x`, "x\n");

  await Deno.writeTextFile(`${a.ws}/two.txt`, "2\n");
  const updated = await f.update(a, HASH);
  assert.equal(updated.code, 0, updated.stderr);
  assert.equal(await Deno.readTextFile(`${f.seeds}/${HASH}/two.txt`), "2\n");
  const replaced = `.old-${HASH}-${first.nonce}`;
  for (let i = 0; i < 100 && (await names(f.seeds)).includes(replaced); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(await names(f.seeds), [HASH], "the leftover and the replaced seed are gone");
});

/**
 * The names in `seeds` once the background work of an update is done (no `.tmp-` or `.old-`
 * left) and, given `count`, that many are there (the work may not have begun yet); 10 s at most.
 */
async function settled(seeds: string, count?: number): Promise<string[]> {
  for (let i = 0; i < 200; i++) {
    const now = await names(seeds);
    const busy = now.some((n) => n.startsWith(".tmp-") || n.startsWith(".old-"));
    if (!busy && (count === undefined || now.length === count)) return now;
    await new Promise((r) => setTimeout(r, 50));
  }
  return await names(seeds);
}

const nonceOf = async (seed: string) =>
  JSON.parse(await Deno.readTextFile(`${seed}/${SEED_MARKER}`)).nonce as string;

Deno.test("a repository seen again gets a spare copy; the next create takes it whole; a stale one is reaped", async () => {
  await using f = await fixture();
  const a = await f.workspace("a");
  await Deno.mkdir(`${a.ws}/src`);
  await Deno.writeTextFile(`${a.ws}/src/main.c`, "int main;\n");
  await Deno.writeTextFile(`${a.ws}/.hidden`, "h\n");
  assert.equal((await f.update(a, HASH)).code, 0);
  assert.deepEqual(await settled(f.seeds), [HASH], "no spare for a first sight");

  const seen = await f.update(a, HASH, { spare: true });
  assert.equal(seen.code, 0, seen.stderr);
  const spare = `.spare-${HASH}-${await nonceOf(`${f.seeds}/${HASH}`)}`;
  assert.deepEqual(await settled(f.seeds, 2), [spare, HASH]);
  assert.equal((await Deno.stat(`${f.seeds}/${spare}/src/main.c`)).nlink, 1, "a copy, not links");

  const b = await f.workspace("b");
  const taken = await f.into(b, HASH);
  assert.equal(taken.code, 0, taken.stderr);
  assert.deepEqual(await names(f.seeds), [HASH], "the spare moved into the workspace");
  assert.deepEqual(await names(b.ws), [".hidden", MARKER_FILE, "src"]);
  assert.equal(await Deno.readTextFile(`${b.ws}/src/main.c`), "int main;\n");
  assert.equal(JSON.parse(await Deno.readTextFile(`${b.ws}/${MARKER_FILE}`)).id, "b");

  // A new seed makes the spare of the one it replaces stale: gone in the background.
  assert.equal((await f.update(a, HASH, { spare: true })).code, 0);
  assert.equal((await settled(f.seeds, 2)).length, 2);
  assert.equal((await f.update(a, HASH)).code, 0);
  assert.deepEqual(await settled(f.seeds, 1), [HASH]);
  // gc reaps a spare whose seed is gone or another one.
  await Deno.mkdir(`${f.seeds}/.spare-${HASH}-${"d".repeat(32)}/deep`, { recursive: true });
  await Deno.mkdir(`${f.seeds}/.spare-${OTHER}-${"d".repeat(32)}`);
  assert.equal((await sh(SEED_PRUNE, [f.root, USER, "0"])).code, 0);
  assert.deepEqual(await names(f.seeds), [HASH]);
});

Deno.test("a spare is taken by one create of several; one that is a symlink or holds a marker is not", async () => {
  await using f = await fixture();
  const a = await f.workspace("a");
  await Deno.writeTextFile(`${a.ws}/f.txt`, "seed\n");
  assert.equal((await f.update(a, HASH, { spare: true })).code, 0);
  const sn = await nonceOf(`${f.seeds}/${HASH}`);
  const spare = `${f.seeds}/.spare-${HASH}-${sn}`;
  assert.equal((await settled(f.seeds, 2)).length, 2);

  const racers = await Promise.all(["b", "c", "d"].map((id) => f.workspace(id)));
  const results = await Promise.all(racers.map((w) => f.into(w, HASH)));
  for (const [i, result] of results.entries()) {
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await Deno.readTextFile(`${racers[i].ws}/f.txt`), "seed\n");
    assert.deepEqual(await names(racers[i].ws), [MARKER_FILE, "f.txt"]);
  }
  assert.deepEqual(await settled(f.seeds), [HASH]);

  // A symlink at the spare's name: not followed, not taken; the seed is copied instead.
  const victim = `${f.dir}/victim`;
  await Deno.mkdir(victim);
  await Deno.writeTextFile(`${victim}/planted`, "no\n");
  await Deno.symlink(victim, spare);
  const e = await f.workspace("e");
  assert.equal((await f.into(e, HASH)).code, 0);
  assert.deepEqual(await names(e.ws), [MARKER_FILE, "f.txt"]);
  assert.deepEqual(await names(victim), ["planted"]);
  await Deno.remove(spare);

  // A spare holding a workspace marker (another sandbox's tree): dropped, and the seed copied.
  await Deno.mkdir(spare);
  await Deno.writeTextFile(`${spare}/${MARKER_FILE}`, '{"id":"other","nonce":"x"}\n');
  await Deno.writeTextFile(`${spare}/planted`, "no\n");
  const g = await f.workspace("g");
  assert.equal((await f.into(g, HASH)).code, 0);
  assert.deepEqual(await names(g.ws), [MARKER_FILE, "f.txt"]);
  assert.equal(JSON.parse(await Deno.readTextFile(`${g.ws}/${MARKER_FILE}`)).id, "g");
  assert.deepEqual(await settled(f.seeds), [HASH]);
});
