import { Command } from "../../deps/commander.ts";
import { formatDuration, parseDuration } from "../../config/duration.ts";
import { UsageError } from "../../core/errors.ts";
import type { CliContext } from "../context.ts";
import { json } from "../output.ts";
import { publicRecord } from "../render.ts";
import { hasLabels, parseLabels } from "../labels.ts";
import { collect } from "./create.ts";

/** How long `destroy --wait` waits when no duration is given. */
const DEFAULT_WAIT_SECONDS = 600;

/**
 * `sandboxer destroy`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function destroyCommand(ctx: CliContext) {
  return new Command("destroy")
    .description("Tear a sandbox down from its stored handle (idempotent)")
    .argument("[id]", "sandbox id (or --label to destroy every sandbox with the labels)")
    .option(
      "--force",
      "destroy even while another process creates, runs or uses it (an exec or sync); its remote processes are ended",
    )
    .option(
      "--wait [duration]",
      "if the sandbox is in use, wait for it to be free (default 10m), then destroy it",
    )
    .option(
      "--forget",
      "drop the record without touching its host (for a host that is gone for good); says what may be left there",
    )
    .option(
      "--label <key=value>",
      "destroy every live sandbox with this label, one after another (repeatable: all must match)",
      collect,
      [] as string[],
    )
    .option("--json", "print the final record as JSON (an array with --label)")
    .action(async (given, options) => {
      const filter = parseLabels(options.label);
      if ((given === undefined) === (options.label.length === 0)) {
        throw new UsageError("Cannot destroy: give a sandbox id or --label KEY=VALUE, not both");
      }
      if (options.force && options.wait !== undefined) {
        throw new UsageError("Cannot use --force with --wait: pick one");
      }
      const manager = await ctx.manager();
      const ids = given !== undefined ? [given] : (await manager.list())
        .filter((r) => hasLabels(r, filter)).map((r) => r.id);
      if (given === undefined && !options.json && ids.length === 0) {
        ctx.logger.info("no live sandbox has those labels");
      }
      const records = [];
      for (const id of ids) records.push(await destroyOne(id));
      if (options.json) {
        ctx.output.out(json(given !== undefined ? records[0] : records));
      }

      async function destroyOne(id: string) {
        if (options.forget) {
          if (options.force || options.wait !== undefined) {
            throw new UsageError("Cannot use --forget with --force or --wait: it touches no host");
          }
          // Loaded here: forget.ts imports the manager, which --help and --version never need.
          const { forgetSandbox, leftBehind } = await import("../../sandbox/forget.ts");
          const forgotten = await forgetSandbox(manager, id);
          if (!options.json) ctx.logger.info(`forgot ${id}; ${leftBehind(forgotten)}`);
          return publicRecord(forgotten);
        }
        const waitMs = options.wait === undefined
          ? undefined
          : (options.wait === true ? DEFAULT_WAIT_SECONDS : waitSeconds(options.wait)) * 1000;
        const before = await manager.show(id);
        const record = await manager.destroy(id, {
          force: options.force,
          waitMs,
          onWait: (busy) =>
            ctx.logger.info(
              `${id} ${busy}; waiting up to ${
                formatDuration((waitMs ?? 0) / 1000)
              } for it to be free`,
            ),
          signal: ctx.signal,
        });
        if (!options.json) {
          ctx.logger.info(
            before.status === "destroyed" ? `${id} was already destroyed` : `destroyed ${id}`,
          );
        }
        return publicRecord(record);
      }
    });
}

function waitSeconds(value: string): number {
  try {
    return parseDuration(value);
  } catch {
    throw new UsageError(`Cannot use --wait ${value}: write a duration such as 90s, 30m or 2h`);
  }
}
