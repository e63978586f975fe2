/**
 * The per-VM directory `<stateDir>/vms/<id>/`: marker, keys, seed disk,
 * overlay, QMP socket, pid file and console log of one throwaway VM.
 *
 * Its path is always derived from the state directory and the sandbox id,
 * never taken from a handle or a profile, and the marker (`vm.json`) holds
 * the sandbox id and a random creation nonce: teardown and `gc` stop or
 * remove a VM only when both match, so a hand-edited record or a planted
 * directory cannot aim them at anything else.
 *
 * @module
 */

import { ID_PATTERN } from "../../../core/ids.ts";
import { VmError } from "../../../core/errors.ts";

const NONCE = /^[0-9a-f]{32}$/;
/** Longest unix socket path Linux takes (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

/** File names inside a VM directory. */
export const VM_FILES = {
  /** The marker: id and nonce. */
  marker: "vm.json",
  /** Per-sandbox host key handed to the guest on the seed disk. */
  hostKey: "ssh_host_ed25519_key",
  /** Per-sandbox user key sandboxer logs in with. */
  userKey: "id_ed25519",
  /** known_hosts pinning the host key for `[127.0.0.1]:port`. */
  knownHosts: "known_hosts",
  /** The seed disk (ext4, label sbxseed). */
  seed: "seed.img",
  /** The copy-on-write overlay over the image. */
  overlay: "overlay.qcow2",
  /** qemu's QMP socket. */
  qmp: "qmp.sock",
  /** qemu's pid file. */
  pid: "qemu.pid",
  /** The guest's serial console. */
  console: "console.log",
} as const;

/** What `vm.json` holds. */
export interface VmMarker {
  /** The sandbox id. */
  id: string;
  /** The VM's creation nonce (also in the handle as `vm_nonce`). */
  nonce: string;
  /** When it was made. */
  created_at: string;
}

/**
 * `<stateDir>/vms/<id>`, refusing ids that are not sandbox ids.
 *
 * @param stateDir The state directory (absolute).
 * @param id The sandbox id.
 * @returns The directory.
 * @throws {VmError} for an id that could leave `vms/`, or a path too long for the QMP socket.
 *
 * @example
 * ```ts
 * import { vmDirOf } from "./vm_dir.ts";
 * console.log(vmDirOf("/s", "a1")); // "/s/vms/a1"
 * ```
 */
export function vmDirOf(stateDir: string, id: string): string {
  if (!ID_PATTERN.test(id)) {
    throw new VmError(JSON.stringify(id), "has an id that is not a sandbox id");
  }
  if (!stateDir.startsWith("/") || /(^|\/)\.\.?(\/|$)/.test(stateDir)) {
    throw new VmError(id, `cannot use state directory ${stateDir}: give an absolute path`);
  }
  const dir = `${stateDir.replace(/\/+$/, "")}/vms/${id}`;
  if (`${dir}/${VM_FILES.qmp}`.length > MAX_SOCKET_PATH) {
    throw new VmError(
      id,
      `cannot have its QMP socket at ${dir}/${VM_FILES.qmp}: longer than the ${MAX_SOCKET_PATH} characters a unix socket path may have; use a shorter SANDBOXER_HOME or a shorter sandbox name`,
    );
  }
  return dir;
}

/**
 * Whether `nonce` is a creation nonce (32 hex digits).
 *
 * @param nonce The value.
 * @returns True when well formed.
 */
export function isNonce(nonce: unknown): nonce is string {
  return typeof nonce === "string" && NONCE.test(nonce);
}

/**
 * Make the VM directory (mode 0700) with its marker. A directory already
 * there is refused: it belongs to another sandbox of the same name until
 * `gc` or its destroy removes it.
 *
 * @param dir The directory ({@linkcode vmDirOf}).
 * @param marker Id and nonce.
 * @throws {VmError} when the directory exists.
 */
export async function makeVmDir(dir: string, marker: VmMarker): Promise<void> {
  await Deno.mkdir(dir.slice(0, dir.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  try {
    await Deno.mkdir(dir, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    throw new VmError(
      marker.id,
      `cannot be made: ${dir} exists (left by an earlier sandbox of this name); run "sandboxer gc", then create again`,
    );
  }
  await Deno.writeTextFile(`${dir}/${VM_FILES.marker}`, JSON.stringify(marker) + "\n", {
    mode: 0o600,
    createNew: true,
  });
}

/**
 * Read a VM directory's marker, refusing symlinks and malformed markers.
 *
 * @param dir The directory.
 * @returns The marker, or undefined when the directory or marker is missing or not sandboxer's.
 */
export async function readMarker(dir: string): Promise<VmMarker | undefined> {
  try {
    const info = await Deno.lstat(dir);
    if (!info.isDirectory) return undefined;
    const marker = JSON.parse(await Deno.readTextFile(`${dir}/${VM_FILES.marker}`));
    if (
      typeof marker !== "object" || marker === null || !ID_PATTERN.test(marker.id) ||
      !isNonce(marker.nonce) || !dir.endsWith(`/vms/${marker.id}`)
    ) {
      return undefined;
    }
    return marker as VmMarker;
  } catch {
    return undefined;
  }
}

/**
 * Remove a VM directory, only when it is `<stateDir>/vms/<id>`, a real
 * directory (not a symlink), and its marker holds `nonce` — or it has no
 * marker at all (a create killed between mkdir and writing the marker).
 *
 * @param dir The directory.
 * @param id The sandbox id.
 * @param nonce The VM's creation nonce.
 * @returns `removed`, `absent`, or `foreign` when it holds another nonce (left alone).
 */
export async function removeVmDir(
  dir: string,
  id: string,
  nonce: string,
): Promise<"removed" | "absent" | "foreign"> {
  if (!dir.endsWith(`/vms/${id}`) || !ID_PATTERN.test(id)) return "foreign";
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "absent";
    throw error;
  }
  if (!info.isDirectory) return "foreign";
  const marker = await readMarker(dir);
  const hasMarkerFile = await Deno.lstat(`${dir}/${VM_FILES.marker}`).then(() => true, () => false);
  if (marker ? marker.nonce !== nonce : hasMarkerFile) return "foreign";
  await Deno.remove(dir, { recursive: true });
  return "removed";
}
