// Boot mode end to end with real packer and qemu (-accel tcg): the image is built once and then
// reused from the cache; two boot-mode creates started at the same time get different ports from
// the registry and `sandboxer ports` shows both; commands run in the VMs; destroy stops the VMs,
// deletes their overlays and releases their ports. Two VM boots.
import assert from "node:assert/strict";
import { ensureImage, qemuProcesses, vmEnv, vmTest } from "./vm_fixture.ts";
import { spawnCli } from "../faults/fault_helpers.ts";
import { listDir } from "../helpers.ts";

vmTest(
  "vm boot: image cached, two concurrent creates get different ports, destroy leaves nothing",
  async (t) => {
    await using vm = await vmEnv();

    await t.step(
      "image build is cached by content: the second build reuses the image",
      async () => {
        await ensureImage(vm);
        const again = await vm.cli(["image", "build", "--profile", vm.profile]);
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stdout, /^cached [0-9a-f]{12} /);
        const list = await vm.cli(["image", "list", "--json"]);
        const images = JSON.parse(list.stdout) as { key: string; packer_version: string }[];
        assert.ok(images.some((i) => again.stdout.includes(i.key.slice(0, 12))), list.stdout);
        assert.match(images[0].packer_version, /Packer v\d/);
      },
    );

    const ids = ["vm-a", "vm-b"];
    await t.step("two creates at once boot two VMs on different ports", async () => {
      const children = await Promise.all(
        ids.map((id) => spawnCli(["create", "--name", id, "--profile", vm.profile], vm.env)),
      );
      const results = await Promise.all(children.map((c) => c.done));
      for (const r of results) assert.equal(r.code, 0, r.stderr);
      const ports = JSON.parse((await vm.cli(["ports", "--json"])).stdout) as {
        port: number;
        kind: string;
        name: string;
      }[];
      assert.deepEqual(ports.map((p) => p.name).sort(), ids);
      assert.ok(ports.every((p) => p.kind === "sandbox"));
      assert.notEqual(ports[0].port, ports[1].port);
      const text = await vm.cli(["ports"]);
      for (const p of ports) {
        assert.match(text.stdout, new RegExp(`^${p.port}\\s+sandbox\\s+${p.name}`, "m"));
      }
      assert.equal((await qemuProcesses(vm.state)).length, 2);
    });

    await t.step("commands run in the VM, in the workspace, with the image's tools", async () => {
      const result = await vm.cli([
        "exec",
        "vm-a",
        "--",
        "sh",
        "-c",
        'uname -r; . /etc/os-release; echo "$ID $VERSION_ID"; pwd; ghc --version',
      ]);
      assert.equal(result.code, 0, result.stderr);
      const [kernel, os, cwd, ghc] = result.stdout.trim().split("\n");
      assert.match(kernel, /^\d+\.\d+\.\d+-\d+-amd64$/);
      assert.equal(os, "debian 12");
      assert.equal(cwd, "/build/sbx-vm-a");
      assert.match(ghc, /version 9\.6\.6/);
    });

    await t.step(
      "the host key was pinned before the boot: the record holds its fingerprint",
      async () => {
        const record = JSON.parse((await vm.cli(["show", "--json", "vm-b"])).stdout);
        assert.match(record.handle.host_key_fingerprint, /^SHA256:/);
        const pub = await Deno.readTextFile(`${vm.state}/vms/vm-b/ssh_host_ed25519_key.pub`);
        const fp = await new Deno.Command("ssh-keygen", {
          args: ["-l", "-f", "/dev/stdin"],
          stdin: "piped",
          stdout: "piped",
        }).spawn();
        const w = fp.stdin.getWriter();
        await w.write(new TextEncoder().encode(pub));
        await w.close();
        const line = new TextDecoder().decode((await fp.output()).stdout);
        assert.ok(line.includes(record.handle.host_key_fingerprint), line);
      },
    );

    await t.step(
      "destroy stops both VMs, deletes the overlays and releases the ports",
      async () => {
        for (const id of ids) {
          const result = await vm.cli(["--debug", "destroy", id]);
          assert.equal(result.code, 0, result.stderr);
          // Gracefully over SSH: the image's sandboxer-poweroff, before any QMP quit.
          assert.match(result.stderr, /powered itself off/);
        }
        assert.deepEqual(await qemuProcesses(vm.state), []);
        assert.deepEqual(await listDir(`${vm.state}/vms`), []);
        const ports = await vm.cli(["ports"]);
        assert.match(ports.stdout, /^No ports leased/);
      },
    );
  },
);
