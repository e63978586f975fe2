// `sandboxer doctor --profile P` for a boot-mode ext.vm-packer profile (issue 14 item 4): one ✓/✗
// line per program a boot runs, the accelerator, the state directory, the port registry and the
// image, with the real packer and qemu of this machine. No VM is booted: the image is built by the
// real `sandboxer image build` from a `null`-builder template that only writes a file.
import assert from "node:assert/strict";
import { runProgram, runSandboxer, skipIf, tempDir } from "../helpers.ts";

const TOOLS = ["packer", "qemu-system-x86_64", "qemu-img", "ssh-keygen"];

async function missingTools(): Promise<string | undefined> {
  const found = await new Deno.Command("sh", {
    args: ["-c", 'for p; do command -v "$p" >/dev/null || exit 1; done', "sh", ...TOOLS],
  }).output().then((o) => o.success, () => false);
  const mkfs = await Deno.stat("/usr/sbin/mkfs.ext4").then(() => true, () => false) ||
    await Deno.stat("/sbin/mkfs.ext4").then(() => true, () => false);
  return found && mkfs
    ? undefined
    : "needs packer, qemu and mkfs.ext4 (apt-get install packer qemu-system-x86 qemu-utils e2fsprogs)";
}
const skip = await missingTools();

/**
 * A boot-mode profile whose template writes `disk.qcow2` and boots nothing, and the environment
 * (state and image cache) to run the CLI with.
 */
async function bootProfile(
  dir: string,
  accel: string,
): Promise<{ profile: string; env: Record<string, string> }> {
  const vars = ["base_image", "kernel", "initrd", "output_dir", "seed", "ssh_key", "accelerator"];
  await Deno.mkdir(`${dir}/template`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/template/image.json`,
    JSON.stringify({
      variables: Object.fromEntries(vars.map((v) => [v, ""])),
      builders: [{ type: "null", communicator: "none" }],
      provisioners: [{
        type: "shell-local",
        inline: ["mkdir -p {{user `output_dir`}}", "echo disk > {{user `output_dir`}}/disk.qcow2"],
      }],
    }),
  );
  for (const file of ["base.qcow2", "vmlinuz", "initrd.img"]) {
    await Deno.writeTextFile(`${dir}/${file}`, file);
  }
  const name = `boot-${accel}`;
  const file = `${dir}/${name}.yaml`;
  await Deno.writeTextFile(
    file,
    [
      `id: profile.${name}`,
      "extension: ext.vm-packer",
      "mode: boot",
      "image:",
      `  template: ${dir}/template/image.json`,
      `  base: ${dir}/base.qcow2`,
      `  kernel: ${dir}/vmlinuz`,
      `  initrd: ${dir}/initrd.img`,
      `vm: { accel: ${accel} }`,
      "target: { user: builder }",
      "workspace: { root: /build }",
      "",
    ].join("\n"),
  );
  return {
    profile: file,
    env: { SANDBOXER_HOME: `${dir}/state`, SANDBOXER_IMAGES: `${dir}/images` },
  };
}

/**
 * Whether qemu starts a KVM machine here: the test's own probe, by a shell that opens /dev/kvm
 * and then runs qemu (Deno itself may open /dev/kvm only under --allow-all, which the runner does
 * not give, so opening it from this process would say "no" where KVM works).
 */
async function qemuCanUseKvm(): Promise<boolean> {
  const probe = [
    ": <>/dev/kvm || exit 1",
    "timeout 20 qemu-system-x86_64 -machine none -accel kvm -nodefaults -display none -S" +
    ' -monitor none -serial none -daemonize -pidfile "$1" && kill "$(cat "$1")"',
  ].join("\n");
  await using dir = await tempDir();
  const result = await runProgram("sh", ["-c", probe, "sh", `${dir.path}/qemu.pid`]);
  return result.code === 0;
}

/** The check of doctor's output that starts with `start`, with its fix or note line. */
function line(stdout: string, start: string): string {
  const found = stdout.split(/\n(?=[✓✗-] )/).find((entry) => entry.startsWith(start));
  assert.ok(found !== undefined, `no line starting ${start}:\n${stdout}`);
  return found.trimEnd();
}

/** A test with a boot-mode profile in a temporary directory; skipped without packer and qemu. */
function bootTest(
  name: string,
  accel: string,
  fn: (profile: string, env: Record<string, string>, dir: string) => Promise<void>,
): void {
  Deno.test({ ...skipIf(skip, name) }, async () => {
    await using dir = await tempDir();
    const { profile, env } = await bootProfile(dir.path, accel);
    await fn(profile, env, dir.path);
  });
}

bootTest(
  "doctor on a boot-mode profile: programs, accelerator, state, ports, image",
  "tcg",
  async (profile, env, dir) => {
    const before = await runSandboxer(["doctor", "--profile", profile], env);
    assert.equal(before.code, 1, before.stdout + before.stderr);
    assert.equal(before.stderr, "");
    const out = before.stdout;
    assert.match(line(out, "✓ profile"), /^✓ profile boot-tcg validates/);
    assert.match(line(out, "✓ packer"), /^✓ packer is installed \(Packer v\d+\.\d+\.\d+\)/);
    assert.match(line(out, "✓ qemu-system-x86_64"), /is installed \(QEMU emulator version \d/);
    assert.match(line(out, "✓ qemu-img"), /is installed \(qemu-img version \d/);
    assert.match(line(out, "✓ mkfs.ext4"), /is installed \(mke2fs /);
    assert.match(line(out, "✓ ssh-keygen"), /is installed/);
    assert.match(
      line(out, "✓ accelerator"),
      /^✓ accelerator: tcg \(vm\.accel\)\n {4}note: software emulation: a boot takes/,
    );
    assert.ok(
      line(out, "✓ state directory").includes(
        `${dir}/state and ${dir}/images are writable`,
      ),
      out,
    );
    assert.match(line(out, "✓ port registry"), /: \d+ of 78 ports free \(12222-12299\), 0 leased$/);
    assert.match(
      line(out, "✗ image"),
      new RegExp(
        `^✗ image [0-9a-f]{12} is not built for the profile's current inputs\n {4}fix: sandboxer image build --profile ${profile} `,
      ),
    );
    assert.equal(out.match(/^✗ /gm)?.length, 1, "the image is the only failure");
    assert.equal(
      out.match(/^[✓✗-] /gm)?.length,
      10,
      "one line per check: profile, 5 programs, accelerator, state, ports, image",
    );

    // Built with the real packer (a null builder: nothing boots), the same check passes.
    const build = await runSandboxer(["image", "build", "--profile", profile], env);
    assert.equal(build.code, 0, build.stderr);
    const after = await runSandboxer(["doctor", "--profile", profile], env);
    assert.equal(after.code, 0, after.stdout + after.stderr);
    assert.ok(
      after.stdout.split("\n").filter((l) => /^\S/.test(l)).every((l) => l.startsWith("✓")),
    );
    assert.match(
      after.stdout,
      new RegExp(
        `^✓ image [0-9a-f]{12} is built and cached in ${dir}/images/[0-9a-f]{24} `,
        "m",
      ),
    );

    // A malformed port range is the registry's own line, with the fix.
    const ports = await runSandboxer(["doctor", "--profile", profile], {
      ...env,
      SANDBOXER_PORT_RANGE: "99-1",
    });
    assert.equal(ports.code, 1);
    assert.match(
      line(ports.stdout, "✗ Port registry"),
      /range "99-1" is not valid.*\n {4}fix: correct SANDBOXER_PORT_RANGE/,
    );
  },
);

bootTest(
  "doctor on a boot-mode profile with vm.accel: kvm says whether qemu can use KVM",
  "kvm",
  async (profile, env) => {
    const result = await runSandboxer(["doctor", "--profile", profile], env);
    const kvmUsable = await qemuCanUseKvm();
    const accel = line(result.stdout, kvmUsable ? "✓ accelerator" : "✗ accelerator");
    if (kvmUsable) {
      assert.match(accel, /^✓ accelerator: kvm \(vm\.accel\), and qemu can use KVM here$/);
    } else {
      assert.match(accel, /^✗ accelerator: vm\.accel is kvm, but qemu cannot use KVM here: .*kvm/);
      assert.match(accel, /\n {4}fix: give this user read-write access to \/dev\/kvm/);
    }
    assert.equal(result.code, 1, "the image is not built either way");
  },
);

bootTest(
  "doctor on a boot-mode profile with no packer or qemu on PATH names each, exits 1",
  "auto",
  async (profile, env, dir) => {
    // Only what this check needs besides the missing tools (mkfs.ext4 is run by its full path).
    const bin = `${dir}/bin`;
    await Deno.mkdir(bin);
    const keygen =
      (await new Deno.Command("sh", { args: ["-c", "command -v ssh-keygen"] }).output())
        .stdout;
    await Deno.symlink(new TextDecoder().decode(keygen).trim(), `${bin}/ssh-keygen`);
    const result = await runSandboxer(["doctor", "--profile", profile], { ...env, PATH: bin });
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.equal(result.stderr, "");
    const out = result.stdout;
    assert.equal(
      line(out, "✗ packer"),
      "✗ packer is not installed or not on PATH (builds the image)\n" +
        "    fix: install it: apt-get install packer (or HashiCorp's release from developer.hashicorp.com/packer)",
    );
    assert.equal(
      line(out, "✗ qemu-system-x86_64"),
      "✗ qemu-system-x86_64 is not installed or not on PATH (runs the VMs)\n" +
        "    fix: install it: apt-get install qemu-system-x86",
    );
    assert.equal(
      line(out, "✗ qemu-img"),
      "✗ qemu-img is not installed or not on PATH (makes each VM's overlay disk)\n" +
        "    fix: install it: apt-get install qemu-utils",
    );
    assert.match(line(out, "✓ ssh-keygen"), /is installed/);
    assert.equal(
      line(out, "- accelerator"),
      "- accelerator not checked: it needs qemu-system-x86_64",
    );
    assert.match(line(out, "- image"), /^- image not checked: .*packer cannot run$/);
    assert.equal(out.match(/^✗ /gm)?.length, 3, out);
  },
);
