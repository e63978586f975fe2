// The sandboxer process itself is SIGKILLed at each step of create (create, connect, workspace,
// sync, setup). Each time the journal must hold the record, still `creating` at that step and
// with the handle once one was recorded; once their heartbeats are stale (aged by setting the
// files' mtime, no sleeping) one `gc` must finish all of them, removing every workspace and nothing else.
//
// To land inside a step: `create` is held by pointing target.ssh_config at a FIFO nobody writes
// (vm-packer reads it right after the record is written); `connect` and `workspace` are
// stretched to seconds by an 8 kbit/s link; `sync` moves 1 MiB over a 256 kbit/s link (~30 s);
// `setup` sleeps.
import assert from "node:assert/strict";
import { startNetnsHost } from "../harness/netns.ts";
import { makeHeartbeatsStale, runSandboxer } from "../helpers.ts";
import {
  FAST,
  faultTest,
  processesMentioning,
  readRecord,
  sleep,
  spawnCli,
  waitForRecord,
  writeRepo,
} from "./fault_helpers.ts";

faultTest(
  "faults: sandboxer SIGKILLed at each step of create; gc finishes every record",
  async (t) => {
    await using host = await startNetnsHost();
    await Deno.writeTextFile(`${host.root}/KEEP`, "not a workspace\n");
    const state = host.env.SANDBOXER_HOME;
    const fifo = `${host.dir}/ssh_config.fifo`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(made.code, 0);
    const plain = await host.profile("plain");
    const held = await host.profile("held", [], { ssh_config: fifo });
    const slow = await host.profile("slow", ["setup:", "  - sleep 30"]);
    const repo = `${host.dir}/repo`;
    await writeRepo(repo, 1, 1024 * 1024);
    // The throttled handshake needs more than FAST's 3 s connect timeout.
    const args = [...FAST, "--set", "target.connect_timeout=15s"];
    const plans = [
      { step: "create", args: ["-p", held], handle: false, rate: undefined },
      { step: "connect", args: ["-p", plain], handle: false, rate: "8kbit" },
      { step: "workspace", args: ["-p", plain], handle: true, rate: "8kbit" },
      { step: "sync", args: ["-p", plain, "--repo", repo], handle: true, rate: "256kbit" },
      { step: "setup", args: ["-p", slow], handle: true, rate: undefined },
    ];

    for (const plan of plans) {
      await t.step(
        `killed at ${plan.step}: the record is there, creating at ${plan.step}`,
        async () => {
          const id = `killed-at-${plan.step}`;
          if (plan.rate) await host.throttle(plan.rate);
          // Each step is held by the throttled direct connection: a shared one that an earlier
          // create left up would finish the step before the kill.
          const env = { ...host.env, SANDBOXER_SSH_MUX: "0" };
          const cli = await spawnCli(["create", "--name", id, ...plan.args, ...args], env);
          try {
            await waitForRecord(state, id, (r) => r.step === plan.step, `reach ${plan.step}`);
            // Let rsync get going, so the kill interrupts a transfer rather than its start.
            if (plan.step === "sync") await sleep(1_000);
          } finally {
            cli.child.kill("SIGKILL");
            await cli.done;
          }
          if (plan.rate) await host.unthrottle();
          const record = await readRecord(state, id);
          assert.equal(record?.status, "creating", JSON.stringify(record));
          assert.equal(record?.step, plan.step, JSON.stringify(record));
          if (plan.handle) assert.equal(record?.handle?.workspace, `${host.root}/sbx-${id}`);
          else assert.equal(record?.handle, null);
        },
      );
    }

    await t.step("once the heartbeats are stale, one gc destroys them all", async () => {
      // The killed rsync's ssh may outlive it briefly; let it go before removing what it wrote.
      for (let i = 0; i < 50 && (await processesMentioning(`${host.root}/sbx-`)).length; i++) {
        await sleep(100);
      }
      assert.deepEqual(await processesMentioning(`${host.root}/sbx-`), []);
      for (const plan of plans) {
        assert.ok(await makeHeartbeatsStale(state, `killed-at-${plan.step}`) >= 1, plan.step);
      }
      const result = await runSandboxer(["gc", "--json"], host.env);
      assert.equal(result.code, 0, result.stderr);
      const report = JSON.parse(result.stdout);
      assert.deepEqual(report.failed, []);
      assert.deepEqual(
        report.destroyed.map((d: { id: string }) => d.id).sort(),
        plans.map((p) => `killed-at-${p.step}`).sort(),
      );
      for (const d of report.destroyed) assert.match(d.reason, /stuck in creating/);
      for (const plan of plans) {
        assert.equal((await readRecord(state, `killed-at-${plan.step}`))?.status, "destroyed");
      }
      assert.deepEqual(await host.rootEntries(), ["KEEP"]);
    });
  },
);
