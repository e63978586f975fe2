import { Command } from "../../deps/commander.ts";
import { UsageError } from "../../core/errors.ts";
import type { CliContext } from "../context.ts";
import { json } from "../output.ts";
import { publicRecord, relativeExpiry } from "../render.ts";
import { ttlSeconds } from "./create.ts";

/**
 * `sandboxer extend ID DURATION`: push a sandbox's expiry out, so `gc` leaves
 * a long build alone.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function extendCommand(ctx: CliContext) {
  return new Command("extend")
    .description("Make a sandbox expire DURATION from now (e.g. 8h) instead of when it would")
    .argument("<id>", "sandbox id")
    .argument("<duration>", "new lifetime from now, such as 30m, 8h or 2d")
    .option("--json", "print the updated record as JSON")
    .action(async (id, duration, options) => {
      let seconds: number;
      try {
        seconds = ttlSeconds(duration);
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        throw new UsageError(error.message.replace("--ttl", "extend"));
      }
      // Loaded here: extend.ts imports the manager, which --help and --version never need.
      const { extendSandbox } = await import("../../sandbox/extend.ts");
      const record = await extendSandbox(await ctx.manager(), id, seconds);
      if (options.json) ctx.output.out(json(publicRecord(record)));
      else ctx.logger.info(`${id} now expires ${relativeExpiry(record.expires_at)}`);
    });
}
