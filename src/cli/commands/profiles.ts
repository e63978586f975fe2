import { Command } from "../../deps/commander.ts";
import { formatDuration } from "../../config/duration.ts";
import type { Profile } from "../../config/types.ts";
import { ConfigError, errorText } from "../../core/errors.ts";
import type { Manager } from "../../sandbox/manager.ts";
import type { CliContext } from "../context.ts";
import { json, table } from "../output.ts";

/** A listed profile, checked the way `create` checks it before anything is made. */
interface CheckedProfile {
  profile: Profile;
  /** Why it cannot be used on this machine yet (a file it names is missing), if so. */
  note?: string;
}

/**
 * Validate every listed profile completely (the extension's own fields included): the invalid
 * ones become errors naming file, line and field; a profile that is well-formed but names a file
 * this machine lacks stays listed, with a note.
 */
async function checkAll(
  manager: Manager,
  profiles: readonly Profile[],
): Promise<{ checked: CheckedProfile[]; invalid: ConfigError[] }> {
  const checked: CheckedProfile[] = [];
  const invalid: ConfigError[] = [];
  for (const profile of profiles) {
    try {
      await manager.resolveProfile(profile.name);
      checked.push({ profile });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      if (error.cause instanceof Deno.errors.NotFound) {
        const missing = error.problem.split(";")[0];
        checked.push({ profile, note: `${error.location.field ?? "a file"}: ${missing}` });
      } else {
        invalid.push(error);
      }
    }
  }
  return { checked, invalid };
}

/**
 * `sandboxer profiles`: exit 1 when any profile on the search path is invalid.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function profilesCommand(ctx: CliContext) {
  return new Command("profiles")
    .description("List the profiles on the search path, and report broken ones (exit 1)")
    .option("--json", "print a JSON object { profiles, errors }")
    .action(async (options) => {
      const manager = await ctx.manager();
      const listed = await manager.profiles();
      const { checked, invalid } = await checkAll(manager, listed.profiles);
      const errors = [...listed.errors, ...invalid];
      if (options.json) {
        ctx.output.out(json({
          profiles: checked.map(({ profile: p, note }) => ({
            id: p.id,
            name: p.name,
            file: p.file,
            extension: p.extension,
            description: p.description ?? null,
            ttl_seconds: p.ttlSeconds ?? null,
            ready: note === undefined,
            note: note ?? null,
          })),
          errors: errors.map((e) => e.message),
          search_path: manager.profilePath,
        }));
      } else {
        const notes = checked.some((c) => c.note !== undefined);
        ctx.output.out(table(
          ["NAME", "EXTENSION", "TTL", "FILE", ...(notes ? ["NOTE"] : [])],
          checked.map(({ profile: p, note }) => [
            p.name,
            p.extension,
            p.ttlSeconds === undefined ? "-" : formatDuration(p.ttlSeconds),
            p.file,
            ...(notes ? [note ?? "-"] : []),
          ]),
        ));
      }
      for (const error of errors) ctx.logger.error(errorText(error));
      if (errors.length) ctx.exitCode = 1;
    });
}
