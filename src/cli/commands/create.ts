import { Command } from "../../deps/commander.ts";
import { formatDuration, MAX_TTL_SECONDS, parseDuration } from "../../config/duration.ts";
import { UsageError } from "../../core/errors.ts";
import type { CliContext } from "../context.ts";
import { escapeControl, json } from "../output.ts";
import { publicRecord } from "../render.ts";
import { progressPrinter, waitPrinter } from "./progress.ts";
import { parseLabels } from "../labels.ts";
import { sshMuxFromEnv } from "../ssh_mux_env.ts";

/**
 * `sandboxer create`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function createCommand(ctx: CliContext) {
  return new Command("create")
    .description("Create a sandbox from a profile")
    .requiredOption("-p, --profile <name|file>", "profile name or YAML file")
    .option("-n, --name <id>", "sandbox id ([a-z0-9][a-z0-9-]{0,62}); random when absent")
    .option("--repo <dir>", "local directory to sync into the workspace")
    .option(
      "--from-snapshot <name>",
      "start the workspace as a copy of this snapshot on the profile's host (then sync --repo on top)",
    )
    .option("--set <path=value>", "override a profile field (repeatable)", collect, [] as string[])
    .option("--ttl <duration>", "lifetime such as 30m or 8h, overriding the profile's ttl")
    .option(
      "--label <key=value>",
      "label the sandbox, for list/destroy --label (repeatable)",
      collect,
      [] as string[],
    )
    .option(
      "--wait <duration>",
      "when every slot of the profile's pool is taken, queue for one this long (e.g. 10m); default: fail at once",
    )
    .option("--json", "print the sandbox as JSON")
    .action(async (options) => {
      const labels = parseLabels(options.label);
      const wait = options.wait === undefined ? undefined : waitSeconds(options.wait);
      const manager = await ctx.manager();
      const started = performance.now();
      const waiting = waitPrinter(ctx.output, (line) => ctx.logger.info(line));
      let recorded: string | undefined;
      const record = await manager.create({
        profile: options.profile,
        name: options.name,
        repo: options.repo,
        ...(options.fromSnapshot !== undefined ? { fromSnapshot: options.fromSnapshot } : {}),
        overrides: options.set,
        ttlSeconds: options.ttl === undefined ? undefined : ttlSeconds(options.ttl),
        setupIO: { stdout: ctx.output.errBytes, stderr: ctx.output.errBytes },
        onProgress: progressPrinter(ctx.output),
        signal: ctx.signal,
        labels,
        waitSeconds: wait,
        onWaiting: wait === undefined ? undefined : waiting.onWaiting,
        sshMux: sshMuxFromEnv(),
        onRecorded: (r) => recorded = r.id,
      }).catch(async (error) => {
        if (recorded !== undefined) await sayKept(ctx, recorded);
        throw error;
      }).finally(waiting.done);
      if (options.json) {
        ctx.output.out(json(publicRecord(record)));
      } else {
        ctx.logger.info(
          `created ${record.id} (${escapeControl(record.workspace ?? "no workspace")}) in ${
            Math.round(performance.now() - started)
          } ms`,
        );
        ctx.output.out(`${record.id}\n`);
      }
    });
}

/** After a failed create: say so when it left a `failed` sandbox to look at (sync or setup failed). */
async function sayKept(ctx: CliContext, id: string): Promise<void> {
  const record = await (await ctx.manager()).show(id).catch(() => undefined);
  if (record?.status !== "failed" || record.workspace === null) return;
  if (record.step !== "sync" && record.step !== "setup") return;
  ctx.logger.info(
    `kept the failed sandbox ${id} to look at ("sandboxer ssh ${id}", "sandboxer logs ${id}"); remove it with "sandboxer destroy ${id}" (gc does once its ttl has passed)`,
  );
}

/** Parse a `--ttl` value into seconds (at most {@linkcode MAX_TTL_SECONDS}). */
export function ttlSeconds(value: string): number {
  let seconds: number;
  try {
    seconds = parseDuration(value);
  } catch {
    throw new UsageError(`Cannot use --ttl ${value}: write a duration such as 90s, 30m, 8h or 2d`);
  }
  if (seconds < 1 || seconds > MAX_TTL_SECONDS) {
    throw new UsageError(
      `Cannot use --ttl ${value}: a ttl must be from 1s to ${
        formatDuration(MAX_TTL_SECONDS)
      } (365 days); to keep a sandbox longer, leave the ttl out of the profile and --ttl`,
    );
  }
  return seconds;
}

/** Parse `create --wait DURATION` (and `run --wait`) into seconds. */
export function waitSeconds(value: string): number {
  try {
    return parseDuration(value);
  } catch {
    throw new UsageError(
      `Cannot use --wait ${value}: write how long to queue for a slot, such as 90s, 10m or 1h`,
    );
  }
}

/** Commander helper to collect a repeatable option. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
