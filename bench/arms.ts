/**
 * What the bench's groups share besides their context: the plain tools' directories on the host,
 * the CLI and `rsync -a` runs, and the empty-directory rsync arm.
 *
 * @module
 */

import type { BenchContext } from "./groups.ts";
import { type Arm, runChild } from "./lib.ts";
import { TREE_EXCLUDES } from "./tree.ts";

let plainCounter = 0;
/** A new directory name under the plain tools' root (not made). */
export const plainDir = (ctx: BenchContext): Promise<string> =>
  Promise.resolve(`${ctx.plainRoot}/p${plainCounter++}`);
/** Remove a directory of the host (it is on this machine). */
export const removeLocal = (path: string): Promise<void> =>
  Deno.remove(path, { recursive: true }).catch(() => {});
/** Run the CLI with the context's environment. */
export const cliRun = (
  ctx: BenchContext,
  args: string[],
): ReturnType<typeof runChild> => runChild([...ctx.cli, ...args], ctx.env);

/**
 * The sandboxer CLI with connection sharing off (`SANDBOXER_SSH_MUX=0`): every call pays its own
 * SSH handshake, as before shared connections.
 */
export const cliRunUnshared = (
  ctx: BenchContext,
  args: string[],
): ReturnType<typeof runChild> =>
  runChild([...ctx.cli, ...args], { ...ctx.env, SANDBOXER_SSH_MUX: "0" });

/** `rsync -a` of the tree with the same selection as sandboxer's sync. */
export const rsyncArgv = (ctx: BenchContext, dir: string): string[] => [
  "rsync",
  "-a",
  "--delete",
  "--filter=:- .gitignore",
  ...TREE_EXCLUDES.map((p) => `--exclude=${p}`),
  "-e",
  ctx.sshE,
  `${ctx.sourceDir}/`,
  `${ctx.remote}:${dir}/`,
];

/** Write dirty pages back (sync(1)) so that writeback from one run does not slow the next. */
export const flushDisk = async (): Promise<void> => {
  await new Deno.Command("sync").output();
};

/**
 * The plain arm of a first sync: `rsync -a` into a directory made empty beforehand (untimed).
 *
 * @param ctx The context.
 * @param name The arm's name.
 * @returns The arm.
 */
export function emptyRsyncArm(ctx: BenchContext, name: string): Arm<string> {
  return {
    name,
    async prepare() {
      const dir = await plainDir(ctx);
      await runChild([...ctx.sshCmd, "mkdir", dir]);
      return dir;
    },
    run: async (dir: string) => (await runChild(rsyncArgv(ctx, dir))).ms,
    cleanup: removeLocal,
  };
}
