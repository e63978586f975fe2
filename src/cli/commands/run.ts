import { Command } from "../../deps/commander.ts";
import { parseArtifact } from "../../sandbox/artifacts.ts";
import { UsageError } from "../../core/errors.ts";
import type { CliContext } from "../context.ts";
import { escapeControl, json } from "../output.ts";
import { fetchPrinter, progressPrinter, waitPrinter } from "./progress.ts";
import { collect, ttlSeconds, waitSeconds } from "./create.ts";

/**
 * `sandboxer run --profile P [--repo DIR] [--artifact R[:L]]... -- CMD [ARGS...]`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function runCommand(ctx: CliContext) {
  return new Command("run")
    .description(
      "Create a sandbox, sync, set up, run CMD, copy artifacts back and destroy it; CMD's exit code becomes ours",
    )
    .requiredOption("-p, --profile <name|file>", "profile name or YAML file")
    .option("--repo <dir>", "local directory to sync into the workspace first")
    .option(
      "--artifact <remote[:local]>",
      "copy REMOTE (relative to the workspace) into LOCAL dir (default .) afterwards; repeatable",
      collect,
      [] as string[],
    )
    .option("--keep", "keep the sandbox afterwards")
    .option("--keep-on-failure", "keep the sandbox when CMD or a phase fails")
    .option("-n, --name <id>", "sandbox id; random when absent")
    .option("--set <path=value>", "override a profile field (repeatable)", collect, [] as string[])
    .option("--ttl <duration>", "lifetime of a kept sandbox, e.g. 8h")
    .option(
      "--wait <duration>",
      "when every slot of the profile's pool is taken, queue for one this long (e.g. 10m)",
    )
    .option(
      "--json",
      "print one result document on stdout (id, exit code, phase timings, artifacts); CMD's output goes to stderr",
    )
    .argument("<command...>", "program and arguments, after --; kept literal")
    .passThroughOptions()
    .action(async (command, options) => {
      if (options.keep && options.keepOnFailure) {
        throw new UsageError("Cannot use --keep with --keep-on-failure: pick one");
      }
      const phases: string[] = [];
      const timings: Record<string, number> = {};
      const artifacts = options.artifact.map(parseArtifact);
      const wait = options.wait === undefined ? undefined : waitSeconds(options.wait);
      const waiting = waitPrinter(ctx.output, (line) => ctx.logger.info(line));
      const fetching = fetchPrinter(ctx.output, (line) => ctx.logger.info(line));
      const { runInSandbox } = await import("../../sandbox/run_sandbox.ts");
      const result = await runInSandbox(await ctx.manager(), {
        profile: options.profile,
        command: command[0] === "--" ? command.slice(1) : command,
        repo: options.repo,
        name: options.name,
        overrides: options.set,
        ttlSeconds: options.ttl === undefined ? undefined : ttlSeconds(options.ttl),
        artifacts,
        keep: options.keep ? "always" : options.keepOnFailure ? "on-failure" : "never",
        // With --json, stdout carries only the result document.
        io: {
          stdout: options.json ? ctx.output.errBytes : ctx.output.outBytes,
          stderr: ctx.output.errBytes,
        },
        setupIO: { stdout: ctx.output.errBytes, stderr: ctx.output.errBytes },
        onProgress: progressPrinter(ctx.output),
        onFetching: (artifact) => fetching.start(artifact.local, artifact.remote),
        onFetched: (artifact, { report, error, ms }) => {
          if (error !== undefined) return fetching.clear();
          const what = `${escapeControl(artifact.remote)} into ${escapeControl(artifact.local)}`;
          fetching.done(what, report, ms);
        },
        onPhase: (phase, ms) => {
          phases.push(`${phase} ${(ms / 1000).toFixed(2)}s`);
          timings[phase] = Math.round(ms);
        },
        logger: ctx.logger,
        signal: ctx.signal,
        waitSeconds: wait,
        onWaiting: wait === undefined ? undefined : waiting.onWaiting,
      }).finally(() => {
        waiting.done();
        fetching.clear();
        if (phases.length) ctx.logger.info(`phases: ${phases.join(" · ")}`);
      });
      // A command that never ran is sandboxer's failure, not the command's.
      ctx.exitCode = result.exitCode ?? 125;
      if (options.json) {
        ctx.output.out(json({
          id: result.id,
          exit_code: result.exitCode ?? null,
          kept: result.kept,
          phases_ms: timings,
          artifacts,
        }));
      }
    });
}
