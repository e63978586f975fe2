// Removal against racing work, on a host that shares nothing with this machine
// (tests/harness/isolated_host.ts). Each race is driven deterministically: a remote step is held at
// a gate — a wrapper earlier on the host's PATH that blocks on a FIFO until the test opens it —
// never by sleeps that hope. After each test the host holds no workspace, tombstone or process of
// a destroyed sandbox.
import assert from "node:assert/strict";
import { makeHeartbeatsStale } from "../helpers.ts";
import { type IsolatedHost, isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { createOk, type RecordJson } from "../harness/test_vm.ts";
import { readRecord, sleep, spawnCli } from "./fault_helpers.ts";

/**
 * Put a gate in front of a host program: while `/tmp/<name>.gate` exists, the first call (of
 * rsync: the first `--server`; of tar: the first `--extract`) writes its pid to `/tmp/<name>.waiting` and blocks until the FIFO
 * `/tmp/<name>.fifo` is opened; every call is logged to `/tmp/<name>.log` as `start`/`end`.
 */
async function gate(host: IsolatedHost, name: "rsync" | "find" | "tar"): Promise<Gate> {
  const wrapper = `#!/bin/sh
case "$1" in --server|.|--extract) ;; *) exec /usr/bin/${name} "$@" ;; esac
echo "start $$" >> /tmp/${name}.log
if [ -e /tmp/${name}.gate ] && mkdir /tmp/${name}.taken 2>/dev/null; then
  echo "$$" > /tmp/${name}.waiting
  cat /tmp/${name}.fifo > /dev/null
fi
/usr/bin/${name} "$@"; rc=$?
echo "end $$" >> /tmp/${name}.log
exit $rc
`;
  await Deno.writeTextFile(host.path(`/usr/local/bin/${name}`), wrapper, { mode: 0o755 });
  await Deno.chmod(host.path(`/usr/local/bin/${name}`), 0o755);
  const fifo = host.path(`/tmp/${name}.fifo`);
  const made = await new Deno.Command("mkfifo", { args: ["-m", "666", fifo] }).output();
  assert.equal(made.code, 0);
  return {
    async close() {
      await Deno.writeTextFile(host.path(`/tmp/${name}.gate`), "");
      await Deno.remove(host.path(`/tmp/${name}.taken`)).catch(() => {});
      await Deno.remove(host.path(`/tmp/${name}.waiting`)).catch(() => {});
    },
    async waitUntilHeld() {
      await until(`the ${name} gate to hold a caller`, async () => {
        const pid = await Deno.readTextFile(host.path(`/tmp/${name}.waiting`)).catch(() => "");
        return /^\d+\n$/.test(pid) ? true : undefined;
      });
    },
    async open() {
      await Deno.remove(host.path(`/tmp/${name}.gate`)).catch(() => {});
      // Read-write never blocks on a FIFO; closing it is the EOF a waiting caller reads.
      const file = await Deno.open(fifo, { read: true, write: true });
      await file.write(new TextEncoder().encode("go\n"));
      file.close();
    },
    async log() {
      const text = await Deno.readTextFile(host.path(`/tmp/${name}.log`)).catch(() => "");
      return text.split("\n").filter(Boolean);
    },
  };
}

interface Gate {
  /** Hold the next call. */
  close(): Promise<void>;
  /** Wait until a call is held. */
  waitUntilHeld(): Promise<void>;
  /** Let it go. */
  open(): Promise<void>;
  /** `start <pid>` / `end <pid>` lines so far. */
  log(): Promise<string[]>;
}

/** `promise`, or a failure naming `what` after a minute (a kept-running command must not hang the test). */
async function within<T>(what: string, promise: Promise<T>, ms = 60_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function kill(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
}

/** The host's processes that are not its sshd (listener or sessions). */
async function workOnHost(host: IsolatedHost): Promise<string[]> {
  return (await host.processes()).map((p) => p.args).filter((args) => !args.startsWith("sshd"));
}

async function writeFiles(dir: string, files: Record<string, string>): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  return dir;
}

/**
 * Take a new sandbox's fresh-workspace note, so that its first sync is the rsync (or SFTP) one
 * these races hold at their gates, not one tar stream (tests/vm_packer/tar_first_sync_test.ts).
 */
async function noTar(host: IsolatedHost, record: RecordJson): Promise<RecordJson> {
  const nonce = (record.handle as { nonce: string }).nonce;
  await Deno.remove(`${host.env.SANDBOXER_HOME}/fresh/${record.id}.${nonce}`);
  return record;
}

isolatedTest("race: destroy during a sync leaves nothing on the host; the sync fails", async () => {
  await using host = await startIsolatedHost();
  const rsync = await gate(host, "rsync");
  const files: Record<string, string> = {};
  for (let i = 0; i < 300; i++) files[`f${i}.txt`] = `${i}\n`;
  const repo = await writeFiles(`${host.dir}/repo`, files);
  await noTar(host, await createOk(host, ["--profile", await host.profile("p"), "--name", "big"]));

  await rsync.close();
  const sync = await spawnCli(["sync", "big", "--repo", repo], host.env);
  await rsync.waitUntilHeld();
  const destroyed = await host.cli(["destroy", "--force", "big"]);
  assert.equal(destroyed.code, 0, destroyed.stderr);
  await rsync.open();
  const synced = await sync.done;

  assert.notEqual(synced.code, 0, "the sync cannot have succeeded");
  assert.equal(synced.stderr.trim().split("\n").length, 1, synced.stderr);
  assert.match(
    synced.stderr,
    /sbx-big was removed on sbx@[\d.]+:22 during an attempt to sync into it/,
  );
  assert.deepEqual(await host.rootEntries(), [], "no workspace, no tombstone");
  assert.deepEqual(await workOnHost(host), [], "no process of the sandbox");
  assert.equal((await host.show("big")).status, "destroyed");
});

isolatedTest(
  "race: destroy during a first sync by tar leaves nothing on the host; the sync fails",
  async () => {
    await using host = await startIsolatedHost();
    const tar = await gate(host, "tar");
    const files: Record<string, string> = {};
    for (let i = 0; i < 300; i++) files[`f${i}.txt`] = `${i}\n`;
    const repo = await writeFiles(`${host.dir}/repo`, files);
    await createOk(host, ["--profile", await host.profile("p"), "--name", "big"]);

    await tar.close();
    const sync = await spawnCli(["sync", "big", "--repo", repo], host.env);
    await tar.waitUntilHeld();
    const destroyed = await host.cli(["destroy", "--force", "big"]);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    await tar.open();
    const synced = await sync.done;

    assert.notEqual(synced.code, 0, "the sync cannot have succeeded");
    assert.equal(synced.stderr.trim().split("\n").length, 1, synced.stderr);
    assert.match(synced.stderr, /sbx-big (no longer exists|was removed)/);
    assert.deepEqual(await host.rootEntries(), [], "no workspace, no tombstone");
    assert.deepEqual(await workOnHost(host), [], "no process of the sandbox");
    assert.equal((await host.show("big")).status, "destroyed");
  },
);

isolatedTest("race: two syncs into one sandbox run one after the other", async () => {
  await using host = await startIsolatedHost();
  const rsync = await gate(host, "rsync");
  const first = await writeFiles(`${host.dir}/first`, { "first.txt": "1\n", "both.txt": "1\n" });
  const second = await writeFiles(`${host.dir}/second`, {
    "second.txt": "2\n",
    "both.txt": "22\n",
  });
  const { workspace } = await noTar(
    host,
    await createOk(host, ["--profile", await host.profile("p"), "--name", "two"]),
  );

  await rsync.close();
  const a = await spawnCli(["sync", "two", "--repo", first], host.env);
  await rsync.waitUntilHeld();
  const b = await spawnCli(["sync", "two", "--repo", second], host.env);
  // The second waits for the first's lock (or, unserialised, starts its own rsync at once).
  await until("the second sync to wait or start", async () => {
    if ((await rsync.log()).length >= 2) return true;
    return (await workOnHost(host)).some((args) => args.startsWith("flock")) ? true : undefined;
  });
  await rsync.open();
  const [doneA, doneB] = [await a.done, await b.done];
  assert.equal(doneA.code, 0, doneA.stderr);
  assert.equal(doneB.code, 0, doneB.stderr);

  const log = await rsync.log();
  assert.equal(log.length, 4, log.join());
  assert.deepEqual(log.map((l) => l.split(" ")[0]), ["start", "end", "start", "end"], log.join());
  assert.equal(log[0].split(" ")[1], log[1].split(" ")[1], "the first ran to its end alone");
  const names = (await Array.fromAsync(Deno.readDir(host.path(workspace as string))))
    .map((e) => e.name).sort();
  assert.deepEqual(names, [".sandboxer.json", "both.txt", "second.txt"]);
  assert.equal(await Deno.readTextFile(host.path(`${workspace}/both.txt`)), "22\n");
  const destroyed = await host.cli(["destroy", "two"]);
  assert.equal(destroyed.code, 0, destroyed.stderr);
  assert.deepEqual(await host.rootEntries(), []);
});

isolatedTest("race: destroy and gc end the sandbox's running commands on the host", async (t) => {
  await using host = await startIsolatedHost();
  const profile = await host.profile("p");

  await t.step("destroy --force during an exec", async () => {
    await createOk(host, ["--profile", profile, "--name", "busy"]);
    const exec = await spawnCli(
      ["exec", "busy", "--", "sh", "-c", "sleep 31337; echo after"],
      host.env,
    );
    await until(
      "the command to run",
      async () =>
        (await workOnHost(host)).some((args) => args === "sleep 31337") ? true : undefined,
    );
    const destroyed = await host.cli(["destroy", "--force", "busy"]);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    const ran = await within("the exec to end", exec.done).finally(() => kill(exec.child));
    assert.equal(ran.code, 143, ran.stderr);
    assert.equal(ran.stdout, "", "the command did not go on without its workspace");
    assert.deepEqual(await workOnHost(host), []);
    assert.deepEqual(await host.rootEntries(), []);
  });

  await t.step("gc of an expired sandbox during an exec", async () => {
    const { expires_at } = await createOk(host, [
      "--profile",
      profile,
      "--name",
      "old",
      "--ttl",
      "2s",
    ]);
    const exec = await spawnCli(["exec", "old", "--", "sh", "-c", "sleep 31338 & wait"], host.env);
    await until(
      "the command to run",
      async () =>
        (await workOnHost(host)).some((args) => args === "sleep 31338") ? true : undefined,
    );
    await sleep(Math.max(0, Date.parse(expires_at as string) - Date.now() + 100));
    const gc = await host.cli(["gc", "--json"]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual(JSON.parse(gc.stdout).destroyed.map((d: { id: string }) => d.id), ["old"]);
    const ran = await within("the exec to end", exec.done).finally(() => kill(exec.child));
    assert.notEqual(ran.code, 0);
    assert.deepEqual(await workOnHost(host), []);
    assert.deepEqual(await host.rootEntries(), []);
  });
});

isolatedTest(
  "race: a removal cut short leaves a marked tombstone that gc and gc --target finish",
  async (t) => {
    await using host = await startIsolatedHost();
    const find = await gate(host, "find");
    const profile = await host.profile("p");
    const repo = await writeFiles(`${host.dir}/repo`, { "a.txt": "a\n", "b.txt": "b\n" });
    const machineC = { SANDBOXER_HOME: `${host.dir}/machine-c` };
    const state = host.env.SANDBOXER_HOME;

    /** Hold `id`'s removal at its first find, after the rename and the process ending. */
    const cutShort = async (id: string, killCli: boolean) => {
      const { handle } = await createOk(host, ["--profile", profile, "--name", id, "--repo", repo]);
      // Another process with its own view of the record, as one that began to sync just before.
      await Deno.mkdir(`${machineC.SANDBOXER_HOME}/sandboxes`, { recursive: true });
      await Deno.copyFile(
        `${state}/sandboxes/${id}.json`,
        `${machineC.SANDBOXER_HOME}/sandboxes/${id}.json`,
      );
      await find.close();
      const destroy = await spawnCli(["destroy", id], host.env);
      await find.waitUntilHeld();
      const tomb = `.sbx-${id}.tomb-${handle?.nonce}`;
      assert.deepEqual(await host.rootEntries(), [tomb]);
      assert.ok(await Deno.stat(host.path(`${host.root}/${tomb}/.sandboxer.json`)));

      // A sync that comes now finds no workspace and makes none.
      const sync = await host.cli(["sync", id, "--repo", repo], machineC);
      assert.equal(sync.code, 1, sync.stderr);
      assert.match(sync.stderr, /no longer exists .* will not recreate it/);
      assert.deepEqual(await host.rootEntries(), [tomb]);

      // The cut: the removal script dies on the host (and, maybe, the CLI here).
      if (killCli) destroy.child.kill("SIGKILL");
      // The script and the gate first (so the gate cannot go on to run find), then what it waits in.
      const held = await host.processes();
      for (const p of held) {
        if (p.args.includes("tomb=.sbx-") || p.args.includes("/usr/local/bin/find")) {
          Deno.kill(p.pid, "SIGKILL");
        }
      }
      for (const p of held) if (p.args.includes("find.fifo")) Deno.kill(p.pid, "SIGKILL");
      await destroy.done;
      await find.open();
      await Deno.remove(host.path("/tmp/find.taken")).catch(() => {});
      assert.deepEqual(await host.rootEntries(), [tomb]);
      assert.ok(await Deno.stat(host.path(`${host.root}/${tomb}/.sandboxer.json`)), "marker kept");
      return tomb;
    };

    await t.step("plain gc finishes a failed destroy", async () => {
      await cutShort("half1", false);
      assert.equal((await readRecord(state, "half1"))?.status, "failed");
      const gc = await host.cli(["gc", "--json"]);
      assert.equal(gc.code, 0, gc.stderr);
      assert.deepEqual(JSON.parse(gc.stdout).destroyed.map((d: { id: string }) => d.id), ["half1"]);
      assert.deepEqual(await host.rootEntries(), []);
    });

    await t.step(
      "gc --target from another machine finishes a tombstone no record of its own knows",
      async () => {
        await cutShort("half2", true);
        assert.equal((await readRecord(state, "half2"))?.status, "destroying");
        const machineD = { SANDBOXER_HOME: `${host.dir}/machine-d` };
        const gc = await host.cli(["gc", "--target", profile, "--json"], machineD);
        assert.equal(gc.code, 0, gc.stderr);
        const target = JSON.parse(gc.stdout).target;
        assert.deepEqual(target.failed, []);
        assert.deepEqual(
          target.removed.map((r: { id: string; reason: string }) => [r.id, r.reason]),
          [["half2", "a removal that was cut short (tombstone)"]],
        );
        assert.deepEqual(await host.rootEntries(), []);
        // This machine's own record is finished by gc once its destroyer is known to be dead:
        // its heartbeat is aged by its mtime, not by sleeping (a loaded machine would need more).
        await makeHeartbeatsStale(state, "half2", ["alive"]);
        const mine = await host.cli(["gc", "--json"]);
        assert.equal(mine.code, 0, mine.stderr);
        assert.equal((await readRecord(state, "half2"))?.status, "destroyed");
      },
    );

    assert.deepEqual(await workOnHost(host), []);
  },
);

isolatedTest(
  "race: a workspace swapped for a symlink after the check is still not written through",
  async (t) => {
    await using full = await startIsolatedHost();
    await using bare = await startIsolatedHost({ without: ["rsync"] });
    const swap = 'cd "$1" && mv sbx-swap moved && ln -s "$HOME/important" sbx-swap';
    const important = async (host: IsolatedHost) => {
      const result = await host.ssh([
        "sh",
        "-c",
        'mkdir -p "$HOME/important" && echo draft > "$HOME/important/thesis.tex"',
      ]);
      assert.equal(result.code, 0, result.stderr);
    };
    const untouched = async (host: IsolatedHost) => {
      const listed = await host.ssh([
        "sh",
        "-c",
        'ls -A "$HOME/important"; cat "$HOME/important/thesis.tex"',
      ]);
      assert.equal(listed.stdout, "thesis.tex\ndraft\n", "the link's target was written through");
    };

    await t.step("rsync: held after its check, then the path is swapped", async () => {
      const rsync = await gate(full, "rsync");
      const repo = await writeFiles(`${full.dir}/repo`, { "new.txt": "new\n" });
      await noTar(
        full,
        await createOk(full, ["--profile", await full.profile("p"), "--name", "swap"]),
      );
      await important(full);
      await rsync.close();
      const sync = await spawnCli(["sync", "swap", "--repo", repo], full.env);
      await rsync.waitUntilHeld();
      const swapped = await full.ssh(["sh", "-c", swap, "sh", full.root]);
      assert.equal(swapped.code, 0, swapped.stderr);
      await rsync.open();
      const done = await sync.done;
      assert.equal(done.code, 0, done.stderr);
      await untouched(full);
      // It went where the check pointed: the real directory, wherever it is now.
      assert.equal(await Deno.readTextFile(full.path(`${full.root}/moved/new.txt`)), "new\n");
    });

    await t.step(
      "SFTP: held before its first write (local listing), then the path is swapped",
      async () => {
        // The SFTP sync asks the local rsync for its plan: hold that, here, with a FIFO of our own.
        const bin = `${bare.dir}/bin`;
        await Deno.mkdir(bin);
        const fifo = `${bin}/fifo`;
        assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
        const real = new TextDecoder().decode(
          (await new Deno.Command("sh", { args: ["-c", "command -v rsync"], stdout: "piped" })
            .output())
            .stdout,
        ).trim();
        await Deno.writeTextFile(
          `${bin}/rsync`,
          `#!/bin/sh\ncase " $* " in *" --dry-run "*) touch "${bin}/held"; cat "${fifo}" > /dev/null ;; esac\nexec ${real} "$@"\n`,
          { mode: 0o755 },
        );
        const repo = await writeFiles(`${bare.dir}/repo`, { "new.txt": "new\n" });
        await noTar(
          bare,
          await createOk(bare, ["--profile", await bare.profile("p"), "--name", "swap"]),
        );
        await important(bare);
        const sync = await spawnCli(["sync", "swap", "--repo", repo], {
          ...bare.env,
          PATH: `${bin}:${Deno.env.get("PATH")}`,
        });
        await until(
          "the SFTP sync to plan",
          async () => (await Deno.stat(`${bin}/held`).then(() => true, () => undefined)),
        );
        const swapped = await bare.ssh(["sh", "-c", swap, "sh", bare.root]);
        assert.equal(swapped.code, 0, swapped.stderr);
        const file = await Deno.open(fifo, { read: true, write: true });
        file.close();
        const done = await sync.done;
        assert.equal(done.code, 0, done.stderr);
        assert.match(done.stderr, /syncing over SFTP/);
        await untouched(bare);
        assert.equal(await Deno.readTextFile(bare.path(`${bare.root}/moved/new.txt`)), "new\n");
      },
    );
  },
);

isolatedTest(
  "race: destroy during an SFTP sync ends its lock holder; the sync stops, nothing leaks",
  async () => {
    await using bare = await startIsolatedHost({ without: ["rsync"] });
    // Hold the SFTP sync at its local plan (after the holder checked and locked the workspace).
    const bin = `${bare.dir}/bin`;
    await Deno.mkdir(bin);
    const fifo = `${bin}/fifo`;
    assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
    const real = new TextDecoder().decode(
      (await new Deno.Command("sh", { args: ["-c", "command -v rsync"], stdout: "piped" }).output())
        .stdout,
    ).trim();
    await Deno.writeTextFile(
      `${bin}/rsync`,
      `#!/bin/sh\ncase " $* " in *" --dry-run "*) touch "${bin}/held"; cat "${fifo}" > /dev/null ;; esac\nexec ${real} "$@"\n`,
      { mode: 0o755 },
    );
    const files: Record<string, string> = {};
    for (let i = 0; i < 50; i++) files[`f${i}.txt`] = `${i}\n`;
    const repo = await writeFiles(`${bare.dir}/repo`, files);
    await noTar(
      bare,
      await createOk(bare, ["--profile", await bare.profile("p"), "--name", "sftp"]),
    );
    const sync = await spawnCli(["sync", "sftp", "--repo", repo], {
      ...bare.env,
      PATH: `${bin}:${Deno.env.get("PATH")}`,
    });
    await until(
      "the SFTP sync to plan",
      async () => (await Deno.stat(`${bin}/held`).then(() => true, () => undefined)),
    );
    assert.ok((await workOnHost(bare)).some((args) => args === "cat"), "the lock holder runs");
    const destroyed = await bare.cli(["destroy", "--force", "sftp"]);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    const file = await Deno.open(fifo, { read: true, write: true });
    file.close();
    const done = await within("the sync to end", sync.done);
    assert.equal(done.code, 1, done.stderr);
    assert.match(done.stderr, /sbx-sftp was removed on \S+ during the sync/);
    assert.deepEqual(await bare.rootEntries(), []);
    assert.deepEqual(await workOnHost(bare), []);
  },
);
