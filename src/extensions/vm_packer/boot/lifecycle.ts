/**
 * Tearing a throwaway VM down and reaping the ones nobody owns any more.
 * Order matters for crash safety: the qemu first (through its QMP socket),
 * then the port lease, then the VM directory with the overlay; a crash
 * between any two steps leaves something the next destroy or `gc` finishes.
 *
 * @module
 */

import { ID_PATTERN } from "../../../core/ids.ts";
import type { PortRegistry } from "../../../core/ports/registry.ts";
import type { Logger } from "../../../core/types.ts";
import { VmError } from "../../../core/errors.ts";
import { runningQemu, socketAnswers, stopQemu } from "./qemu.ts";
import { isNonce, readMarker, removeVmDir, VM_FILES } from "./vm_dir.ts";

/**
 * Stop sandbox `id`'s VM, release its port and remove its directory, each
 * only when the directory's marker holds `nonce`.
 *
 * @param dir `<stateDir>/vms/<id>`.
 * @param id The sandbox id.
 * @param nonce The VM's creation nonce from the handle.
 * @param ports The port registry.
 * @param logger Where to warn.
 * @returns What was done, for reports.
 */
export async function teardownVm(
  dir: string,
  id: string,
  nonce: string,
  ports: PortRegistry,
  logger: Logger,
): Promise<string[]> {
  const done: string[] = [];
  const marker = await readMarker(dir);
  if (marker && marker.nonce !== nonce) {
    // This sandbox's create never made its directory (it stopped before): only its lease is ours.
    logger.warn(
      `left ${dir} alone: it holds another VM of a sandbox named ${id} (another creation nonce)`,
    );
    const released = await ports.release(id, nonce);
    return released.length ? [`released port ${released.join(", ")}`] : [];
  } else if (marker) {
    const pid = await stopQemu(id, dir);
    if (pid !== undefined) done.push(`stopped qemu ${pid}`);
  } else if (await runningQemu(dir) !== undefined) {
    // No marker but a qemu on this directory's socket: cannot happen through sandboxer (the
    // marker is written before qemu starts); leave it to a person.
    logger.warn(`left the qemu of ${dir} alone: its directory has no marker`);
    return done;
  }
  if (await socketAnswers(`${dir}/${VM_FILES.qmp}`)) {
    // Never delete the overlay under a running VM.
    throw new VmError(id, `still runs (its QMP socket in ${dir} answers); run destroy or gc again`);
  }
  const released = await ports.release(id, nonce);
  if (released.length) done.push(`released port ${released.join(", ")}`);
  if (await removeVmDir(dir, id, nonce) === "removed") done.push(`removed ${dir}`);
  return done;
}

/** What {@linkcode reapVms} asks about each VM directory. */
export interface ReapContext {
  /** `<stateDir>/vms`. */
  vmsDir: string;
  /** The port registry. */
  ports: PortRegistry;
  /**
   * The handle of sandbox `id`'s record when that record is not destroyed;
   * undefined when there is no such record (or it is destroyed).
   */
  liveHandle(id: string): Promise<Record<string, unknown> | null | undefined>;
  /** Where to warn. */
  logger: Logger;
}

/**
 * Stop and remove every VM whose sandbox is gone: no live record, or a live
 * record whose handle holds another VM nonce (or none, for a directory with no
 * marker). A VM a live record owns is left for its destroy.
 *
 * @param ctx Where to look and how to ask the journal.
 * @returns One line per VM reaped.
 */
export async function reapVms(ctx: ReapContext): Promise<string[]> {
  const reaped: string[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(ctx.vmsDir));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  for (const entry of entries) {
    if (!entry.isDirectory || !ID_PATTERN.test(entry.name)) continue;
    const id = entry.name;
    const dir = `${ctx.vmsDir}/${id}`;
    const handle = await ctx.liveHandle(id);
    const marker = await readMarker(dir);
    if (handle !== undefined) {
      // A live record: its own destroy tears the VM down, unless the VM is not the record's.
      const recorded = handle?.["vm_nonce"];
      if (!marker || !isNonce(recorded) || recorded === marker.nonce) continue;
    }
    if (!marker) {
      const markerFile = await Deno.lstat(`${dir}/${VM_FILES.marker}`).then(
        () => true,
        () => false,
      );
      if (markerFile) {
        ctx.logger.warn(`left ${dir} alone: its marker is not one sandboxer wrote`);
        continue;
      }
    }
    try {
      const done = marker
        ? await teardownVm(dir, id, marker.nonce, ctx.ports, ctx.logger)
        : await removeUnmarked(dir, id);
      if (done.length) reaped.push(`VM of sandbox ${id}: ${done.join(", ")}`);
    } catch (error) {
      ctx.logger.warn(
        `could not reap the VM of sandbox ${id}: ${error instanceof Error ? error.message : error}`,
      );
    }
  }
  return reaped;
}

/** A directory a create was killed in before it wrote the marker: nothing ran from it. */
async function removeUnmarked(dir: string, id: string): Promise<string[]> {
  if (await runningQemu(dir) !== undefined || await socketAnswers(`${dir}/${VM_FILES.qmp}`)) {
    return [];
  }
  return await removeVmDir(dir, id, "") === "removed" ? [`removed ${dir}`] : [];
}
