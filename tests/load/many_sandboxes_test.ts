// 32 sandboxes created at once on one target whose sshd has the default
// `MaxStartups 10:30:100` (written out explicitly): sshd starts dropping new connections at
// random once 10 are unauthenticated. All 32 must be created — files synced — and all destroyed.
//
// - Through the SDK, in one process: connects share the pool (one connection per target, at
//   most 8 connects in flight) and rsync runs at most 8 at a time per target.
// - Through 32 CLI processes: no process knows about the others, so sshd does drop
//   connections; the SSH pool and rsync retry connections dropped before the handshake.
//
// The link is limited to 1 Mbit/s: on a bare veth a handshake takes a millisecond and
// MaxStartups is never reached, while over a real network the handshakes overlap.
// (20 concurrent CLI processes against one state dir: tests/cli/cli_test.ts.)
import assert from "node:assert/strict";
import { Manager } from "../../src/sandbox/manager.ts";
import { startNetnsHost } from "../harness/netns.ts";
import { runSandboxer } from "../helpers.ts";
import { faultTest } from "../faults/fault_helpers.ts";

const COUNT = 32;
/** The throttled, crowded handshake can take seconds; this is not what is under test here. */
const SETTINGS = ["target.connect_timeout=30s"];

async function writeSmallRepo(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/src`, { recursive: true });
  for (let i = 0; i < 10; i++) {
    await Deno.writeTextFile(`${dir}/src/file${i}.txt`, `line ${i}\n`.repeat(100 * i + 1));
  }
}

faultTest(`load: ${COUNT} concurrent sandboxes on one MaxStartups 10:30:100 target`, async (t) => {
  await using host = await startNetnsHost({ sshdConfig: ["MaxStartups 10:30:100"] });
  await host.throttle("1mbit");
  const profile = await host.profile("p");
  const repo = `${host.dir}/repo`;
  await writeSmallRepo(repo);
  const ids = (prefix: string) => Array.from({ length: COUNT }, (_, i) => `${prefix}${i}`);

  await t.step(
    `SDK: ${COUNT} creates with a repo in one process, then ${COUNT} destroys`,
    async () => {
      await using manager = await Manager.open({ stateDir: `${host.dir}/sdk-state` });
      const created = await Promise.allSettled(
        ids("sdk").map((name) => manager.create({ profile, name, repo, overrides: SETTINGS })),
      );
      const failures = created.flatMap((r) => r.status === "rejected" ? [String(r.reason)] : []);
      assert.deepEqual(failures, []);
      for (const id of ids("sdk")) {
        const text = await Deno.readTextFile(`${host.root}/sbx-${id}/src/file9.txt`);
        assert.equal(text, "line 9\n".repeat(901));
      }
      const destroyed = await Promise.allSettled(ids("sdk").map((id) => manager.destroy(id)));
      assert.deepEqual(destroyed.filter((r) => r.status === "rejected"), []);
      assert.deepEqual(await host.rootEntries(), []);
    },
  );

  await t.step(`CLI: ${COUNT} create processes with a repo, then ${COUNT} destroys`, async () => {
    const set = SETTINGS.flatMap((s) => ["--set", s]);
    const created = await Promise.all(
      ids("cli").map((id) =>
        runSandboxer(["create", "-p", profile, "--name", id, "--repo", repo, ...set], host.env)
      ),
    );
    assert.deepEqual(created.filter((r) => r.code !== 0).map((r) => r.stderr), []);
    const list = await runSandboxer(["list", "--json"], host.env);
    const records: { id: string; status: string }[] = JSON.parse(list.stdout);
    assert.deepEqual(records.map((r) => r.id).sort(), ids("cli").sort());
    assert.ok(records.every((r) => r.status === "ready"));
    assert.deepEqual(
      (await host.rootEntries()).sort(),
      ids("cli").map((id) => `sbx-${id}`).sort(),
    );

    const destroyed = await Promise.all(
      ids("cli").map((id) => runSandboxer(["destroy", id], host.env)),
    );
    assert.deepEqual(destroyed.filter((r) => r.code !== 0).map((r) => r.stderr), []);
    const after = await runSandboxer(["list", "--all", "--json"], host.env);
    const final: { status: string }[] = JSON.parse(after.stdout);
    assert.equal(final.length, COUNT);
    assert.ok(final.every((r) => r.status === "destroyed"));
    assert.deepEqual(await host.rootEntries(), []);
  });
});
