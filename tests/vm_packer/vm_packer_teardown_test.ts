// Teardown on a host that shares nothing with this machine (tests/harness/isolated_host.ts): a
// workspace is removed only when the marker's id AND creation nonce match the record, the record
// belongs to that workspace, and what is at the path is a real directory — never a rollback of a
// create that found the name taken, never through a symlink, never a workspace without a marker.
// Everything is asserted on the host; the harness fails the test if anything happened locally.
import assert from "node:assert/strict";
import { type IsolatedHost, isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { createOk, snapshotTree } from "../harness/test_vm.ts";

const MARKER = ".sandboxer.json";

/** Run a shell script on the host as its login user: what the host's own user may do. */
async function onHost(host: IsolatedHost, script: string, ...args: string[]): Promise<string> {
  const result = await host.ssh(["sh", "-c", script, "sh", ...args]);
  assert.equal(result.code, 0, `${script}: ${result.stderr}`);
  return result.stdout;
}

async function readHost(host: IsolatedHost, path: string): Promise<string | undefined> {
  return await Deno.readTextFile(host.path(path)).catch(() => undefined);
}

async function editRecord(
  host: IsolatedHost,
  id: string,
  edit: (record: Record<string, unknown> & { handle: Record<string, unknown> }) => void,
): Promise<void> {
  const file = `${host.env.SANDBOXER_HOME}/sandboxes/${id}.json`;
  const record = JSON.parse(await Deno.readTextFile(file));
  edit(record);
  await Deno.writeTextFile(file, JSON.stringify(record, null, 2));
}

isolatedTest(
  "teardown: a failed create --name X never removes another machine's live X",
  async () => {
    await using host = await startIsolatedHost();
    const profile = await host.profile("p");
    const machineB = { SANDBOXER_HOME: `${host.dir}/machine-b` };
    await createOk(host, ["--profile", profile, "--name", "ci"]);
    const write = await host.cli(["exec", "ci", "--", "sh", "-c", "echo work > work.txt"]);
    assert.equal(write.code, 0, write.stderr);

    const clash = await host.cli(["create", "--profile", profile, "--name", "ci"], machineB);
    assert.equal(clash.code, 1, clash.stderr);
    assert.match(clash.stderr, /already exists/);
    assert.equal(await readHost(host, `${host.root}/sbx-ci/work.txt`), "work\n");
    // B's create was rolled back without touching A's workspace and left B no record, so a
    // destroy on B finds nothing, however often it is tried, and touches nothing either.
    const listedB = await host.cli(["list", "--all", "--json"], machineB);
    assert.deepEqual(JSON.parse(listedB.stdout), [], listedB.stderr);
    for (let i = 0; i < 2; i++) {
      const destroyB = await host.cli(["destroy", "ci"], machineB);
      assert.equal(destroyB.code, 1, destroyB.stderr);
      assert.match(destroyB.stderr, /^sandboxer: error: Cannot find sandbox "ci"/);
    }
    assert.equal(await readHost(host, `${host.root}/sbx-ci/work.txt`), "work\n");

    const read = await host.cli(["exec", "ci", "--", "cat", "work.txt"]);
    assert.equal(read.stdout, "work\n", read.stderr);
    const destroyA = await host.cli(["destroy", "ci"]);
    assert.equal(destroyA.code, 0, destroyA.stderr);
    assert.deepEqual(await host.rootEntries(), []);
  },
);

/** One way the host or the record can be tampered with, and what destroy must then do. */
interface Tampering {
  name: string;
  tamper: (host: IsolatedHost, id: string) => Promise<void>;
  /** Exit code of destroy. */
  code: number;
  message: RegExp;
  /** Put things back so the sandbox can be destroyed properly afterwards. */
  undo: (host: IsolatedHost, id: string) => Promise<void>;
}

const TAMPERINGS: Tampering[] = [
  {
    name: "sbx-<id> itself is a symlink to a precious directory",
    tamper: (host, id) =>
      onHost(
        host,
        'cd "$1" && mv "sbx-$2" "moved-$2" && ln -s "$HOME/precious" "sbx-$2"',
        host.root,
        id,
      )
        .then(() => {}),
    code: 1,
    message: /is a symlink, not a workspace sandboxer made/,
    undo: (host, id) =>
      onHost(host, 'cd "$1" && rm "sbx-$2" && mv "moved-$2" "sbx-$2"', host.root, id).then(
        () => {},
      ),
  },
  {
    name: "the marker names another sandbox",
    tamper: (host, id) =>
      onHost(
        host,
        'cp "$1/$2/.sandboxer.json" "$1/$2.keep" && printf "%s\\n" "$3" > "$1/$2/.sandboxer.json"',
        host.root,
        `sbx-${id}`,
        JSON.stringify({ id: "someone-else", nonce: "e".repeat(32) }),
      ).then(() => {}),
    code: 1,
    message: /names another sandbox/,
    undo: restoreMarker,
  },
  {
    name: "the marker holds this id with another nonce (another machine's sandbox of that name)",
    tamper: (host, id) =>
      onHost(
        host,
        'cp "$1/$2/.sandboxer.json" "$1/$2.keep" && printf "%s\\n" "$3" > "$1/$2/.sandboxer.json"',
        host.root,
        `sbx-${id}`,
        JSON.stringify({ id, nonce: "e".repeat(32) }),
      ).then(() => {}),
    // Nothing of this sandbox is there: it is destroyed, and the other one left alone.
    code: 0,
    message: /left \S+ on \S+ alone: it holds another sandbox named/,
    undo: restoreMarker,
  },
  {
    name: "the marker is gone",
    tamper: (host, id) =>
      onHost(host, 'mv "$1/$2/.sandboxer.json" "$1/$2.keep"', host.root, `sbx-${id}`).then(
        () => {},
      ),
    code: 1,
    message: /has no \.sandboxer\.json marker/,
    undo: restoreMarker,
  },
  {
    name: "the marker is a symlink to a good marker",
    tamper: (host, id) =>
      onHost(
        host,
        'mv "$1/$2/.sandboxer.json" "$1/$2.keep" && ln -s "$1/$2.keep" "$1/$2/.sandboxer.json"',
        host.root,
        `sbx-${id}`,
      ).then(() => {}),
    code: 1,
    message: /its \.sandboxer\.json is not a regular file/,
    undo: restoreMarker,
  },
  {
    name: "the marker is a FIFO (nothing blocks on it)",
    tamper: (host, id) =>
      onHost(
        host,
        'mv "$1/$2/.sandboxer.json" "$1/$2.keep" && mkfifo "$1/$2/.sandboxer.json"',
        host.root,
        `sbx-${id}`,
      ).then(() => {}),
    code: 1,
    message: /its \.sandboxer\.json is not a regular file/,
    undo: restoreMarker,
  },
  {
    name: "the marker is huge and not ours",
    tamper: (host, id) =>
      onHost(
        host,
        'mv "$1/$2/.sandboxer.json" "$1/$2.keep" && head -c 8388608 /dev/zero | tr "\\0" " " > "$1/$2/.sandboxer.json"',
        host.root,
        `sbx-${id}`,
      ).then(() => {}),
    code: 1,
    message: /its \.sandboxer\.json names another sandbox/,
    undo: restoreMarker,
  },
  {
    name: "the record's handle points at another sandbox's workspace (nonce copied too)",
    tamper: async (host, id) => {
      const victim = await host.show("victim");
      await editRecord(host, id, (record) => {
        record.workspace = victim.workspace;
        record.handle.workspace = victim.workspace;
        record.handle.nonce = victim.handle?.nonce;
      });
    },
    code: 1,
    message: /is not <root>\/sbx-t7, the workspace of sandbox t7/,
    undo: async (host, id) => {
      await editRecord(host, id, (record) => {
        record.workspace = `${host.root}/sbx-${id}`;
        record.handle.workspace = `${host.root}/sbx-${id}`;
        record.handle.nonce = createdNonce.get(id);
      });
    },
  },
];

/** Each sandbox's nonce as created, to put a tampered record right. */
const createdNonce = new Map<string, unknown>();

async function restoreMarker(host: IsolatedHost, id: string): Promise<void> {
  await onHost(host, 'mv "$1/$2.keep" "$1/$2/.sandboxer.json"', host.root, `sbx-${id}`);
}

isolatedTest(
  "teardown refuses what is not provably its own (table), and touches none of it",
  async (t) => {
    await using host = await startIsolatedHost();
    const profile = await host.profile("p");
    await onHost(host, 'mkdir -p "$HOME/precious" && echo draft > "$HOME/precious/thesis.tex"');
    await createOk(host, ["--profile", profile, "--name", "victim"]);
    await onHost(host, 'echo victim > "$1/sbx-victim/work.txt"', host.root);

    for (const [index, tampering] of TAMPERINGS.entries()) {
      const id = `t${index}`;
      await t.step(tampering.name, async () => {
        const record = await createOk(host, ["--profile", profile, "--name", id]);
        createdNonce.set(id, record.handle?.nonce);
        await onHost(host, 'echo mine > "$1/sbx-$2/work.txt"', host.root, id);
        await tampering.tamper(host, id);
        const before = await snapshotTree(host.path(host.root));
        const home = await snapshotTree(host.path(host.homeDir));

        const destroyed = await host.cli(["destroy", id]);
        assert.equal(destroyed.code, tampering.code, destroyed.stderr);
        assert.match(destroyed.stderr, tampering.message);
        if (tampering.code !== 0) {
          assert.equal(destroyed.stderr.trim().split("\n").length, 1, destroyed.stderr);
        }
        assert.deepEqual(await snapshotTree(host.path(host.root)), before, "nothing changed");
        assert.deepEqual(await snapshotTree(host.path(host.homeDir)), home);
        assert.equal(await readHost(host, `${host.homeDir}/precious/thesis.tex`), "draft\n");
        assert.equal(await readHost(host, `${host.root}/sbx-victim/work.txt`), "victim\n");

        // Put right, the sandbox tears down as usual (a destroyed one is left as it is).
        await tampering.undo(host, id);
        if (tampering.code === 0) {
          await onHost(host, 'rm -rf -- "$1/sbx-$2"', host.root, id);
        } else {
          const again = await host.cli(["destroy", id]);
          assert.equal(again.code, 0, again.stderr);
        }
        assert.deepEqual(await host.rootEntries(), ["sbx-victim"]);
      });
    }

    await t.step(
      "a workspace root that is a symlink is followed: it is the user's setup",
      async () => {
        await onHost(host, 'mkdir -p "$HOME/real-root"');
        const linkedRoot = `${host.homeDir}/linked-root`;
        await onHost(host, 'ln -s "$HOME/real-root" "$1"', linkedRoot);
        const linked = await host.profile("linked", { root: linkedRoot });
        await createOk(host, ["--profile", linked, "--name", "viaroot"]);
        const pwd = await host.cli(["exec", "viaroot", "--", "pwd", "-P"]);
        assert.equal(pwd.stdout, `${host.homeDir}/real-root/sbx-viaroot\n`, pwd.stderr);
        const destroyed = await host.cli(["destroy", "viaroot"]);
        assert.equal(destroyed.code, 0, destroyed.stderr);
        assert.deepEqual(await onHost(host, 'ls -A "$HOME/real-root"'), "");
      },
    );
  },
);

isolatedTest(
  "teardown of markers made before nonces: only their own record's destroy removes them",
  async (t) => {
    await using host = await startIsolatedHost();
    const profile = await host.profile("p");
    const machineB = { SANDBOXER_HOME: `${host.dir}/machine-b` };
    /** Make `id` look as an older sandboxer left it: no nonce in the marker or the handle. */
    const makeOld = async (id: string, env: Record<string, string>) => {
      const created = await host.cli(
        ["create", "--profile", profile, "--name", id, "--ttl", "1s"],
        env,
      );
      assert.equal(created.code, 0, created.stderr);
      const old = JSON.stringify({
        id,
        profile: "profile.p",
        creator: "old@box",
        expires_at: "2000-01-01T00:00:00.000Z",
      });
      await onHost(
        host,
        'printf "%s\\n" "$2" > "$1/.sandboxer.json"',
        `${host.root}/sbx-${id}`,
        old,
      );
      const file = `${env.SANDBOXER_HOME ?? host.env.SANDBOXER_HOME}/sandboxes/${id}.json`;
      const record = JSON.parse(await Deno.readTextFile(file));
      delete record.handle.nonce;
      await Deno.writeTextFile(file, JSON.stringify(record));
    };
    await makeOld("old1", machineB);
    await makeOld("old2", machineB);

    await t.step("gc --target from another machine leaves them, saying why", async () => {
      const gc = await host.cli(["gc", "--target", profile, "--json"]);
      assert.equal(gc.code, 0, gc.stderr);
      const kept = JSON.parse(gc.stdout).target.kept.map((
        k: { id: string; reason: string },
      ) => [k.id, k.reason]);
      assert.deepEqual(kept.map(([id]: string[]) => id).sort(), ["old1", "old2"]);
      assert.match(kept[0][1], /no creation nonce/);
      assert.deepEqual(await host.rootEntries(), ["sbx-old1", "sbx-old2"]);
    });

    await t.step("a create that finds one is not rolled back onto it", async () => {
      const clash = await host.cli(["create", "--profile", profile, "--name", "old1"]);
      assert.equal(clash.code, 1, clash.stderr);
      assert.ok(await readHost(host, `${host.root}/sbx-old1/${MARKER}`));
    });

    await t.step("its own record's destroy removes it", async () => {
      for (const id of ["old1", "old2"]) {
        const destroyed = await host.cli(["destroy", id], machineB);
        assert.equal(destroyed.code, 0, destroyed.stderr);
      }
      assert.deepEqual(await host.rootEntries(), []);
    });
  },
);

isolatedTest("teardown never enters a file system mounted inside the workspace", async () => {
  await using host = await startIsolatedHost();
  const { workspace, handle } = await createOk(host, [
    "--profile",
    await host.profile("p"),
    "--name",
    "mnt",
  ]);
  // As a build's FUSE mount would: another file system inside the workspace, in the host's view.
  const init = (await host.processes()).find((p) => p.args.includes("[listener]"));
  assert.ok(init, "the host's sshd");
  const inHost = async (...argv: string[]) => {
    const out = await new Deno.Command("nsenter", {
      args: ["-t", String(init.pid), "-m", "-r", "--", ...argv],
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  };
  await onHost(host, 'mkdir "$1/mnt"', workspace as string);
  await inHost("mount", "-t", "tmpfs", "-o", "mode=0777", "tmpfs", `${workspace}/mnt`);
  await onHost(host, 'echo elsewhere > "$1/mnt/data"', workspace as string);

  const refused = await host.cli(["destroy", "mnt"]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /could not empty .*a mount point/);
  const tomb = `${host.root}/.sbx-mnt.tomb-${handle?.nonce}`;
  assert.equal(await onHost(host, 'cat "$1/mnt/data"', tomb), "elsewhere\n");
  assert.ok(await readHost(host, `${tomb}/${MARKER}`), "the tombstone keeps its marker");

  await inHost("umount", `${tomb}/mnt`);
  const again = await host.cli(["destroy", "mnt"]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(await host.rootEntries(), []);
});
