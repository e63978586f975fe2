// Warm workspaces (issue 15 item 2) through the real CLI, the real rsync and a real sshd: a
// second create of the same repository starts from the seed the first one left on the host
// (proved by a file only the seed holds and by the transcript's count of files sent), a changed
// file still arrives; a repository seen again gets a spare copy the next create moves in whole; `sync.seed: off` sends everything; a seed whose marker names another
// sandboxer, and symlinks planted at the seed path or the user's seed directory, are refused and
// never followed (not by gc either); another user's seeds are never used; a profile that
// excludes more never starts from a seed that holds those files; gc and gc --target
// reap expired seeds, a tree over sync.seed_max_mb is not kept, `sync.seed: workspace` keeps
// build outputs from destroy, and a pool entry's workspace_root holds its seeds.
import assert from "node:assert/strict";
import { createOk, filesSent, startTestVm, type TestVm } from "../harness/test_vm.ts";
import { writePoolProfile } from "../harness/pool_hosts.ts";

const SEED_MARKER = ".sandboxer-seed.json";
const ONLY_IN_SEED = "build/only-in-seed.txt";

function seedsDir(vm: TestVm, root = vm.root): string {
  return `${root}/.sbx-seeds/${vm.sshd.user}`;
}

async function seedNames(vm: TestVm, root = vm.root): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(seedsDir(vm, root))) {
      if (/^[0-9a-f]{32}$/.test(entry.name)) names.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

async function makeRepo(dir: string): Promise<string> {
  const repo = `${dir}/repo`;
  await Deno.mkdir(`${repo}/src`, { recursive: true });
  await Deno.writeTextFile(`${repo}/.gitignore`, "build/\nout/\n");
  for (let i = 0; i < 40; i++) {
    await Deno.writeTextFile(`${repo}/src/f${i}.txt`, `file ${i}\n`.repeat(50));
  }
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", { args: ["-C", repo, ...args] }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  };
  await git("init", "-q");
  await git("add", "-A");
  await git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "init");
  return repo;
}

async function plant(vm: TestVm, path: string, text: string): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, text);
  await vm.chown(path.slice(0, path.lastIndexOf("/")));
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test("warm workspaces: seeds are used, refused, reaped and kept per user and root", async (t) => {
  await using vm = await startTestVm();
  const repo = await makeRepo(vm.dir);
  const profile = await vm.profile("warm");
  const create = (name: string, p = profile) =>
    createOk(vm, ["--profile", p, "--repo", repo, "--name", name]);
  let seed = "";

  await t.step("the first create sends everything and leaves a seed with our owner", async () => {
    const first = await create("w1");
    assert.ok(await filesSent(vm, first.id) >= 40);
    const names = await seedNames(vm);
    assert.equal(names.length, 1);
    seed = `${seedsDir(vm)}/${names[0]}`;
    const marker = JSON.parse(await Deno.readTextFile(`${seed}/${SEED_MARKER}`));
    const owner = (await Deno.readTextFile(`${vm.dir}/state/seeds/owner`)).trim();
    assert.equal(marker.owner, owner);
    assert.equal(marker.seed, names[0]);
    assert.ok(await exists(`${seed}/src/f7.txt`));
    assert.ok(!await exists(`${seed}/.sandboxer.json`), "the workspace marker is not in the seed");
  });

  await t.step("the second create starts from the seed; a changed file arrives", async () => {
    await plant(vm, `${seed}/${ONLY_IN_SEED}`, "from the seed\n");
    await Deno.writeTextFile(`${repo}/src/f3.txt`, "changed\n");
    const second = await create("w2");
    assert.ok(await filesSent(vm, second.id) <= 2, "only the difference is sent");
    assert.equal(await Deno.readTextFile(`${second.workspace}/${ONLY_IN_SEED}`), "from the seed\n");
    assert.equal(await Deno.readTextFile(`${second.workspace}/src/f3.txt`), "changed\n");
    const marker = JSON.parse(await Deno.readTextFile(`${second.workspace}/.sandboxer.json`));
    assert.equal(marker.id, "w2");
    assert.ok(!await exists(`${second.workspace}/${SEED_MARKER}`));
    // The seed now holds the changed file.
    assert.equal(await Deno.readTextFile(`${seed}/src/f3.txt`), "changed\n");
  });

  await t.step(
    "a repository seen again gets a spare copy, which the next create moves in whole",
    async () => {
      // The second create started from the seed: the host copies the new seed for the next one.
      const [name] = await seedNames(vm);
      const nonce = JSON.parse(await Deno.readTextFile(`${seed}/${SEED_MARKER}`)).nonce;
      const spare = `${seedsDir(vm)}/.spare-${name}-${nonce}`;
      for (let i = 0; i < 200 && !await exists(spare); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(await exists(spare), "a spare copy of the new seed");
      assert.equal(await Deno.readTextFile(`${spare}/src/f3.txt`), "changed\n");
      await Deno.writeTextFile(`${repo}/src/f4.txt`, "changed too\n");
      const third = await create("w2b");
      assert.ok(!await exists(spare), "the create took it");
      assert.ok(await filesSent(vm, third.id) <= 2, "only the difference is sent");
      assert.equal(await Deno.readTextFile(`${third.workspace}/src/f4.txt`), "changed too\n");
      assert.equal(await Deno.readTextFile(`${third.workspace}/src/f3.txt`), "changed\n");
      assert.equal(
        await Deno.readTextFile(`${third.workspace}/${ONLY_IN_SEED}`),
        "from the seed\n",
      );
      assert.equal(
        JSON.parse(await Deno.readTextFile(`${third.workspace}/.sandboxer.json`)).id,
        "w2b",
      );
      assert.ok(!await exists(`${third.workspace}/${SEED_MARKER}`));
      // Its files are its own, not those of the sandbox whose tree the seed was.
      await Deno.writeTextFile(`${third.workspace}/src/f7.txt`, "edited in place\n", {
        append: true,
      });
      const earlier = await Deno.readTextFile(`${vm.root}/sbx-w2/src/f7.txt`);
      assert.ok(!earlier.includes("edited in place"));
    },
  );

  await t.step("sync.seed: off sends everything", async () => {
    const off = await vm.profile("off", { extra: ["sync:", "  seed: off"] });
    const record = await create("w3", off);
    assert.ok(await filesSent(vm, record.id) >= 40);
    assert.ok(!await exists(`${record.workspace}/${ONLY_IN_SEED}`));
  });

  await t.step(
    "a seed whose marker names another sandboxer is neither used nor replaced",
    async () => {
      const file = `${seed}/${SEED_MARKER}`;
      const good = await Deno.readTextFile(file);
      const marker = JSON.parse(good);
      await Deno.writeTextFile(file, good.replace(marker.owner, "0".repeat(32)));
      const result = await vm.cli(["create", "--profile", profile, "--repo", repo, "--name", "w4"]);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(!await exists(`${vm.root}/sbx-w4/${ONLY_IN_SEED}`));
      assert.ok(await filesSent(vm, "w4") >= 40);
      assert.equal(await Deno.readTextFile(file), good.replace(marker.owner, "0".repeat(32)));
      await Deno.writeTextFile(file, good);
    },
  );

  await t.step("a symlink planted at the seed path is refused and not followed by gc", async () => {
    const victim = `${vm.dir}/victim`;
    await Deno.rename(seed, victim);
    await Deno.symlink(victim, seed);
    const record = await create("w5");
    assert.ok(!await exists(`${record.workspace}/${ONLY_IN_SEED}`));
    assert.ok(await filesSent(vm, record.id) >= 40);
    const expired = (await Deno.readTextFile(`${victim}/${SEED_MARKER}`))
      .replace(/"expires":\d+/, '"expires":1');
    await Deno.writeTextFile(`${victim}/${SEED_MARKER}`, expired);
    const gc = await vm.cli(["gc"]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.ok(await exists(`${victim}/src/f7.txt`), "gc followed the symlink");
    assert.equal((await Deno.lstat(seed)).isSymlink, true);
    await Deno.remove(seed);
    await Deno.rename(victim, seed);
    await Deno.writeTextFile(
      `${seed}/${SEED_MARKER}`,
      expired.replace('"expires":1', '"expires":9999999999'),
    );
  });

  await t.step(
    "another user's seeds are never used; a symlinked user directory is refused",
    async () => {
      const mine = seedsDir(vm);
      const other = `${vm.root}/.sbx-seeds/other-user`;
      await Deno.rename(mine, other);
      const record = await create("w6");
      assert.ok(!await exists(`${record.workspace}/${ONLY_IN_SEED}`));
      // The create made a fresh directory of its own; replace it with a link to the other one.
      await Deno.remove(mine, { recursive: true });
      await Deno.symlink(other, mine);
      const linked = await create("w7");
      assert.ok(!await exists(`${linked.workspace}/${ONLY_IN_SEED}`));
      assert.ok(await filesSent(vm, linked.id) >= 40);
      assert.ok(await exists(`${other}/${seed.slice(seed.lastIndexOf("/") + 1)}/${ONLY_IN_SEED}`));
      await Deno.remove(mine);
      await Deno.rename(other, mine);
    },
  );

  await t.step("gc reaps an expired seed; gc --target too", async () => {
    const file = `${seed}/${SEED_MARKER}`;
    const expire = async () =>
      await Deno.writeTextFile(
        file,
        (await Deno.readTextFile(file)).replace(/"expires":\d+/, '"expires":1'),
      );
    await expire();
    const gc = await vm.cli(["gc"]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /reaped seed /);
    assert.deepEqual(await seedNames(vm), []);
    await create("w8");
    assert.equal((await seedNames(vm)).length, 1);
    await expire();
    const target = await vm.cli(["gc", "--target", profile]);
    assert.equal(target.code, 0, target.stderr);
    assert.match(target.stdout, /reaped seed /);
    assert.deepEqual(await seedNames(vm), []);
  });

  await t.step("a tree over sync.seed_max_mb is not kept", async () => {
    const small = await vm.profile("small", { extra: ["sync:", "  seed_max_mb: 1"] });
    await Deno.writeTextFile(`${repo}/big.bin`, "x".repeat(2 * 1024 * 1024));
    try {
      const result = await vm.cli(["create", "--profile", small, "--repo", repo, "--name", "w9"]);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await seedNames(vm), []);
    } finally {
      await Deno.remove(`${repo}/big.bin`);
    }
  });

  await t.step("sync.seed: workspace keeps build outputs from destroy", async () => {
    const ws = await vm.profile("ws", { extra: ["sync:", "  seed: workspace"] });
    const built = await create("w10", ws);
    const exec = await vm.cli([
      "exec",
      built.id,
      "--",
      "sh",
      "-c",
      "mkdir out && echo built > out/a.o",
    ]);
    assert.equal(exec.code, 0, exec.stderr);
    assert.deepEqual(await seedNames(vm), [], "no seed before the destroy");
    const destroyed = await vm.cli(["destroy", built.id]);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.ok(!await exists(built.workspace!), "destroy still removes the workspace");
    const names = await seedNames(vm);
    assert.equal(names.length, 1);
    assert.equal(await Deno.readTextFile(`${seedsDir(vm)}/${names[0]}/out/a.o`), "built\n");
    const next = await create("w11", ws);
    assert.equal(await Deno.readTextFile(`${next.workspace}/out/a.o`), "built\n");
    assert.ok(await filesSent(vm, next.id) <= 2);
  });

  await t.step(
    "a profile that leaves more out never starts from a seed that holds it",
    async () => {
      await Deno.writeTextFile(`${repo}/creds.secret`, "token\n");
      try {
        const all = await create("s1");
        assert.equal(await Deno.readTextFile(`${all.workspace}/creds.secret`), "token\n");
        const strict = await vm.profile("strict", { extra: ["sync:", '  exclude: ["*.secret"]'] });
        const record = await create("s2", strict);
        assert.ok(!await exists(`${record.workspace}/creds.secret`), "an excluded file arrived");
        assert.ok(await filesSent(vm, record.id) >= 40);
      } finally {
        await Deno.remove(`${repo}/creds.secret`);
      }
    },
  );

  await t.step("a pool entry's workspace_root holds its seeds", async () => {
    const root = `${vm.dir}/pool-root`;
    await Deno.mkdir(root);
    await vm.chown(root);
    const { host, port, user, identityFile, knownHostsFile } = vm.sshd;
    const pool = await writePoolProfile(vm.dir, "pool", [
      { host, port, user, identityFile, knownHostsFile, capacity: 4, root },
    ]);
    await create("p1", pool);
    assert.equal((await seedNames(vm, root)).length, 1);
    const second = await create("p2", pool);
    assert.ok(await filesSent(vm, second.id) <= 2);
  });

  for (const record of await vm.list()) {
    if (record.status !== "destroyed") await vm.cli(["destroy", record.id]);
  }
});
