/**
 * What the boot-mode tests share: whether real VMs can run here (root for
 * debootstrap, qemu, packer, mkfs.ext4, a kernel in /boot), one base image and
 * one Packer-built image cached for every test file of a run (and across runs:
 * both are content-addressed), and a boot-mode profile that uses them with
 * `-accel tcg`, 512 MiB and one CPU.
 *
 * The cache lives in `$SANDBOXER_VM_TEST_CACHE`, default
 * `/var/tmp/sandboxer-vm-test`; a lock directory keeps two test files from
 * building the same base image at once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type CliResult, ROOT, runSandboxer, type TempDir, tempDir } from "../helpers.ts";
import { sleep } from "../faults/fault_helpers.ts";

/** Where the base image and the image cache live between test files and runs. */
export const VM_CACHE: string = Deno.env.get("SANDBOXER_VM_TEST_CACHE") ??
  "/var/tmp/sandboxer-vm-test";

/** Why real VMs cannot run here, or undefined. */
export const VM_SKIP_REASON: string | undefined = await vmUnavailableReason();

/**
 * Register a VM test, or an ignored placeholder naming why it cannot run.
 *
 * @param name Test name.
 * @param fn The test.
 */
export function vmTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  if (VM_SKIP_REASON) {
    Deno.test({ name: `${name} [skipped: ${VM_SKIP_REASON}]`, ignore: true, fn });
  } else Deno.test({ name, fn, sanitizeResources: false, sanitizeOps: false });
}

async function vmUnavailableReason(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "needs root (debootstrap builds the base image)";
  for (
    const [program, pkg] of [
      ["qemu-system-x86_64", "qemu-system-x86"],
      ["qemu-img", "qemu-utils"],
      ["packer", "packer"],
      ["debootstrap", "debootstrap"],
      ["ps", "procps"],
      ["ssh-keygen", "openssh-client"],
    ]
  ) {
    const found = await new Deno.Command("sh", {
      args: ["-c", 'command -v "$1" >/dev/null', "sh", program],
    }).output().then((o) => o.success, () => false);
    if (!found) return `needs ${program} (apt-get install ${pkg})`;
  }
  for (
    const [file, pkg] of [["/vmlinuz", "linux-image-amd64"], ["/usr/sbin/mkfs.ext4", "e2fsprogs"]]
  ) {
    if (!(await Deno.stat(file).then(() => true, () => false))) {
      return `needs ${file} (apt-get install ${pkg})`;
    }
  }
  return undefined;
}

/**
 * The base image, built once by tools/vm/make-base-image.sh (keyed by that
 * script's and the guest init's bytes).
 *
 * @returns Its path.
 */
export async function baseImage(): Promise<string> {
  const hash = createHash("sha256");
  for (const file of ["tools/vm/make-base-image.sh", "images/guest/sandboxer-init"]) {
    hash.update(await Deno.readFile(`${ROOT}/${file}`));
  }
  const path = `${VM_CACHE}/base-${hash.digest("hex").slice(0, 16)}.qcow2`;
  await Deno.mkdir(VM_CACHE, { recursive: true });
  const lock = `${VM_CACHE}/base.lock`;
  for (let i = 0;; i++) {
    if (await Deno.stat(path).then(() => true, () => false)) return path;
    try {
      await Deno.mkdir(lock);
      break;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      // Another test file is building it; a lock older than 10 minutes is a crashed build's.
      const age = Date.now() -
        ((await Deno.stat(lock).catch(() => undefined))?.mtime?.getTime() ?? 0);
      if (age > 600_000) await Deno.remove(lock).catch(() => {});
      assert.ok(i < 600, "timed out waiting for another test's base image build");
      await sleep(1_000);
    }
  }
  try {
    if (!(await Deno.stat(path).then(() => true, () => false))) {
      const out = await new Deno.Command("bash", {
        args: [`${ROOT}/tools/vm/make-base-image.sh`, path],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    }
    return path;
  } finally {
    await Deno.remove(lock).catch(() => {});
  }
}

/** A private state directory and a boot-mode profile over the shared caches. */
export interface VmEnv extends AsyncDisposable {
  /** The temporary directory (state, profiles). */
  readonly dir: TempDir;
  /** SANDBOXER_HOME. */
  readonly state: string;
  /** Environment for the CLI. */
  readonly env: Record<string, string>;
  /** The boot-mode profile's path. */
  readonly profile: string;
  /** Run the CLI with this environment. */
  cli(args: readonly string[], extra?: Record<string, string>): Promise<CliResult>;
}

/**
 * Make the state directory and the profile (profiles/vm-haskell-build-local.yaml
 * with the stand-in toolchain, the cached base image, tcg, 512 MiB, 1 CPU).
 *
 * @param options Extra YAML lines for the profile (e.g. `setup:`).
 * @returns The environment; dispose of it to remove the directory.
 */
export async function vmEnv(options: { extra?: string[] } = {}): Promise<VmEnv> {
  const dir = await tempDir("sbx-vm-");
  const state = `${dir.path}/s`;
  const base = await baseImage();
  const profile = `${dir.path}/vm-local.yaml`;
  await Deno.writeTextFile(
    profile,
    [
      "id: profile.vm-local",
      "extension: ext.vm-packer",
      "mode: boot",
      "image:",
      `  template: ${ROOT}/profiles/vm-haskell-build-local/haskell.json`,
      `  base: ${base}`,
      "  variables: [toolchain=standin]",
      "vm: { cpus: 1, memory: 512, accel: tcg, boot_timeout: 300s }",
      "target: { user: builder }",
      "workspace: { root: /build }",
      ...(options.extra ?? []),
      "",
    ].join("\n"),
  );
  const env = {
    SANDBOXER_HOME: state,
    SANDBOXER_IMAGES: `${VM_CACHE}/images`,
    HOME: dir.path,
  };
  return {
    dir,
    state,
    env,
    profile,
    cli: (args, extra = {}) => runSandboxer(args, { ...env, ...extra }),
    async [Symbol.asyncDispose]() {
      // Whatever a failed test left: gc stops its VMs before the directory goes.
      await runSandboxer(["gc"], env).catch(() => {});
      await dir[Symbol.asyncDispose]();
    },
  };
}

/**
 * The image for the profile: built once (shared by every test file), cached after.
 *
 * @param vm The environment.
 * @returns The CLI's output line.
 */
export async function ensureImage(vm: VmEnv): Promise<string> {
  const result = await vm.cli(["image", "build", "--profile", vm.profile]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
}

/**
 * Command lines of qemu processes whose arguments mention `needle`.
 *
 * @param needle E.g. the state directory.
 * @returns Matching command lines.
 */
export async function qemuProcesses(needle: string): Promise<string[]> {
  const out = await new Deno.Command("ps", { args: ["-eo", "args="], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) =>
    l.includes("qemu-system-x86_64") && l.includes(needle)
  );
}
