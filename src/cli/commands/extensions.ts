import { Command } from "../../deps/commander.ts";
import type { CliContext } from "../context.ts";
import { json, table } from "../output.ts";

/**
 * `sandboxer extensions`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function extensionsCommand(ctx: CliContext) {
  return new Command("extensions")
    .description("List registered extensions, and report broken registrations")
    .option("--json", "print a JSON object { extensions, errors }")
    .action(async (options) => {
      // Loaded in the action: a static import would load the manager for every CLI call.
      const { managerInternals } = await import("../../sandbox/manager.ts");
      const { registry } = managerInternals(await ctx.manager());
      if (options.json) {
        ctx.output.out(json({
          extensions: registry.registrations.map((r) => ({
            id: r.id,
            version: r.version,
            description: r.description,
            builtin: r.builtin,
            file: r.file,
            module: r.module,
            export: r.export,
            permissions: r.permissions,
            config: r.config,
          })),
          errors: registry.errors.map((e) => e.message),
        }));
      } else {
        ctx.output.out(table(
          ["ID", "VERSION", "SOURCE", "DESCRIPTION"],
          registry.registrations.map((r) => [
            r.id,
            r.version,
            r.builtin ? "built-in" : r.file,
            r.description,
          ]),
        ));
      }
      for (const error of registry.errors) ctx.logger.warn(error.message);
    });
}
