// What needs no VM boot: boot-mode profile validation (each mistake one line naming file, line and
// field), attach profiles that name a VM registered in the port registry (`target.vm`, against a
// real sshd), and `image build` failures with the real packer: one line with packer's last error
// and the path of its full log (a `null`-builder template: no VM is started).
import assert from "node:assert/strict";
import { startTestVm } from "../harness/test_vm.ts";
import { runSandboxer, tempDir } from "../helpers.ts";
import { sshdUnavailableReason } from "../harness/sshd.ts";

const BOOT = [
  "extension: ext.vm-packer",
  "mode: boot",
  "target: { user: builder }",
  "workspace: { root: /build }",
];

Deno.test("boot-mode profiles: each mistake is one line naming the field and the fix", async () => {
  await using dir = await tempDir();
  const cases: [string, string[], RegExp][] = [
    ["no-template", ["image: { base: /b.qcow2 }"], /image: needs image\.template in boot mode/],
    [
      "no-base",
      ["image: { template: /t.json }"],
      /needs image\.base in boot mode: .*make-base-image\.sh/,
    ],
    [
      "host",
      ["image: { template: /t.json, base: /b }", "target: { host: h, user: u }"],
      /target\.host: does not apply in boot mode/,
    ],
    [
      "vars",
      ["image: { template: /t.json, base: /b, variables: [nonsense] }"],
      /image\.variables: has "nonsense"; write each variable as NAME=value/,
    ],
    ["accel", ["image: { template: /t.json, base: /b }", "vm: { accel: fast }"], /vm\.accel/],
  ];
  for (const [name, lines, expected] of cases) {
    const body = [
      `id: profile.${name}`,
      ...BOOT.filter((l) => !lines.some((x) => x.startsWith(l.split(":")[0]))),
      ...lines,
    ];
    await Deno.writeTextFile(`${dir.path}/${name}.yaml`, body.join("\n") + "\n");
    const result = await runSandboxer(["create", "--profile", `${dir.path}/${name}.yaml`], {
      SANDBOXER_HOME: `${dir.path}/s`,
    });
    assert.equal(result.code, 1, name);
    assert.match(result.stderr, expected, name);
    assert.match(result.stderr, new RegExp(`${name}\\.yaml:\\d+:\\d+: `), name);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  }
  const attach = `${dir.path}/attach.yaml`;
  await Deno.writeTextFile(
    attach,
    "id: profile.attach\nextension: ext.vm-packer\ntarget: { user: u }\n",
  );
  const result = await runSandboxer(["create", "--profile", attach], {
    SANDBOXER_HOME: `${dir.path}/s`,
  });
  assert.match(result.stderr, /needs target\.host \(or target\.vm, a VM registered/);
});

const sshdReason = await sshdUnavailableReason();
Deno.test({
  name: `attach mode: target.vm names a VM registered with "ports register"${
    sshdReason ? ` [skipped: ${sshdReason}]` : ""
  }`,
  ignore: sshdReason !== undefined,
  async fn() {
    await using vm = await startTestVm();
    const profile = await vm.profile("named", {
      target: { port: null, host: null, vm: "build-1" },
    });
    const unregistered = await vm.cli(["create", "--profile", profile]);
    assert.equal(unregistered.code, 1);
    assert.match(
      unregistered.stderr,
      /name build-1 is not registered; .*ports register build-1 PORT/,
    );
    const registered = await vm.cli(["ports", "register", "build-1", String(vm.sshd.port)]);
    assert.equal(registered.code, 0, registered.stderr);
    assert.equal(registered.stdout, `registered build-1 on port ${vm.sshd.port}\n`);
    const listed = await vm.cli(["ports"]);
    assert.match(listed.stdout, new RegExp(`^${vm.sshd.port}\\s+vm\\s+build-1`, "m"));
    const created = await vm.cli(["create", "--profile", profile, "--name", "n1", "--json"]);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(JSON.parse(created.stdout).handle.ssh_port, vm.sshd.port);
    assert.equal((await vm.cli(["destroy", "n1"])).code, 0);
    // gc never reaps a registered VM's port; release does.
    await vm.cli(["gc"]);
    assert.match((await vm.cli(["ports"])).stdout, /build-1/);
    const released = await vm.cli(["ports", "release", "build-1"]);
    assert.equal(released.stdout, `released port ${vm.sshd.port} of build-1\n`);
    assert.match((await vm.cli(["ports"])).stdout, /^No ports leased/);
  },
});

const hasPacker = await new Deno.Command("sh", {
  args: ["-c", "command -v packer && test -x /usr/sbin/mkfs.ext4"],
})
  .output().then((o) => o.success, () => false);
Deno.test({
  name: `image build: a packer failure is one line with packer's error and its log's path${
    hasPacker ? "" : " [skipped: needs packer and mkfs.ext4 (apt-get install packer e2fsprogs)]"
  }`,
  ignore: !hasPacker,
  async fn() {
    await using dir = await tempDir();
    const d = dir.path;
    await Deno.mkdir(`${d}/t`);
    const vars = ["base_image", "kernel", "initrd", "output_dir", "seed", "ssh_key", "accelerator"];
    const template = (inline: string[]) =>
      JSON.stringify({
        variables: Object.fromEntries([...vars.map((v) => [v, ""]), ["word", ""]]),
        builders: [{ type: "null", communicator: "none" }],
        provisioners: [{ type: "shell-local", inline }],
      });
    await Deno.writeTextFile(
      `${d}/t/fail.json`,
      template(["echo 'the {{user `word`}} broke' >&2", "exit 3"]),
    );
    for (const f of ["base.qcow2", "k", "i"]) await Deno.writeTextFile(`${d}/${f}`, f);
    const profile = (tpl: string) =>
      [
        "id: profile.img",
        ...BOOT,
        `image: { template: ${d}/t/${tpl}, base: ${d}/base.qcow2, kernel: ${d}/k, initrd: ${d}/i, variables: [word=provisioner] }`,
        "vm: { accel: tcg }",
        "",
      ].join("\n");
    await Deno.writeTextFile(`${d}/img.yaml`, profile("fail.json"));
    const env = { SANDBOXER_HOME: `${d}/s`, SANDBOXER_IMAGES: `${d}/images` };
    const failed = await runSandboxer(["image", "build", "--profile", `${d}/img.yaml`], env);
    assert.equal(failed.code, 1);
    const last = failed.stderr.trim().split("\n").at(-1)!;
    const match =
      /^sandboxer: error: Packer could not build \S+fail\.json: (.*); see the full log in (\S+\.log)$/
        .exec(last);
    assert.ok(match, last);
    assert.match(await Deno.readTextFile(match[2]), /the provisioner broke/);
    assert.match(failed.stderr, /packer: .*the provisioner broke/, "progress was streamed");
    // create in boot mode without the image: the command that builds it.
    const create = await runSandboxer(["create", "--profile", `${d}/img.yaml`], env);
    assert.match(
      create.stderr,
      /is not built for its current inputs .*sandboxer image build --profile img/,
    );
    assert.equal((await runSandboxer(["image", "list"], env)).stdout, "No images built.\n");

    // A template that succeeds but writes no image: the contract in one line.
    await Deno.writeTextFile(`${d}/t/fail.json`, template(["true"]));
    const empty = await runSandboxer(["image", "build", "--profile", `${d}/img.yaml`], env);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /wrote no disk\.qcow2 in output_dir/);
  },
});
