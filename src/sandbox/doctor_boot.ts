/**
 * `sandboxer doctor` for a boot-mode `ext.vm-packer` profile (a throwaway VM booted on this
 * machine per sandbox): one line per check — the programs a boot runs (packer, qemu, qemu-img,
 * mkfs.ext4, ssh-keygen), the accelerator, the state directory and port registry, and whether the
 * profile's image is built. Nothing is booted: the accelerator is probed with a qemu machine that
 * has no CPU to run (`-machine none`), told over QMP to quit at once.
 *
 * @module
 */

import { dirname } from "node:path";
import { errorText, ImageError, MissingProgramError } from "../core/errors.ts";
import type { PortRegistry } from "../core/ports/registry.ts";
import { portIsFree } from "../core/ports/registry.ts";
import { run } from "../process/run.ts";
import { shellQuote } from "../transport/quote.ts";
import { detectAccel } from "../extensions/vm_packer/boot/accel.ts";
import { MKFS_EXT4_PATHS } from "../extensions/vm_packer/boot/seed.ts";
import type { VmPackerConfig } from "../extensions/vm_packer/config.ts";
import { VmPackerExtension } from "../extensions/vm_packer/extension.ts";
import { findImage, PACKER } from "../extensions/vm_packer/image/packer.ts";
import type { DoctorCheck } from "./doctor_check.ts";
import { type Manager, managerInternals } from "./manager.ts";

/** The qemu programs a boot runs. */
const QEMU = "qemu-system-x86_64";
const QEMU_IMG = "qemu-img";
/** How long a version probe or the accelerator probe may take. */
const PROBE_MS = 30_000;
/** What the accelerator probe tells qemu on stdin: negotiate QMP, then quit. */
const QMP_QUIT = '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n';

/** Where each program comes from, for the fix (Debian package names). */
const INSTALL: Readonly<Record<string, string>> = {
  [PACKER]: "apt-get install packer (or HashiCorp's release from developer.hashicorp.com/packer)",
  [QEMU]: "apt-get install qemu-system-x86",
  [QEMU_IMG]: "apt-get install qemu-utils",
  "mkfs.ext4": "apt-get install e2fsprogs",
  "ssh-keygen": "apt-get install openssh-client",
};

/** What a boot uses each program for. */
const PURPOSE: Readonly<Record<string, string>> = {
  [PACKER]: "builds the image",
  [QEMU]: "runs the VMs",
  [QEMU_IMG]: "makes each VM's overlay disk",
  "mkfs.ext4": "makes each VM's seed disk",
  "ssh-keygen": "makes each VM's host and user keys",
};

/**
 * Run the boot-mode checks of a profile that has validated.
 *
 * @param manager The manager (state directory, images directory, port registry).
 * @param profileArg The profile as the user named it (for the commands in fixes).
 * @param config The profile's parsed config (`mode: boot`).
 * @param report Called with each check; returns whether it passed.
 * @param signal Abort signal.
 */
export async function doctorBoot(
  manager: Manager,
  profileArg: string,
  config: VmPackerConfig,
  report: (check: DoctorCheck) => boolean,
  signal?: AbortSignal,
): Promise<void> {
  const packer = await programCheck([PACKER, "version"], signal);
  report(packer.check);
  const qemu = await programCheck([QEMU, "--version"], signal);
  report(qemu.check);
  report((await programCheck([QEMU_IMG, "--version"], signal)).check);
  const mkfs = await firstFile(MKFS_EXT4_PATHS);
  report((await programCheck([mkfs ?? "mkfs.ext4", "-V"], signal, "mkfs.ext4")).check);
  report((await programCheck(["ssh-keygen", "-?"], signal, "ssh-keygen", true)).check);
  report(
    qemu.ok ? await accelCheck(config.vm.accel, signal) : {
      ok: undefined,
      line: `accelerator not checked: it needs ${QEMU}`,
    },
  );
  report(await stateCheck(manager));
  report(await portsCheck(() => manager.ports()));
  report(
    packer.ok ? await imageCheck(manager, profileArg, config, signal) : {
      ok: undefined,
      line: `image not checked: its cache key includes packer's version, and ${PACKER} cannot run`,
    },
  );
}

/**
 * Run `argv` to see that the program is there; ✓ with its version line, or ✗ with the fix.
 * `anyExit`: the program has no version flag, so any exit code means it ran.
 */
async function programCheck(
  argv: [string, ...string[]],
  signal: AbortSignal | undefined,
  name = argv[0],
  anyExit = false,
): Promise<{ ok: boolean; check: DoctorCheck }> {
  const fail = (line: string, fix: string) => ({ ok: false, check: { ok: false, line, fix } });
  try {
    const result = await run(argv, {
      allowFailure: true,
      signal,
      timeoutMs: PROBE_MS,
      env: { CHECKPOINT_DISABLE: "1" }, // packer: no update check over the network
    });
    if (result.code !== 0 && !anyExit) {
      const why = lastLine(result.stderr || result.stdout) || `exit code ${result.code}`;
      return fail(`${name} is installed but fails: ${why}`, `reinstall it: ${INSTALL[name]}`);
    }
    const version = anyExit ? "" : firstLine(result.stdout || result.stderr);
    return {
      ok: true,
      check: {
        ok: true,
        line: `${name} is installed${version ? ` (${version})` : ""}: ${PURPOSE[name]}`,
      },
    };
  } catch (error) {
    if (error instanceof MissingProgramError) {
      return fail(
        `${name} is not installed or not on PATH (${PURPOSE[name]})`,
        `install it: ${INSTALL[name]}`,
      );
    }
    return fail(`${name} cannot run: ${firstLine(errorText(error))}`, "see the line above");
  }
}

/** The accelerator create will use, and whether KVM would work (a qemu that quits at once). */
async function accelCheck(
  setting: VmPackerConfig["vm"]["accel"],
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const slow = "software emulation: a boot takes 10–60 s; raise vm.boot_timeout on a busy machine";
  if (setting === "tcg") return { ok: true, line: "accelerator: tcg (vm.accel)", note: slow };
  const kvm = await kvmProblem(signal);
  if (setting === "kvm") {
    return kvm === undefined
      ? { ok: true, line: "accelerator: kvm (vm.accel), and qemu can use KVM here" }
      : {
        ok: false,
        line: `accelerator: vm.accel is kvm, but qemu cannot use KVM here: ${kvm}`,
        fix:
          "give this user read-write access to /dev/kvm (the kvm group), or set vm.accel: auto or tcg (slow)",
      };
  }
  let blind: string | undefined;
  const chosen = await detectAccel("auto", (why) => blind = why);
  if (chosen === "kvm") return { ok: true, line: "accelerator: kvm (vm.accel auto)" };
  return {
    ok: true,
    line: `accelerator: tcg (vm.accel auto${
      blind ? ": it cannot look at /dev/kvm under the CLI's permissions" : ""
    })`,
    note: kvm === undefined
      ? `qemu can use KVM here: set vm.accel: kvm for boots in seconds (${slow})`
      : `${slow} (no usable KVM: ${kvm})`,
  };
}

/** Why qemu cannot start a KVM machine, or undefined when it can. */
async function kvmProblem(signal?: AbortSignal): Promise<string | undefined> {
  try {
    const argv: [string, ...string[]] = [
      QEMU,
      ...["-machine", "none", "-accel", "kvm", "-nodefaults", "-display", "none", "-S"],
      ...["-qmp", "stdio"],
    ];
    const result = await run(argv, {
      allowFailure: true,
      stdin: QMP_QUIT,
      signal,
      timeoutMs: PROBE_MS,
    });
    return result.code === 0 ? undefined : lastLine(result.stderr) || `exit code ${result.code}`;
  } catch (error) {
    return firstLine(errorText(error));
  }
}

/** The state directory (VM directories, port leases) and the image cache can be written. */
async function stateCheck(manager: Manager): Promise<DoctorCheck> {
  const state = managerInternals(manager).journal.dir;
  const images = manager.imagesDir();
  const problems: string[] = [];
  for (const dir of new Set([state, images])) {
    const problem = await writableProblem(dir);
    if (problem) problems.push(problem);
  }
  if (problems.length) {
    return {
      ok: false,
      line: `state directory: ${problems.join("; ")}`,
      fix:
        "give this user write access there, or point SANDBOXER_HOME (and SANDBOXER_IMAGES) at a directory of its own",
    };
  }
  const where = images === `${state}/images` ? state : `${state} and ${images}`;
  const verb = where === state ? "is" : "are";
  return { ok: true, line: `state directory ${where} ${verb} writable (VMs, port leases, images)` };
}

/** Why `dir` (or, while it does not exist, the directory it would be made in) is not writable. */
async function writableProblem(dir: string): Promise<string | undefined> {
  let at = dir;
  for (;;) {
    const info = await Deno.stat(at).catch((error) => error as Error);
    if (!(info instanceof Error)) {
      if (!info.isDirectory) return `${at} is not a directory`;
      break;
    }
    if (!(info instanceof Deno.errors.NotFound) || dirname(at) === at) {
      return `${at} cannot be read: ${firstLine(errorText(info))}`;
    }
    at = dirname(at);
  }
  try {
    // The only thing made, and removed at once.
    await Deno.remove(await Deno.makeTempDir({ dir: at, prefix: ".sbx-doctor-" }));
    return undefined;
  } catch (error) {
    return `${at} is not writable${at === dir ? "" : ` (${dir} would be made in it)`}: ${
      firstLine(errorText(error))
    }`;
  }
}

/** The port range is valid and has a port that is neither leased nor in use. */
async function portsCheck(open: () => PortRegistry): Promise<DoctorCheck> {
  let ports: PortRegistry;
  try {
    ports = open();
  } catch (error) {
    return {
      ok: false,
      line: firstLine(errorText(error)),
      fix: "correct SANDBOXER_PORT_RANGE, or unset it for 12222-12299",
    };
  }
  const { first, last } = ports.range;
  const leased = new Set((await ports.list()).map((lease) => lease.port));
  let free = 0;
  for (let port = first; port <= last; port++) {
    if (!leased.has(port) && portIsFree(port)) free++;
  }
  const line = `port registry ${ports.dir}: ${free} of ${
    last - first + 1
  } ports free (${first}-${last}), ${leased.size} leased`;
  return free > 0 ? { ok: true, line } : {
    ok: false,
    line,
    fix:
      'run "sandboxer gc", release registered VMs you no longer use ("sandboxer ports"), or widen SANDBOXER_PORT_RANGE',
  };
}

/** Whether the image for the profile's current inputs is in the cache. */
async function imageCheck(
  manager: Manager,
  profileArg: string,
  config: VmPackerConfig,
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const build = `sandboxer image build --profile ${shellQuote([profileArg])}`;
  try {
    const { image, key } = await findImage(VmPackerExtension.imageInputs(config), {
      images: manager.imagesDir(),
      signal,
    });
    if (image) {
      return {
        ok: true,
        line: `image ${key.slice(0, 12)} is built and cached in ${image.dir} (${
          Math.round(image.manifest.size / 1024 / 1024)
        } MiB, ${image.manifest.created_at})`,
      };
    }
    return {
      ok: false,
      line: `image ${key.slice(0, 12)} is not built for the profile's current inputs`,
      fix: `${build} (once; the same template, variables, base disk and packer reuse it)`,
    };
  } catch (error) {
    return {
      ok: false,
      line: `image inputs: ${firstLine(errorText(error))}`,
      fix: error instanceof ImageError
        ? "correct the profile's image.* paths (sudo tools/vm/make-base-image.sh FILE makes a base disk)"
        : "see the line above",
    };
  }
}

async function firstFile(paths: readonly string[]): Promise<string | undefined> {
  for (const path of paths) {
    if (await Deno.stat(path).then((s) => s.isFile, () => false)) return path;
  }
  return undefined;
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0]?.trim() ?? "";
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1)?.trim() ?? "";
}
