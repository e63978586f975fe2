/**
 * Start and stop a throwaway VM's qemu. qemu runs detached (`-daemonize`:
 * its stdio closed, it outlives sandboxer), with its QMP socket, pid file and
 * serial console in the VM directory. Stopping goes through that QMP socket
 * only after the pid file's process is shown to be this VM's qemu (its
 * command line names this directory's QMP socket).
 *
 * @module
 */

import { errorText, VmError } from "../../../core/errors.ts";
import { run } from "../../../process/run.ts";
import { VM_FILES } from "./vm_dir.ts";
import { qmpCommand } from "./qmp.ts";

/** The qemu program. */
export const QEMU = "qemu-system-x86_64";
/** `ps`, to read a process's command line (Deno reads /proc only with --allow-all). */
export const PS = "ps";

/** What a VM is booted with. */
export interface QemuSpec {
  /** The VM directory (socket, pid file, console, overlay, seed live there). */
  dir: string;
  /** Kernel booted directly (no bootloader). */
  kernel: string;
  /** Its initrd. */
  initrd: string;
  /** Extra kernel command-line words after sandboxer's own. */
  append: string;
  /** `kvm` or `tcg`. */
  accel: "kvm" | "tcg";
  /** Virtual CPUs. */
  cpus: number;
  /** Memory in MiB. */
  memoryMiB: number;
  /** Loopback port forwarded to the guest's port 22. */
  sshPort: number;
}

/**
 * qemu's argv (without the program) for a spec. Every value is its own
 * argument or a `key=value` option whose value sandboxer made (paths under
 * the VM directory, numbers); a comma in a path would split qemu's option,
 * so such paths are refused.
 *
 * @param spec The VM.
 * @returns The arguments.
 *
 * @example
 * ```ts
 * import { qemuArgs } from "./qemu.ts";
 * const args = qemuArgs({
 *   dir: "/s/vms/a1", kernel: "/k", initrd: "/i", append: "", accel: "tcg",
 *   cpus: 1, memoryMiB: 512, sshPort: 12222,
 * });
 * console.log(args.includes("-daemonize")); // true
 * ```
 */
export function qemuArgs(spec: QemuSpec): string[] {
  for (const path of [spec.dir, spec.kernel, spec.initrd]) {
    if (path.includes(",") || !path.startsWith("/")) {
      throw new TypeError(
        `Cannot pass ${JSON.stringify(path)} to qemu: use an absolute path without commas`,
      );
    }
  }
  const f = (name: string) => `${spec.dir}/${name}`;
  return [
    "-name",
    `sandboxer-${spec.dir.slice(spec.dir.lastIndexOf("/") + 1)}`,
    "-accel",
    spec.accel,
    ...(spec.accel === "kvm" ? ["-cpu", "host"] : []),
    "-smp",
    String(spec.cpus),
    "-m",
    String(spec.memoryMiB),
    "-kernel",
    spec.kernel,
    "-initrd",
    spec.initrd,
    "-append",
    `console=ttyS0 root=/dev/vda rw init=/sbin/sandboxer-init net.ifnames=0 ${spec.append}`.trim(),
    "-drive",
    `file=${f(VM_FILES.overlay)},format=qcow2,if=virtio`,
    "-drive",
    `file=${f(VM_FILES.seed)},format=raw,if=virtio,readonly=on`,
    "-netdev",
    `user,id=n0,hostfwd=tcp:127.0.0.1:${spec.sshPort}-:22`,
    "-device",
    "virtio-net-pci,netdev=n0",
    "-display",
    "none",
    "-serial",
    `file:${f(VM_FILES.console)}`,
    "-qmp",
    `unix:${f(VM_FILES.qmp)},server=on,wait=off`,
    "-pidfile",
    f(VM_FILES.pid),
    "-daemonize",
  ];
}

/**
 * Start the VM detached. Returns once qemu has daemonized (the guest boots on).
 *
 * @param id The sandbox id, for errors.
 * @param spec The VM.
 * @param signal Abort signal.
 * @throws {VmError} when qemu refuses to start (its own message included).
 */
export async function launchQemu(id: string, spec: QemuSpec, signal?: AbortSignal): Promise<void> {
  const result = await run([QEMU, ...qemuArgs(spec)], {
    signal,
    timeoutMs: 60_000,
    allowFailure: true,
  });
  if (result.code !== 0) {
    const why = result.stderr.trim().split("\n").at(-1) ?? "";
    throw new VmError(
      id,
      `could not start: qemu exited with ${result.code} (${why}); ${
        /hostfwd|host forwarding/i.test(why)
          ? `port ${spec.sshPort} was taken meanwhile, create again`
          : "check the image, kernel and initrd paths and the vm settings of the profile"
      }`,
    );
  }
}

/**
 * The pid of this VM directory's qemu, when one runs: the pid file's process
 * exists and its command line (as `ps` shows it: Deno refuses to read /proc
 * without --allow-all) is qemu's with this directory's QMP socket. A pid file
 * naming any other process yields undefined.
 *
 * @param dir The VM directory.
 * @returns The pid, or undefined.
 */
export async function runningQemu(dir: string): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number((await Deno.readTextFile(`${dir}/${VM_FILES.pid}`)).trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  const args = await processArgs(pid);
  if (args === undefined) return undefined;
  const program = args.split(" ")[0];
  const ours = ` -qmp unix:${dir}/${VM_FILES.qmp},server=on,wait=off `;
  if (program.slice(program.lastIndexOf("/") + 1) !== QEMU || !`${args} `.includes(ours)) {
    return undefined;
  }
  return pid;
}

/** The command line of a live process (zombies count as gone), or undefined. */
async function processArgs(pid: number): Promise<string | undefined> {
  const result = await run([PS, "-o", "stat=", "-o", "args=", "-p", String(pid)], {
    allowFailure: true,
    timeoutMs: 10_000,
  });
  const line = result.stdout.trim();
  if (result.code !== 0 || line === "" || line.startsWith("Z")) return undefined;
  return line.slice(line.indexOf(" ") + 1).trim();
}

/**
 * Stop this directory's qemu, if one runs: QMP `quit` on the directory's own
 * socket (nothing is ever signalled by pid), then wait until the process is
 * gone and the socket no longer answers.
 *
 * @param id The sandbox id, for errors.
 * @param dir The VM directory.
 * @param timeoutMs How long to wait for the process to exit.
 * @returns The pid stopped (0 when only the socket answered), or undefined when none ran.
 * @throws {VmError} when it runs but does not stop.
 */
export async function stopQemu(
  id: string,
  dir: string,
  timeoutMs = 15_000,
): Promise<number | undefined> {
  const socket = `${dir}/${VM_FILES.qmp}`;
  const pid = await runningQemu(dir);
  let asked = false;
  try {
    await qmpCommand(socket, "quit");
    asked = true;
  } catch (error) {
    // Refused or missing: nothing listens there. qemu may also close the socket as it quits.
    if (pid !== undefined && !(await gone(pid, socket))) {
      throw new VmError(
        id,
        `(qemu pid ${pid}) does not answer on its QMP socket ${socket} (${
          errorText(error)
        }); stop it by hand with "kill ${pid}", then run destroy or gc again`,
        { cause: error },
      );
    }
  }
  if (!asked && pid === undefined) return undefined;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await gone(pid, socket)) return pid ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new VmError(
    id,
    `(qemu${pid ? ` pid ${pid}` : ""}) was asked to quit but still runs after ${
      timeoutMs / 1000
    }s; stop it by hand${pid ? ` with "kill ${pid}"` : ""}, then run destroy or gc again`,
  );
}

/**
 * Whether something answers on a VM's QMP socket (a qemu runs on it).
 *
 * @param socket The socket path.
 * @returns True when a connection is accepted.
 */
export async function socketAnswers(socket: string): Promise<boolean> {
  try {
    (await Deno.connect({ transport: "unix", path: socket })).close();
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number | undefined, socket: string): Promise<boolean> {
  if (pid !== undefined && await processArgs(pid) !== undefined) return false;
  return !(await socketAnswers(socket));
}
