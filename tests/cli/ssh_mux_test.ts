// exec shares one OpenSSH connection between CLI processes (ControlMaster/ControlPersist):
// two execs authenticate once, SANDBOXER_SSH_MUX=0 makes no socket, the socket is 0600 in a
// 0700 directory, a planted symlink or a directory open to others is refused, a killed master
// leaves a stale socket the next exec replaces, a re-keyed host is still refused, --timeout kills
// the remote command, and stdin and exit codes (255 and deaths by signal included) pass through.
// create starts the master beside its own connection, so that the syncs (tar, then rsync) and
// exec after it log in no more, and a create that finds it up runs over it; concurrent creates
// leave one master; a host whose key is not the known one gets none; a command the server refuses
// a session for (MaxSessions) never ran, so it connects itself.
// Real sshd, the CLI's flags.
import assert from "node:assert/strict";
import { processTable, spawnSandboxer, textOf } from "../helpers.ts";
import { createOk, startTestVm, type TestVm } from "../harness/test_vm.ts";
import { replaceHostKey } from "../transport/host_key_helpers.ts";

const AUTH = /^Accepted publickey for /;

/** Successful logins in the server's log so far. */
async function logins(vm: TestVm): Promise<number> {
  return (await vm.sshd.log()).split("\n").filter((l) => AUTH.test(l)).length;
}

/** The control sockets (names without a dot) in the state directory's mux/. */
async function sockets(vm: TestVm): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(`${vm.env.SANDBOXER_HOME}/mux`)) {
      if (!e.name.includes(".")) names.push(e.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

/** Pids of the masters listening in this state directory. */
async function masters(vm: TestVm): Promise<number[]> {
  return (await processTable())
    .filter((p) => p.args.includes(`${vm.env.SANDBOXER_HOME}/mux/`))
    .filter((p) => p.args.includes("ControlMaster=yes"))
    .map((p) => p.pid);
}

async function killMasters(vm: TestVm): Promise<void> {
  for (const pid of await masters(vm)) Deno.kill(pid, "SIGKILL");
  for (let i = 0; i < 100 && (await masters(vm)).length > 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(await masters(vm), []);
}

/** The one line a failing command printed. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, stderr);
  return lines[0];
}

Deno.test("exec over a shared connection: one login, safe socket, exit codes and stdin", async (t) => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  // Made with sharing off: the steps below watch the first master start.
  const made = await vm.cli(["create", "-p", profile, "--name", "m1"], { SANDBOXER_SSH_MUX: "0" });
  assert.equal(made.code, 0, made.stderr);
  const mux = `${vm.env.SANDBOXER_HOME}/mux`;
  try {
    await t.step("SANDBOXER_SSH_MUX=0 makes no socket and logs in every time", async () => {
      const before = await logins(vm);
      for (let i = 0; i < 2; i++) {
        const off = await vm.cli(["exec", "m1", "--", "true"], { SANDBOXER_SSH_MUX: "0" });
        assert.equal(off.code, 0, off.stderr);
      }
      assert.deepEqual(await sockets(vm), []);
      assert.equal(await logins(vm), before + 2);
    });

    await t.step("two execs share one master: one login, one master process", async () => {
      const before = await logins(vm);
      for (const word of ["one", "two"]) {
        const result = await vm.cli(["exec", "m1", "--", "echo", word]);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, `${word}\n`);
      }
      assert.equal(await logins(vm), before + 1, "the second exec did not log in again");
      assert.equal((await masters(vm)).length, 1);
      const [name] = await sockets(vm);
      assert.match(name, /^[0-9a-f]{16}$/);
      const socket = await Deno.lstat(`${mux}/${name}`);
      assert.ok(socket.isSocket);
      assert.equal(socket.mode! & 0o777, 0o600);
      assert.equal((await Deno.lstat(mux)).mode! & 0o777, 0o700);
    });

    await t.step("exit codes pass through: 7, 255, a death by signal", async () => {
      for (const [script, code] of [["exit 7", 7], ["exit 255", 255], ["kill -TERM $$", 143]]) {
        const result = await vm.cli(["exec", "m1", "--", "sh", "-c", script as string]);
        assert.equal(result.code, code, `${script}: ${result.stderr}`);
        assert.equal(result.stderr, "");
      }
      const both = await vm.cli(["exec", "m1", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
      assert.deepEqual([both.code, both.stdout, both.stderr], [3, "out\n", "err\n"]);
    });

    await t.step("stdin passes: echo hi | exec -- cat", async () => {
      const child = await spawnSandboxer(["exec", "m1", "--", "cat"], vm.env, { stdin: "piped" });
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode("hi\n"));
      await writer.close();
      const result = textOf(await child.output());
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "hi\n");
    });

    await t.step("--timeout ends the remote command over the shared connection (124)", async () => {
      // A duration no other test uses: the login user is shared with tests running beside this.
      const result = await vm.cli(["exec", "--timeout", "2s", "m1", "--", "sleep", "7019"]);
      assert.equal(result.code, 124, result.stderr);
      assert.match(oneLine(result.stderr), /ran past --timeout 2s and was killed/);
      const left = async () =>
        (await processTable()).filter((p) => p.user === vm.sshd.user && /sleep 7019/.test(p.args));
      for (let i = 0; i < 50 && (await left()).length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(await left(), [], "the remote sleep was killed");
      assert.equal((await masters(vm)).length, 1, "still one master");
    });

    await t.step("a killed master leaves a stale socket; the next exec replaces it", async () => {
      const [name] = await sockets(vm);
      await killMasters(vm);
      assert.ok((await Deno.lstat(`${mux}/${name}`)).isSocket, "the socket is left behind");
      const result = await vm.cli(["exec", "m1", "--", "echo", "again"]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "again\n");
      assert.equal((await masters(vm)).length, 1, "a new master listens");
    });

    await t.step("a planted symlink or an open directory is refused (exit 125)", async () => {
      const [name] = await sockets(vm);
      await killMasters(vm);
      await Deno.remove(`${mux}/${name}`);
      const elsewhere = `${vm.dir}/elsewhere.sock`;
      await Deno.symlink(elsewhere, `${mux}/${name}`);
      const planted = await vm.cli(["exec", "m1", "--", "touch", "planted-ran"]);
      assert.equal(planted.code, 125, planted.stderr);
      assert.match(oneLine(planted.stderr), /is a symlink, not a control socket sandboxer made/);
      assert.ok((await Deno.lstat(`${mux}/${name}`)).isSymlink, "the symlink is left alone");
      await Deno.remove(`${mux}/${name}`);

      await Deno.chmod(mux, 0o755);
      const open = await vm.cli(["exec", "m1", "--", "touch", "open-ran"]);
      assert.equal(open.code, 125, open.stderr);
      assert.match(oneLine(open.stderr), /its mode is 0755, not 0700/);
      await Deno.chmod(mux, 0o700);

      await Deno.rename(mux, `${mux}.real`);
      await Deno.symlink(`${mux}.real`, mux);
      const linked = await vm.cli(["exec", "m1", "--", "touch", "linked-ran"]);
      assert.equal(linked.code, 125, linked.stderr);
      assert.match(oneLine(linked.stderr), /it is a symlink, so sandboxer will not keep/);
      await Deno.remove(mux);
      await Deno.rename(`${mux}.real`, mux);
      const ran = await vm.cli(["exec", "m1", "--", "ls"]);
      assert.doesNotMatch(ran.stdout, /-ran/, "no refused command ran");
    });

    await t.step("a re-keyed host is refused, master or not", async () => {
      const up = await vm.cli(["exec", "m1", "--", "true"]);
      assert.equal(up.code, 0, up.stderr);
      await replaceHostKey(vm.sshd); // restarts the server: the master's connection drops
      const refused = await vm.cli(["exec", "m1", "--", "touch", "rekeyed-ran"]);
      assert.equal(refused.code, 125, refused.stderr);
      assert.match(oneLine(refused.stderr), /is not the one pinned when the sandbox was created/);
      assert.deepEqual(await masters(vm), [], "no master runs under the new key");
    });
  } finally {
    await killMasters(vm).catch(() => {});
  }
});

/** Wait (up to 10 s) until `ready` holds. */
async function until(ready: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await ready()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting until ${what}`);
}

Deno.test("create leaves a shared connection: the sync and exec after it log in no more", async (t) => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  const repo = await Deno.makeTempDir({ dir: vm.dir, prefix: "repo-" });
  await Deno.writeTextFile(`${repo}/hello.txt`, "hello\n");
  try {
    await t.step("create launches one master; sync's tar and exec run over it", async () => {
      const before = await logins(vm);
      await createOk(vm, ["-p", profile, "--name", "c1"]);
      await until(async () => (await sockets(vm)).length === 1, "the master listens");
      assert.equal((await masters(vm)).length, 1);
      assert.equal(await logins(vm), before + 2, "create's own login and the master's");
      const sync = await vm.cli(["sync", "c1", "--repo", repo, "--debug"]);
      assert.equal(sync.code, 0, sync.stderr);
      assert.match(sync.stderr, /by tar over the shared connection/);
      const exec = await vm.cli(["exec", "c1", "--", "cat", "hello.txt"]);
      assert.equal(exec.code, 0, exec.stderr);
      assert.equal(exec.stdout, "hello\n");
      await Deno.writeTextFile(`${repo}/hello.txt`, "hello again\n");
      const resync = await vm.cli(["sync", "c1", "--repo", repo, "--debug"]);
      assert.equal(resync.code, 0, resync.stderr);
      assert.match(resync.stderr, /by rsync over the shared connection/);
      const again = await vm.cli(["exec", "c1", "--", "cat", "hello.txt"]);
      assert.equal(again.stdout, "hello again\n");
      assert.equal(await logins(vm), before + 2, "sync and exec logged in again");
    });

    await t.step(
      "rsync over the shared connection refuses a workspace swapped for a symlink",
      async () => {
        const ws = `${vm.root}/sbx-c1`;
        const decoy = await Deno.makeTempDir({ dir: vm.dir, prefix: "decoy-" });
        await Deno.chmod(decoy, 0o777);
        await Deno.rename(ws, `${ws}.real`);
        await Deno.symlink(decoy, ws);
        try {
          await Deno.writeTextFile(`${repo}/hello.txt`, "swapped\n");
          assert.equal((await masters(vm)).length, 1, "the shared connection is up");
          const refused = await vm.cli(["sync", "c1", "--repo", repo, "--debug"]);
          assert.equal(refused.code, 1, refused.stderr);
          assert.match(refused.stderr, /sbx-c1 is a symlink, not a workspace sandboxer made/);
          assert.doesNotMatch(
            refused.stderr,
            /shared connection failed/,
            "refused on the shared path",
          );
          assert.deepEqual(
            await Array.fromAsync(Deno.readDir(decoy)),
            [],
            "nothing written through the link",
          );
        } finally {
          await Deno.remove(ws);
          await Deno.rename(`${ws}.real`, ws);
        }
      },
    );

    await t.step("SANDBOXER_SSH_MUX=0 sync connects on its own", async () => {
      const before = await logins(vm);
      await Deno.writeTextFile(`${repo}/hello.txt`, "unshared\n");
      const off = await vm.cli(["sync", "c1", "--repo", repo, "--debug"], {
        SANDBOXER_SSH_MUX: "0",
      });
      assert.equal(off.code, 0, off.stderr);
      assert.doesNotMatch(off.stderr, /over the shared connection/);
      assert.equal(await logins(vm), before + 1);
    });

    await t.step("a create that finds the master up runs over it: no login at all", async () => {
      assert.equal((await masters(vm)).length, 1, "the master is up");
      const before = await logins(vm);
      const record = await createOk(vm, ["-p", profile, "--name", "c7"]);
      assert.equal(await logins(vm), before, "the create logged in");
      const [line] = (await Deno.readTextFile(vm.sshd.knownHostsFile)).trim().split("\n");
      const known = await new Deno.Command("ssh-keygen", {
        args: ["-lf", "-"],
        stdin: "piped",
        stdout: "piped",
      }).spawn();
      const writer = known.stdin.getWriter();
      await writer.write(new TextEncoder().encode(`${line}\n`));
      await writer.close();
      const fingerprint = new TextDecoder().decode((await known.output()).stdout).split(" ")[1];
      assert.equal(record.handle?.host_key_fingerprint, fingerprint, "the known key is pinned");
      const exec = await vm.cli(["exec", "c7", "--", "cat", ".sandboxer.json"]);
      assert.equal(exec.code, 0, exec.stderr);
      assert.equal(JSON.parse(exec.stdout).id, "c7");
      assert.equal(await logins(vm), before, "exec logged in");
      // Refused by the workspace script over the shared connection, in its usual words.
      const bad = await vm.cli([
        "create",
        "-p",
        profile,
        "--name",
        "c8",
        "--set",
        "workspace.root=/nonexistent",
      ]);
      assert.equal(bad.code, 1, bad.stderr);
      assert.match(bad.stderr, /workspace root \/nonexistent does not exist/);
    });

    await t.step(
      "twelve creates at once over one master all succeed (sshd's MaxSessions is 10)",
      async () => {
        await until(async () => (await masters(vm)).length === 1, "the master is up");
        const names = Array.from({ length: 12 }, (_, i) => `m${i}`);
        const made = await Promise.all(
          names.map((name) => vm.cli(["create", "-p", profile, "--name", name])),
        );
        for (const result of made) assert.equal(result.code, 0, result.stderr);
        const ran = await Promise.all(
          names.map((name) => vm.cli(["exec", "-n", name, "--", "cat", ".sandboxer.json"])),
        );
        for (const [i, result] of ran.entries()) {
          assert.equal(result.code, 0, result.stderr);
          assert.equal(JSON.parse(result.stdout).id, names[i]);
        }
      },
    );

    await t.step("concurrent creates leave one master and no other ssh", async () => {
      await killMasters(vm);
      const made = await Promise.all(
        ["c2", "c3", "c4"].map((name) => vm.cli(["create", "-p", profile, "--name", name])),
      );
      for (const result of made) assert.equal(result.code, 0, result.stderr);
      await until(async () => (await sockets(vm)).length === 1, "a master listens");
      const ours = async () =>
        (await processTable()).filter((p) =>
          /^(\S*\/)?ssh /.test(p.args) && p.args.includes(`${vm.env.SANDBOXER_HOME}/mux/`)
        );
      // A master that lost the socket to another exits at once; none stays connected.
      await until(async () => (await ours()).length === 1, "only the winning master is left");
      assert.equal((await masters(vm)).length, 1);
    });

    await t.step("SANDBOXER_SSH_MUX=0 create starts none", async () => {
      await killMasters(vm);
      const off = await vm.cli(["create", "-p", profile, "--name", "c5"], {
        SANDBOXER_SSH_MUX: "0",
      });
      assert.equal(off.code, 0, off.stderr);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(await masters(vm), []);
    });

    await t.step("a host whose key is not the known one gets no master", async () => {
      await killMasters(vm);
      await replaceHostKey(vm.sshd);
      const refused = await vm.cli(["create", "-p", profile, "--name", "c6"]);
      assert.notEqual(refused.code, 0, "create refused the new key");
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(await masters(vm), [], "no master runs under the new key");
    });
  } finally {
    await killMasters(vm).catch(() => {});
  }
});

Deno.test("commands the server refuses a session for on the shared connection connect themselves", async () => {
  // Two sessions per connection and three unauthenticated connections at once: most of twelve
  // commands are refused a session over the master, and OpenSSH's own direct connections after
  // that are mostly dropped before they authenticate. None of them ran, so each connects itself.
  await using vm = await startTestVm({ extraConfig: ["MaxSessions 2", "MaxStartups 3:100:3"] });
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "s1"]);
  try {
    const up = await vm.cli(["exec", "s1", "--", "true"]);
    assert.equal(up.code, 0, up.stderr);
    const ran = await Promise.all(
      Array.from(
        { length: 12 },
        (_, i) => vm.cli(["exec", "-n", "s1", "--", "sh", "-c", `sleep 1; echo ${i}`]),
      ),
    );
    for (const [i, result] of ran.entries()) {
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `${i}\n`);
    }
  } finally {
    await killMasters(vm).catch(() => {});
  }
});
