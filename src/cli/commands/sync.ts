import { Command } from "../../deps/commander.ts";
import type { CliContext } from "../context.ts";
import { json } from "../output.ts";
import { watchSync } from "../watch.ts";
import { sshMuxFromEnv } from "../ssh_mux_env.ts";
import { progressPrinter } from "./progress.ts";

/**
 * `sandboxer sync`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function syncCommand(ctx: CliContext) {
  return new Command("sync")
    .description("Sync a local directory into a sandbox's workspace (rsync, .gitignore honoured)")
    .argument("<id>", "sandbox id")
    .option("--repo <dir>", "local directory (default: the profile's sync.source)")
    .option("--watch", "keep syncing on local changes (not to ignored paths) until Ctrl-C")
    .option("--json", "print the sync report as JSON (with --watch: one line per sync)")
    .action(async (id, options) => {
      const manager = await ctx.manager();
      if (!options.watch) {
        const report = await manager.sync(id, {
          repo: options.repo,
          onProgress: progressPrinter(ctx.output),
          signal: ctx.signal,
          sshMux: sshMuxFromEnv(),
        });
        if (options.json) ctx.output.out(json(report));
        return;
      }
      const record = await manager.show(id);
      // The first sync checks the directory and says how to name one when there is none.
      const repo = options.repo ?? record.sync.source ?? ".";
      await watchSync({
        repo,
        settings: record.sync,
        sync: (signal) => manager.sync(id, { repo: options.repo, signal }),
        onSync: (report, ms) =>
          ctx.output.out(
            options.json
              ? `${JSON.stringify({ ...report, ms })}\n`
              : `synced ${report.files} file(s), ${report.deleted} deleted, in ${ms} ms\n`,
          ),
        onError: (error) =>
          ctx.logger.warn(`sync failed: ${error instanceof Error ? error.message : error}`),
        signal: ctx.signal,
      });
      ctx.logger.info("watch stopped");
    });
}
