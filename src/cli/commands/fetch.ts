import { Command } from "../../deps/commander.ts";
import type { CliContext } from "../context.ts";
import { escapeControl } from "../output.ts";
import { fetchPrinter } from "./progress.ts";

/**
 * `sandboxer fetch ID REMOTE [LOCAL]`: copy a file or directory out of a
 * sandbox's workspace, as `run --artifact` does, for sandboxes made by `create`.
 * On a terminal a progress line shows while it copies; either way it ends
 * with one summary line (`fetched 3 files, 1.2 MB in 0.4s (…)`).
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function fetchCommand(ctx: CliContext) {
  return new Command("fetch")
    .description("Copy a file or directory from a sandbox's workspace into a local directory")
    .argument("<id>", "sandbox id")
    .argument("<remote>", "path relative to the workspace (or absolute inside it)")
    .argument("[local]", "local directory to copy into (made if missing)", ".")
    .action(async (id, remote, local) => {
      const printer = fetchPrinter(ctx.output, (line) => ctx.logger.info(line));
      const manager = await ctx.manager();
      const started = performance.now();
      printer.start(local, remote);
      const report = await manager.fetch(id, remote, local, { signal: ctx.signal })
        .finally(printer.clear);
      const what = `${escapeControl(remote)} from ${id} into ${escapeControl(local)}`;
      printer.done(what, report, performance.now() - started);
    });
}
