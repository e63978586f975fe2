import assert from "node:assert/strict";
import { VmError } from "../../../core/errors.ts";
import { tempDir } from "../../../testing/temp_dir.ts";
import { chooseAccel } from "./accel.ts";
import { qemuArgs, type QemuSpec } from "./qemu.ts";
import { makeVmDir, readMarker, removeVmDir, vmDirOf } from "./vm_dir.ts";

const SPEC: QemuSpec = {
  dir: "/s/vms/a1",
  kernel: "/i/vmlinuz",
  initrd: "/i/initrd.img",
  append: "quiet",
  accel: "tcg",
  cpus: 2,
  memoryMiB: 1024,
  sshPort: 12222,
};

Deno.test("chooseAccel(): auto takes kvm only with a writable /dev/kvm and vmx or svm", () => {
  const vmx = "processor : 0\nflags\t\t: fpu vme vmx sse2\n";
  assert.equal(chooseAccel("auto", { kvmWritable: true, cpuinfo: vmx }), "kvm");
  assert.equal(chooseAccel("auto", { kvmWritable: true, cpuinfo: "flags : fpu svm" }), "kvm");
  // /dev/kvm answering without vmx/svm is the nested case that hangs at boot.
  assert.equal(chooseAccel("auto", { kvmWritable: true, cpuinfo: "flags : fpu sse2" }), "tcg");
  assert.equal(chooseAccel("auto", { kvmWritable: false, cpuinfo: vmx }), "tcg");
  assert.equal(chooseAccel("kvm", { kvmWritable: false, cpuinfo: "" }), "kvm");
  assert.equal(chooseAccel("tcg", { kvmWritable: true, cpuinfo: vmx }), "tcg");
});

Deno.test("qemuArgs(): loopback-only forward, files in the VM directory, detached with QMP", () => {
  const args = qemuArgs(SPEC);
  const value = (flag: string) => args[args.indexOf(flag) + 1];
  assert.equal(value("-accel"), "tcg");
  assert.equal(value("-m"), "1024");
  assert.equal(value("-smp"), "2");
  assert.equal(value("-netdev"), "user,id=n0,hostfwd=tcp:127.0.0.1:12222-:22");
  assert.equal(value("-qmp"), "unix:/s/vms/a1/qmp.sock,server=on,wait=off");
  assert.equal(value("-pidfile"), "/s/vms/a1/qemu.pid");
  assert.ok(args.includes("-daemonize"));
  assert.ok(value("-append").endsWith(" quiet"));
  const drives = args.filter((_, i) => args[i - 1] === "-drive");
  assert.deepEqual(drives, [
    "file=/s/vms/a1/overlay.qcow2,format=qcow2,if=virtio",
    "file=/s/vms/a1/seed.img,format=raw,if=virtio,readonly=on",
  ]);
  assert.equal(qemuArgs({ ...SPEC, accel: "kvm" })[args.indexOf("-accel") + 2], "-cpu");
});

Deno.test("qemuArgs(): a comma or a relative path could add qemu options, so it is refused", () => {
  assert.throws(() => qemuArgs({ ...SPEC, kernel: "/k,if=none" }), TypeError);
  assert.throws(() => qemuArgs({ ...SPEC, dir: "/s/vms/a,1" }), TypeError);
  assert.throws(() => qemuArgs({ ...SPEC, initrd: "initrd.img" }), TypeError);
});

Deno.test("vmDirOf(): always <stateDir>/vms/<id>; ids that could leave it and overlong socket paths refused", () => {
  assert.equal(vmDirOf("/s/", "a1"), "/s/vms/a1");
  for (const id of ["..", "../x", "a/b", "-a", "", "A1"]) {
    assert.throws(() => vmDirOf("/s", id), VmError, id);
  }
  assert.throws(() => vmDirOf("relative", "a1"), VmError);
  assert.throws(() => vmDirOf("/s/../t", "a1"), VmError);
  assert.throws(() => vmDirOf(`/${"x".repeat(100)}`, "a1"), /QMP socket/);
});

Deno.test("removeVmDir(): only with the marker's nonce, never through a symlink", async () => {
  await using dir = await tempDir();
  const vm = vmDirOf(dir.path, "a1");
  const nonce = "a".repeat(32);
  await makeVmDir(vm, { id: "a1", nonce, created_at: "" });
  assert.equal((await readMarker(vm))?.nonce, nonce);
  await assert.rejects(makeVmDir(vm, { id: "a1", nonce, created_at: "" }), /exists/);
  assert.equal(await removeVmDir(vm, "a1", "b".repeat(32)), "foreign");
  assert.equal(await removeVmDir(vm, "b1", nonce), "foreign"); // path is not b1's
  assert.equal(await removeVmDir(vm, "a1", nonce), "removed");
  assert.equal(await removeVmDir(vm, "a1", nonce), "absent");
  // A symlink named like a VM directory, pointing at a marked directory elsewhere: left alone.
  const elsewhere = `${dir.path}/elsewhere/vms/a2`;
  await makeVmDir(elsewhere, { id: "a2", nonce, created_at: "" });
  await Deno.symlink(elsewhere, `${dir.path}/vms/a2`);
  assert.equal(await removeVmDir(`${dir.path}/vms/a2`, "a2", nonce), "foreign");
  assert.ok((await Deno.stat(`${elsewhere}/vm.json`)).isFile);
});
