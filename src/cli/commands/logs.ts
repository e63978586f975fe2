import { Command } from "../../deps/commander.ts";
import { SandboxNotFoundError } from "../../core/errors.ts";
import type { CliContext } from "../context.ts";

/** How often `logs -f` looks for new lines. */
const FOLLOW_POLL_MS = 250;

/**
 * `sandboxer logs ID [-f]`: the sandbox's transcript (create, setup, sync,
 * exec), timestamped; `-f` keeps printing new lines until Ctrl-C or the
 * sandbox is destroyed.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function logsCommand(ctx: CliContext) {
  return new Command("logs")
    .description("Show a sandbox's transcript: create, setup, sync and exec output, timestamped")
    .argument("<id>", "sandbox id")
    .option("-f, --follow", "keep printing new lines until Ctrl-C or the sandbox is destroyed")
    .action(async (id, options) => {
      const manager = await ctx.manager();
      await manager.show(id); // an unknown id is an error, not an empty transcript
      const path = manager.transcriptPath(id);
      let offset = 0;
      const printNew = async () => {
        const bytes = await Deno.readFile(path).catch((error) => {
          if (error instanceof Deno.errors.NotFound) return new Uint8Array();
          throw error;
        });
        // Capped and rewritten since the last look: start over from its beginning.
        if (bytes.length < offset) offset = 0;
        if (bytes.length > offset) ctx.output.outBytes(bytes.subarray(offset));
        offset = bytes.length;
      };
      await printNew();
      while (options.follow && !ctx.signal.aborted) {
        await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
        await printNew();
        const record = await manager.show(id).catch((error) => {
          if (error instanceof SandboxNotFoundError) return undefined;
          throw error;
        });
        if (record === undefined || record.status === "destroyed") break;
      }
    });
}
