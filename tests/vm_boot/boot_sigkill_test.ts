// sandboxer is SIGKILLed at each step of a boot-mode create (sandboxer only: the VM it started
// keeps running). SANDBOXER_TEST_HOLD_AT=<step> makes the create stop right after recording that
// step, so even the millisecond steps are hit exactly. After each kill the record is `creating` at
// that step; once its heartbeat is stale one `gc` must leave no qemu process, no VM directory
// (overlay, seed, keys) and no port lease. At wait-ssh the record is also deleted by hand before gc:
// the VM must then be reaped as an orphan. Four VM boots (wait-ssh, connect, workspace, setup).
import assert from "node:assert/strict";
import { makeHeartbeatsStale } from "../helpers.ts";
import { readRecord, spawnCli, waitForRecord } from "../faults/fault_helpers.ts";
import { ensureImage, qemuProcesses, vmEnv, vmTest } from "./vm_fixture.ts";
import { listDir } from "../helpers.ts";

const STEPS = [
  { step: "image", handle: false, vm: false },
  { step: "vm-dir", handle: true, vm: false },
  { step: "port", handle: true, vm: false },
  { step: "keys", handle: true, vm: false },
  { step: "seed", handle: true, vm: false },
  { step: "overlay", handle: true, vm: false },
  { step: "boot", handle: true, vm: false },
  { step: "wait-ssh", handle: true, vm: true, orphan: true },
  { step: "connect", handle: true, vm: true },
  { step: "workspace", handle: true, vm: true },
  { step: "setup", handle: true, vm: true },
];

vmTest(
  "vm boot: sandboxer SIGKILLed at each step of create; gc leaves no qemu, overlay or lease",
  async (t) => {
    await using vm = await vmEnv({ extra: ["setup:", "  - sleep 600"] });
    await ensureImage(vm);

    for (const plan of STEPS) {
      await t.step(`killed at ${plan.step}; gc reaps everything`, async () => {
        const id = `k-${plan.step}`;
        const hold: Record<string, string> = plan.step === "setup"
          ? {}
          : { SANDBOXER_TEST_HOLD_AT: plan.step };
        const cli = await spawnCli(["create", "--name", id, "--profile", vm.profile], {
          ...vm.env,
          ...hold,
        });
        try {
          await waitForRecord(
            vm.state,
            id,
            (r) => r.step === plan.step,
            `reach ${plan.step}`,
            300_000,
          );
          // A VM that runs: wait until qemu is up, so the kill leaves a live VM behind.
          if (plan.vm) {
            for (let i = 0; i < 100 && !(await qemuProcesses(`/vms/${id}/`)).length; i++) {
              await new Promise((r) => setTimeout(r, 100));
            }
          }
        } finally {
          cli.child.kill("SIGKILL");
          await cli.done;
        }
        const record = await readRecord(vm.state, id);
        assert.equal(record?.status, "creating", JSON.stringify(record));
        assert.equal(record?.step, plan.step);
        assert.equal(record?.handle !== null, plan.handle, JSON.stringify(record));
        assert.equal((await qemuProcesses(`/vms/${id}/`)).length, plan.vm ? 1 : 0);

        assert.ok(await makeHeartbeatsStale(vm.state, id) >= 1);
        if ("orphan" in plan) {
          for (const name of await listDir(`${vm.state}/sandboxes`)) {
            if (name.startsWith(`${id}.`)) await Deno.remove(`${vm.state}/sandboxes/${name}`);
          }
        }
        const gc = await vm.cli(["gc", "--json"]);
        assert.equal(gc.code, 0, gc.stderr);
        const report = JSON.parse(gc.stdout);
        if ("orphan" in plan) {
          assert.deepEqual(report.destroyed, []);
          assert.ok(
            report.reaped.some((r: string) => r.startsWith(`VM of sandbox ${id}: stopped qemu`)),
            gc.stdout,
          );
        } else {
          assert.deepEqual(report.destroyed.map((d: { id: string }) => d.id), [id]);
        }
        assert.deepEqual(report.failed, []);
        assert.deepEqual(await qemuProcesses(`/vms/${id}/`), []);
        assert.deepEqual(await listDir(`${vm.state}/vms`).catch(() => []), []);
        assert.deepEqual(JSON.parse((await vm.cli(["ports", "--json"])).stdout), []);
      });
    }
  },
);
