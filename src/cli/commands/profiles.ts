import { Command } from "../../deps/commander.ts";
import { formatDuration } from "../../config/duration.ts";
import type { CliContext } from "../context.ts";
import { json, table } from "../output.ts";

/**
 * `sandboxer profiles`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function profilesCommand(ctx: CliContext) {
  return new Command("profiles")
    .description("List the profiles on the search path, and report broken ones")
    .option("--json", "print a JSON object { profiles, errors }")
    .action(async (options) => {
      const manager = await ctx.manager();
      const { profiles, errors } = await manager.profiles();
      if (options.json) {
        ctx.output.out(json({
          profiles: profiles.map((p) => ({
            id: p.id,
            name: p.name,
            file: p.file,
            extension: p.extension,
            description: p.description ?? null,
            ttl_seconds: p.ttlSeconds ?? null,
          })),
          errors: errors.map((e) => e.message),
          search_path: manager.profilePath,
        }));
      } else {
        ctx.output.out(table(
          ["NAME", "EXTENSION", "TTL", "FILE"],
          profiles.map((p) => [
            p.name,
            p.extension,
            p.ttlSeconds === undefined ? "-" : formatDuration(p.ttlSeconds),
            p.file,
          ]),
        ));
      }
      for (const error of errors) ctx.logger.warn(error.message);
    });
}
