// Leak reaping from the host side: `sandboxer gc --target PROFILE` finds marked workspaces that
// this machine's journal does not know (here: made with another state directory, as another
// machine would) and removes the expired ones; it keeps unexpired ones, ones without expiry and
// ones this machine is still working on, and never touches anything that is not a marked
// workspace — unmarked directories, foreign or unreadable markers, symlinks. The host is an
// isolated one (tests/harness/isolated_host.ts): what is removed is read from its file system.
import assert from "node:assert/strict";
import { isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { runSandboxer } from "../helpers.ts";
import { FAST, sleep, snapshot, spawnCli, waitForRecord } from "./fault_helpers.ts";

interface Entry {
  id?: string;
  workspace: string;
  reason: string;
  creator?: string | null;
}

const names = (entries: Entry[]) => entries.map((e) => e.workspace.replace(/.*\//, "")).sort();

isolatedTest(
  "faults: gc --target removes expired marked workspaces no record knows, nothing else",
  async (t) => {
    await using host = await startIsolatedHost();
    const profile = await host.profile("p");
    const slow = await host.profile("slow", { extra: ["setup:", "  - sleep 30"] });
    const here = host.env;
    const elsewhere = { ...host.env, SANDBOXER_HOME: `${host.dir}/other-machine` };
    // The host's files, seen from here.
    const root = host.path(host.root);
    const outside = host.path(`${host.homeDir}/outside`);

    const create = async (env: Record<string, string>, id: string, ...args: string[]) => {
      const result = await runSandboxer(
        ["create", "-p", profile, "--name", id, ...FAST, ...args],
        env,
      );
      assert.equal(result.code, 0, result.stderr);
    };
    // Made "on another machine": this journal never hears of them.
    await create(elsewhere, "old1", "--ttl", "1s");
    await create(elsewhere, "old2", "--ttl", "1s");
    await create(elsewhere, "fresh", "--ttl", "1h");
    await create(elsewhere, "forever");
    // Made here and still being created (live heartbeat), already past its ttl.
    const live = await spawnCli(
      ["create", "-p", slow, "--name", "live", "--ttl", "1s", ...FAST],
      here,
    );
    await waitForRecord(here.SANDBOXER_HOME, "live", (r) => r.step === "setup", "reach setup");

    // Things that are not marked workspaces.
    const marker = (id: string) =>
      JSON.stringify({ id, creator: "x@y", expires_at: "2000-01-01T00:00:00.000Z" }) + "\n";
    await Deno.mkdir(`${root}/sbx-unmarked`);
    await Deno.writeTextFile(`${root}/sbx-unmarked/precious.txt`, "keep\n");
    await Deno.mkdir(`${root}/sbx-foreign`);
    await Deno.writeTextFile(`${root}/sbx-foreign/.sandboxer.json`, marker("someone-else"));
    await Deno.mkdir(`${root}/sbx-garbled`);
    await Deno.writeTextFile(`${root}/sbx-garbled/.sandboxer.json`, "{not json\n");
    await Deno.mkdir(outside);
    await Deno.writeTextFile(`${outside}/.sandboxer.json`, marker("link"));
    await Deno.symlink(`${host.homeDir}/outside`, `${root}/sbx-link`);
    await Deno.mkdir(`${root}/sbx-markerlink`);
    await Deno.writeTextFile(`${outside}/m.json`, marker("markerlink"));
    await Deno.symlink(`${host.homeDir}/outside/m.json`, `${root}/sbx-markerlink/.sandboxer.json`);
    await Deno.mkdir(`${root}/keepme`);
    await Deno.writeTextFile(`${root}/keepme/.sandboxer.json`, marker("keepme"));
    await sleep(1_200);

    const before = await snapshot(root, (name) => name === "sbx-old1" || name === "sbx-old2");
    const outsideBefore = await snapshot(outside);

    await t.step(
      "--json: removes old1 and old2 only, and says why for everything else",
      async () => {
        const result = await runSandboxer(["gc", "--target", "p", "--json", ...FAST], {
          ...here,
          SANDBOXER_PROFILE_PATH: host.dir,
        });
        assert.equal(result.code, 0, result.stderr);
        const report = JSON.parse(result.stdout);
        assert.deepEqual(report.destroyed, [], "plain gc leaves the live sandbox alone");
        const target = report.target;
        assert.equal(target.root, host.root);
        assert.match(target.target, /^sbx@10\.214\.\d+\.\d+:22$/);
        assert.deepEqual(names(target.removed), ["sbx-old1", "sbx-old2"]);
        for (const r of target.removed) {
          assert.match(r.reason, /^expired at /);
          assert.match(r.creator, /@/);
        }
        assert.deepEqual(target.failed, []);
        assert.deepEqual(names(target.kept), ["sbx-forever", "sbx-fresh", "sbx-live"]);
        const reason = (name: string) =>
          target.kept.find((k: Entry) => k.workspace.endsWith(name)).reason;
        assert.match(reason("sbx-fresh"), /expires at/);
        assert.match(reason("sbx-forever"), /no expiry/);
        assert.match(reason("sbx-live"), /journal has it \(creating\)/);
        assert.deepEqual(names(target.ignored), [
          "sbx-foreign",
          "sbx-garbled",
          "sbx-link",
          "sbx-markerlink",
          "sbx-unmarked",
        ]);
        assert.equal(await Deno.lstat(`${root}/sbx-old1`).catch(() => undefined), undefined);
        assert.equal(await Deno.lstat(`${root}/sbx-old2`).catch(() => undefined), undefined);
        assert.deepEqual(await snapshot(root), before, "nothing else in the root changed");
        assert.deepEqual(await snapshot(outside), outsideBefore, "symlinks not followed");
      },
    );

    await t.step("text: a second run has nothing to remove", async () => {
      const result = await runSandboxer(["gc", "--target", profile, ...FAST], here);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^kept \S+\/sbx-fresh: it expires at /m);
      assert.match(result.stdout, /^left alone \S+\/sbx-unmarked: no \.sandboxer\.json marker$/m);
      assert.match(result.stdout, /^Nothing to remove in /m);
    });

    await t.step("the other machine's destroy of a reaped sandbox still succeeds", async () => {
      const result = await runSandboxer(["destroy", "old1"], elsewhere);
      assert.equal(result.code, 0, result.stderr);
    });

    await t.step("--set without --target is a usage error", async () => {
      const result = await runSandboxer(["gc", "--set", "target.port=1"], here);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /--set without --target/);
    });

    live.child.kill("SIGKILL");
    await live.done;
    for (
      const [env, id] of [[here, "live"], [elsewhere, "fresh"], [elsewhere, "forever"]] as const
    ) {
      const result = await runSandboxer(["destroy", "--force", id], env);
      assert.equal(result.code, 0, result.stderr);
    }
    assert.deepEqual(await host.rootEntries(), [
      "keepme",
      "sbx-foreign",
      "sbx-garbled",
      "sbx-link",
      "sbx-markerlink",
      "sbx-unmarked",
    ]);
  },
);
