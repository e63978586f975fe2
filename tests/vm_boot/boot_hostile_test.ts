// Attacks on boot mode's teardown: gc and destroy stop only a qemu sandboxer started for that VM
// directory (marker id + nonce, and the process's command line naming the directory's own QMP
// socket) and delete only `<stateDir>/vms/<id>`. A foreign qemu (`-machine none`, no guest: no VM
// boot is spent) is planted behind pid files and markers; it must survive every gc. Also: a boot
// that misses its deadline (cut short after 3 s) is a BootTimeoutError and is rolled back.
import assert from "node:assert/strict";
import { readRecord, spawnCli, waitForRecord } from "../faults/fault_helpers.ts";
import { tempDir } from "../helpers.ts";
import { ensureImage, qemuProcesses, vmEnv, vmTest } from "./vm_fixture.ts";

const NONCE = "0123456789abcdef0123456789abcdef";

async function plantVmDir(dir: string, marker: unknown, pid: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/vm.json`, JSON.stringify(marker));
  await Deno.writeTextFile(`${dir}/qemu.pid`, pid);
  await Deno.writeTextFile(`${dir}/overlay.qcow2`, "not an overlay");
}

vmTest(
  "vm boot: gc and destroy never stop a qemu they did not start, nor delete outside vms/<id>",
  async (t) => {
    await using vm = await vmEnv();
    await using outside = await tempDir("sbx-foreign-");
    const qemu = await new Deno.Command("qemu-system-x86_64", {
      args: [
        "-machine",
        "none",
        "-display",
        "none",
        "-qmp",
        `unix:${outside.path}/q.sock,server=on,wait=off`,
        "-pidfile",
        `${outside.path}/qemu.pid`,
        "-daemonize",
      ],
    }).output();
    assert.equal(qemu.code, 0, new TextDecoder().decode(qemu.stderr));
    const pid = (await Deno.readTextFile(`${outside.path}/qemu.pid`)).trim();
    const foreignAlive = async () => (await qemuProcesses(`${outside.path}/q.sock`)).length === 1;
    try {
      await t.step("a planted VM directory whose pid file names a foreign qemu", async () => {
        await plantVmDir(
          `${vm.state}/vms/ghost`,
          { id: "ghost", nonce: NONCE, created_at: "" },
          pid,
        );
        // One whose marker names another sandbox, and a symlink to a marked directory elsewhere.
        await plantVmDir(
          `${vm.state}/vms/evil`,
          { id: "other", nonce: NONCE, created_at: "" },
          pid,
        );
        await plantVmDir(`${outside.path}/vms/linked`, { id: "linked", nonce: NONCE }, pid);
        await Deno.symlink(`${outside.path}/vms/linked`, `${vm.state}/vms/linked`);
        const gc = await vm.cli(["gc", "--json"]);
        assert.equal(gc.code, 0, gc.stderr);
        assert.ok(await foreignAlive(), "gc stopped a qemu it did not start");
        // The ghost's own directory (marker and nonce consistent) is reaped; nothing runs from it.
        assert.deepEqual(JSON.parse(gc.stdout).reaped, [
          "VM of sandbox ghost: removed " + `${vm.state}/vms/ghost`,
        ]);
        assert.ok((await Deno.stat(`${vm.state}/vms/evil/vm.json`)).isFile, "foreign marker kept");
        assert.match(gc.stderr, /left .*\/vms\/evil alone/);
        assert.ok((await Deno.stat(`${outside.path}/vms/linked/overlay.qcow2`)).isFile);
        assert.ok((await Deno.lstat(`${vm.state}/vms/linked`)).isSymlink);
        await Deno.remove(`${vm.state}/vms/evil`, { recursive: true });
        await Deno.remove(`${vm.state}/vms/linked`);
      });

      await t.step(
        "a hand-edited handle aiming vm_dir elsewhere: destroy refuses, touches nothing",
        async () => {
          await ensureImage(vm);
          const id = "edited";
          const cli = await spawnCli(["create", "--name", id, "--profile", vm.profile], {
            ...vm.env,
            SANDBOXER_TEST_HOLD_AT: "keys",
          });
          try {
            await waitForRecord(vm.state, id, (r) => r.step === "keys", "reach keys", 300_000);
          } finally {
            cli.child.kill("SIGKILL");
            await cli.done;
          }
          const file = `${vm.state}/sandboxes/${id}.json`;
          const record = JSON.parse(await Deno.readTextFile(file));
          const original = record.handle.vm_dir;
          assert.equal(original, `${vm.state}/vms/${id}`);
          record.handle.vm_dir = `${outside.path}/vms/linked`;
          await Deno.writeTextFile(file, JSON.stringify(record));
          const destroy = await vm.cli(["destroy", "--force", id]);
          assert.equal(destroy.code, 1);
          assert.match(destroy.stderr, /not one sandboxer recorded/);
          assert.ok((await Deno.stat(`${outside.path}/vms/linked/overlay.qcow2`)).isFile);
          assert.ok(await foreignAlive());
          // Put back, the record is destroyed normally and its lease released.
          const again = JSON.parse(await Deno.readTextFile(file));
          again.handle.vm_dir = original;
          await Deno.writeTextFile(file, JSON.stringify(again));
          const fixed = await vm.cli(["destroy", "--force", id]);
          assert.equal(fixed.code, 0, fixed.stderr);
          assert.equal((await readRecord(vm.state, id))?.status, "destroyed");
          assert.deepEqual(JSON.parse((await vm.cli(["ports", "--json"])).stdout), []);
        },
      );
      await t.step(
        "a boot past vm.boot_timeout: BootTimeoutError, and the VM is rolled back",
        async () => {
          // A few seconds of a boot that is cut short: not one of the full boots.
          const result = await vm.cli([
            "create",
            "--profile",
            vm.profile,
            "--name",
            "slow",
            "--set",
            "vm.boot_timeout=3s",
          ]);
          assert.equal(result.code, 1);
          assert.match(
            result.stderr,
            /VM of sandbox slow did not answer SSH within 3s of booting .*raise vm\.boot_timeout.*console's last lines: /,
          );
          assert.match(result.stderr, /rolled back the half-made sandbox slow/);
          assert.deepEqual(await qemuProcesses(`/vms/slow/`), []);
          assert.equal(
            await Deno.stat(`${vm.state}/vms/slow`).then(() => true, () => false),
            false,
          );
          assert.deepEqual(JSON.parse((await vm.cli(["ports", "--json"])).stdout), []);
          assert.ok(await foreignAlive());
        },
      );
    } finally {
      // The test's own qemu, stopped through its own socket.
      const conn = await Deno.connect({ transport: "unix", path: `${outside.path}/q.sock` });
      const w = conn.writable.getWriter();
      await w.write(
        new TextEncoder().encode('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n'),
      );
      await new Promise((r) => setTimeout(r, 500));
      try {
        conn.close();
      } catch { /* closed by qemu */ }
    }
  },
);
