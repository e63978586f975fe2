/**
 * Helpers of a vm-packer create: named steps (with the crash tests' hold)
 * and the VM console's last lines for errors.
 *
 * @module
 */

import { optionalEnv } from "../../core/permissions.ts";
import type { CreateContext } from "../types.ts";
import type { VmPackerConfig } from "./config.ts";
import { VM_FILES } from "./boot/vm_dir.ts";

/** Console lines shown when a boot fails. */
const CONSOLE_TAIL_LINES = 8;

/**
 * Name a create step. For the crash tests only: with
 * `SANDBOXER_TEST_HOLD_AT=<step>` the create stops right after recording that
 * step (until killed or aborted), so a test can SIGKILL sandboxer at exactly
 * that point, however fast the step is.
 *
 * @param ctx The create context.
 * @param name The step's name.
 */
export async function step(ctx: CreateContext<VmPackerConfig>, name: string): Promise<void> {
  await ctx.step(name);
  if (optionalEnv("SANDBOXER_TEST_HOLD_AT") !== name) return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, 3_600_000);
    ctx.signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(ctx.signal?.reason);
    }, { once: true });
  });
}

/**
 * The last lines of a VM's serial console.
 *
 * @param dir The VM directory.
 * @returns Up to 8 non-empty lines.
 */
export async function consoleTail(dir: string): Promise<string[]> {
  const text = await Deno.readTextFile(`${dir}/${VM_FILES.console}`).catch(() => "");
  return text.replace(/\r/g, "").split("\n").map((l) => l.trim()).filter(Boolean)
    .slice(-CONSOLE_TAIL_LINES);
}
