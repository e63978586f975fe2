// Warm-workspace seeds attacked by a host that shares nothing with this machine
// (tests/harness/isolated_host.ts): the login user plants symlinks at every level of
// `<root>/.sbx-seeds/<user>/<hash>`, each pointing at a directory of the host's that looks like a
// seed (a valid marker of ours, a file that only it holds). No create copies from it, no gc
// deletes through it, and every check runs on the host: a check made on this machine by mistake
// would see this machine's paths (the canary at the same absolute path), not the host's.
import assert from "node:assert/strict";
import { type IsolatedHost, isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { createOk, filesSent } from "../harness/test_vm.ts";
import { git } from "../../src/testing/git_corpus.ts";

const SEED_MARKER = ".sandboxer-seed.json";
const PRECIOUS = "precious.txt";

async function onHost(host: IsolatedHost, script: string, ...args: string[]): Promise<string> {
  const result = await host.ssh(["sh", "-c", script, "sh", ...args]);
  assert.equal(result.code, 0, `${script}: ${result.stderr}`);
  return result.stdout;
}

async function makeRepo(dir: string): Promise<string> {
  const repo = `${dir}/repo`;
  await Deno.mkdir(`${repo}/src`, { recursive: true });
  for (let i = 0; i < 20; i++) await Deno.writeTextFile(`${repo}/src/f${i}.txt`, `file ${i}\n`);
  await git(repo, "init", "-q");
  await git(repo, "add", "-A");
  await git(repo, "commit", "-qm", "init");
  return repo;
}

isolatedTest("seeds: symlinks planted by the host at any level are never followed", async (t) => {
  await using host = await startIsolatedHost();
  const repo = await makeRepo(host.dir);
  const profile = await host.profile("warm");
  const seeds = `${host.root}/.sbx-seeds`;
  const mine = `${seeds}/${host.user}`;
  let hash = "";
  let n = 0;
  const create = async () => {
    n += 1;
    return await createOk(host, ["--profile", profile, "--repo", repo, "--name", `s${n}`]);
  };

  await t.step("the first create leaves a seed on the host", async () => {
    await create();
    const names = (await onHost(host, 'ls -A -- "$1"', mine)).split("\n").filter(Boolean);
    assert.equal(names.length, 1, names.join(","));
    hash = names[0];
    assert.match(hash, /^[0-9a-f]{32}$/);
    // The control: an intact seed is used, so the refusals below are not a seed never used.
    const warm = await create();
    assert.equal(
      await filesSent(host, warm.id),
      0,
      "the second create did not start from the seed",
    );
  });

  // The host's decoys: copies of the real seed (its marker is ours and valid) plus a file only
  // the decoy holds, kept in the login user's home, where nothing of sandboxer's belongs.
  const home = host.homeDir;
  const levels = [
    { what: "the seed", link: `${mine}/${hash}`, target: `${home}/d1`, decoy: `${home}/d1` },
    {
      what: "the user's seed directory",
      link: mine,
      target: `${home}/d2`,
      decoy: `${home}/d2/${hash}`,
    },
    {
      what: ".sbx-seeds",
      link: seeds,
      target: `${home}/d3`,
      decoy: `${home}/d3/${host.user}/${hash}`,
    },
  ];
  for (const { what, link, target, decoy } of levels) {
    await t.step(`a symlink at ${what} is refused and never followed`, async () => {
      // Copy the real seed to the decoy, then replace the level by a link to the decoy's side.
      await onHost(
        host,
        'mkdir -p -- "$(dirname -- "$3")" && cp -a -- "$1" "$3" && echo mine > "$3/$4" &&' +
          ' rm -rf -- "$2" && ln -s -- "$5" "$2"',
        `${mine}/${hash}`,
        link,
        decoy,
        PRECIOUS,
        target,
      );
      const record = await create();
      assert.ok(
        !await Deno.stat(host.path(`${record.workspace}/${PRECIOUS}`)).then(
          () => true,
          () => false,
        ),
        `${what}: the create copied the decoy`,
      );
      assert.ok(await filesSent(host, record.id) >= 20, `${what}: the create used a seed`);
      // Expired, the decoy would be reaped by a gc that followed the link.
      await onHost(
        host,
        'sed -i \'s/"expires":[0-9]*/"expires":1/\' "$1"',
        `${decoy}/${SEED_MARKER}`,
      );
      for (const args of [["gc"], ["gc", "--target", profile]]) {
        const gc = await host.cli(args);
        assert.equal(gc.code, 0, `${args.join(" ")}: ${gc.stderr}`);
      }
      assert.equal(
        await Deno.readTextFile(host.path(`${decoy}/${PRECIOUS}`)).catch(() => "gone"),
        "mine\n",
        `${what}: the decoy was changed through the link`,
      );
      assert.ok(
        await Deno.stat(host.path(`${decoy}/src/f7.txt`)).then(() => true, () => false),
        `${what}: files were deleted through the link`,
      );
      assert.equal(
        (await Deno.lstat(host.path(link))).isSymlink,
        true,
        `${what}: the planted link was replaced or removed`,
      );
      // Undo the plant: the next level starts from a real seed again, made by a create.
      await onHost(host, 'rm -f -- "$1" && rm -rf -- "$2"', link, target);
      await create();
      const names = (await onHost(host, 'ls -A -- "$1"', mine)).split("\n").filter(Boolean);
      assert.deepEqual(names, [hash], `${what}: no fresh seed after the link was removed`);
    });
  }

  await t.step("destroy removes every sandbox; the host keeps only its seeds", async () => {
    for (let i = 1; i <= n; i++) {
      const result = await host.cli(["destroy", `s${i}`]);
      assert.equal(result.code, 0, result.stderr);
    }
    assert.deepEqual(await host.rootEntries(), []);
  });
});
