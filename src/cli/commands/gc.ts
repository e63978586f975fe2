import { Command } from "../../deps/commander.ts";
import { UsageError } from "../../core/errors.ts";
import type { GcTargetReport } from "../../sandbox/gc_target.ts";
import type { GcReport } from "../../sandbox/manager_options.ts";
import type { CliContext } from "../context.ts";
import { escapeControl, json } from "../output.ts";
import { collect } from "./create.ts";
import { parseDuration } from "../../config/duration.ts";
import type { SandboxRecord } from "../../sandbox/record.ts";
import { hasLabels, parseLabels } from "../labels.ts";

/**
 * `sandboxer gc`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function gcCommand(ctx: CliContext) {
  return new Command("gc")
    .description(
      "Destroy expired sandboxes and those stuck in creating or destroying; with --target, also remove expired marked workspaces on that profile's target that no local record knows",
    )
    .option(
      "--target <profile>",
      "also scan this profile's target for leaked workspaces (e.g. made from another machine)",
    )
    .option(
      "--set <path=value>",
      "override a field of the --target profile (repeatable)",
      collect,
      [] as string[],
    )
    .option(
      "--prune <age>",
      "also forget records destroyed longer ago than AGE (e.g. 7d), so list --all stays short",
    )
    .option(
      "--label <key=value>",
      "only destroy sandboxes with this label (repeatable: all must match)",
      collect,
      [] as string[],
    )
    .option(
      "--dry-run",
      "only print what would be destroyed (and, with --prune, forgotten); changes nothing",
    )
    .option("--json", "print the report as JSON")
    .action(async (options) => {
      if (options.set.length && options.target === undefined) {
        throw new UsageError("Cannot use --set without --target: it overrides the target profile");
      }
      if (options.dryRun && options.target !== undefined) {
        throw new UsageError(
          "Cannot use --dry-run with --target: the target scan has no dry run; run gc --dry-run without --target",
        );
      }
      const pruneAge = options.prune === undefined ? undefined : ageSeconds(options.prune);
      const filter = parseLabels(options.label);
      const only = (record: SandboxRecord) => hasLabels(record, filter);
      const manager = await ctx.manager();
      // Loaded here: prune.ts imports the manager, which --help and --version never need.
      const { pruneDestroyed } = await import("../../sandbox/prune.ts");
      if (options.dryRun) {
        const plan = {
          would_destroy: await manager.gcPlan({ only }),
          ...(pruneAge === undefined ? {} : {
            would_forget: await pruneDestroyed(manager, {
              olderThanSeconds: pruneAge,
              dryRun: true,
            }),
          }),
        };
        if (options.json) return ctx.output.out(json(plan));
        for (const d of plan.would_destroy) line(ctx, `would destroy ${d.id}: ${d.reason}`);
        for (const id of plan.would_forget ?? []) line(ctx, `would forget destroyed record ${id}`);
        if (!plan.would_destroy.length && !plan.would_forget?.length) {
          ctx.output.out("Nothing to collect.\n");
        }
        return;
      }
      const gcReport = await manager.gc({ only });
      const report: GcReport & { pruned?: string[] } = pruneAge === undefined ? gcReport : {
        ...gcReport,
        pruned: await pruneDestroyed(manager, { olderThanSeconds: pruneAge }),
      };
      if (report.failed.length) ctx.exitCode = 1;
      // In text mode the local part is printed before the scan, which may fail on its own.
      if (!options.json) {
        for (const d of report.destroyed) line(ctx, `destroyed ${d.id}: ${d.reason}`);
        for (const f of report.failed) line(ctx, `could not destroy ${f.id}: ${f.error}`);
        for (const r of report.reaped) line(ctx, `reaped ${r}`);
        for (const p of report.pruned ?? []) line(ctx, `forgot destroyed record ${p}`);
        if (
          options.target === undefined && !report.destroyed.length && !report.failed.length &&
          !report.reaped.length && !report.pruned?.length
        ) {
          ctx.output.out("Nothing to collect.\n");
        }
      }
      if (options.target === undefined) {
        if (options.json) ctx.output.out(json(report));
        return;
      }
      const target = await manager.gcTarget(options.target, {
        overrides: options.set,
        signal: ctx.signal,
      });
      if (target.failed.length) ctx.exitCode = 1;
      if (options.json) ctx.output.out(json({ ...report, target }));
      else printTarget(ctx, target);
    });
}

/** Parse `--prune AGE`. */
function ageSeconds(value: string): number {
  try {
    return parseDuration(value);
  } catch {
    throw new UsageError(`Cannot use --prune ${value}: write an age such as 12h, 7d or 0s`);
  }
}

/** One line of the human report: paths, reasons and errors come from the remote host. */
function line(ctx: CliContext, text: string): void {
  ctx.output.out(`${escapeControl(text)}\n`);
}

function printTarget(ctx: CliContext, report: GcTargetReport): void {
  for (const host of report.hosts ?? []) {
    if (host.skipped !== undefined) {
      line(ctx, `skipped pool host ${host.host} (unreachable): ${host.skipped}`);
      continue;
    }
    printTarget(ctx, { ...host, hosts: undefined });
    for (const r of host.reaped) line(ctx, `reaped lease ${r} on ${host.host}`);
    if (host.live.length) line(ctx, `${host.live.length} lease(s) in use on ${host.host}`);
  }
  if (report.hosts) return;
  const where = `${report.target}:${report.root}`;
  for (const r of report.removed) {
    line(ctx, `removed ${r.workspace} on ${report.target}: ${r.reason}${madeBy(r.creator)}`);
  }
  for (const f of report.failed) {
    line(ctx, `could not remove ${f.workspace} on ${report.target}: ${f.error}`);
  }
  for (const k of report.kept) line(ctx, `kept ${k.workspace}: ${k.reason}`);
  for (const i of report.ignored) line(ctx, `left alone ${i.workspace}: ${i.reason}`);
  for (const s of [...report.seeds ?? [], ...report.snapshots ?? []]) line(ctx, `reaped ${s}`);
  const total = report.removed.length + report.failed.length + report.kept.length +
    report.ignored.length;
  if (total === 0) line(ctx, `No sbx-* workspaces in ${where}.`);
  else if (!report.removed.length && !report.failed.length) {
    line(ctx, `Nothing to remove in ${where}.`);
  }
}

function madeBy(creator: string | null): string {
  return creator ? ` (made by ${creator})` : "";
}
