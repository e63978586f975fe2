/**
 * The `warm` group (`deno task bench --only warm`): warm workspaces
 * (docs/warm-workspaces.md) against the plain tools, median of 3.
 *
 * - SDK: the sync phase of `Manager.create({ repo })` for a tree the host has
 *   seen (its seed copied on the host, then rsync of the difference, then the
 *   seed updated) against `rsync -a` into an empty directory; target ≤ 0.3×.
 * - CLI: the whole `sandboxer create --repo` with one file changed since the
 *   last create against `ssh … mkdir` + `rsync -a` into the new directory;
 *   target ≤ 0.45×.
 *
 * @module
 */

import { cliRun, emptyRsyncArm, flushDisk, plainDir, removeLocal, rsyncArgv } from "./arms.ts";
import { type BenchContext, type GroupResult, progress, row } from "./groups.ts";
import { alternate, runChild } from "./lib.ts";
import { remoteCommand } from "../src/transport/quote.ts";

/** Timed runs per arm: the issue asks for the median of 3. */
const WARM_RUNS = 3;

/**
 * Untimed, before each run: wait (up to 20 s) until the host has finished the seed work a create
 * leaves running in the background (a spare copy for the next create, deletions of what a new
 * seed replaced), then flush the disk, so no run pays for the one before it.
 */
async function settle(ctx: BenchContext): Promise<void> {
  const busy = 'for e in "$1"/.sbx-seeds/*/.tmp-* "$1"/.sbx-seeds/*/.old-*; do ' +
    '[ -e "$e" ] && exit 1; done; exit 0';
  const [program, ...args] = ctx.sshCmd;
  const command = remoteCommand(["sh", "-c", busy, "sh", ctx.workspaceRoot]);
  for (let tries = 0; tries < 200; tries++) {
    const probe = await new Deno.Command(program, { args: [...args, command] }).output();
    if (probe.code === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await flushDisk();
}

/** A regular file of the tree to change before each CLI create. */
async function someFile(dir: string): Promise<string> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && !entry.name.startsWith(".")) return `${dir}/${entry.name}`;
  }
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory && !entry.name.startsWith(".")) {
      const found = await someFile(`${dir}/${entry.name}`).catch(() => "");
      if (found) return found;
    }
  }
  throw new Error(`no file to change in ${dir}`);
}

/**
 * Warm first sync (SDK) and warm `create --repo` (CLI) against the plain tools.
 *
 * @param ctx The context; its profile keeps the default `sync.seed: source`.
 * @returns Rows and samples.
 */
export async function warmGroup(ctx: BenchContext): Promise<GroupResult> {
  ctx.log(`warm workspaces (${ctx.host.label}): a tree the host has seen`);
  const made: string[] = [];
  // Untimed: the first create of the tree leaves its seed on the host.
  made.push((await ctx.manager.create({ profile: ctx.profile, repo: ctx.sourceDir })).id);
  const changed = await someFile(ctx.sourceDir);
  const original = await Deno.readFile(changed);
  let edits = 0;
  const samples = await alternate(
    [
      {
        name: "sdk warm sync",
        async run() {
          let syncMs = NaN;
          const record = await ctx.manager.create({
            profile: ctx.profile,
            repo: ctx.sourceDir,
            onPhase: (phase, ms) => {
              if (phase === "sync") syncMs = ms;
            },
          });
          made.push(record.id);
          return syncMs;
        },
      },
      emptyRsyncArm(ctx, "rsync empty"),
      {
        name: "cli create --repo",
        async prepare() {
          await Deno.writeTextFile(changed, `edit ${++edits}\n`, { append: true });
        },
        async run() {
          const result = await cliRun(ctx, [
            "create",
            "-p",
            ctx.profile,
            "--repo",
            ctx.sourceDir,
            "--json",
          ]);
          made.push(JSON.parse(result.stdout).id);
          return result.ms;
        },
      },
      {
        name: "ssh mkdir + rsync",
        prepare: () => plainDir(ctx),
        async run(dir: string) {
          const mkdir = await runChild([...ctx.sshCmd, "mkdir", dir]);
          return mkdir.ms + (await runChild(rsyncArgv(ctx, dir))).ms;
        },
        cleanup: removeLocal,
      },
    ],
    WARM_RUNS,
    progress(ctx, "warm", WARM_RUNS),
    () => settle(ctx),
  );
  await Deno.writeFile(changed, original);
  await Promise.all(made.map((id) => ctx.manager.destroy(id)));
  return {
    samples,
    rows: [
      row(ctx, samples, "warm first sync (seen tree) — SDK", "sdk warm sync", "rsync empty", {
        plainLabel: "`rsync -a` into an empty dir",
        target: 0.3,
      }),
      row(
        ctx,
        samples,
        "warm `create --repo` (1 file changed) — CLI process",
        "cli create --repo",
        "ssh mkdir + rsync",
        { plainLabel: "`ssh mkdir` + `rsync -a`", target: 0.45 },
      ),
    ],
  };
}
