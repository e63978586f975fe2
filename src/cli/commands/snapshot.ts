import { Command } from "../../deps/commander.ts";
import { UsageError } from "../../core/errors.ts";
import type { SnapshotInfo, SnapshotScan } from "../../extensions/types.ts";
import type { CliContext } from "../context.ts";
import { escapeControl, json } from "../output.ts";
import { collect, ttlSeconds } from "./create.ts";

/**
 * `sandboxer snapshot ID NAME`, `snapshot list [PROFILE]`, `snapshot rm NAME`
 * (docs/snapshots.md).
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function snapshotCommand(ctx: CliContext) {
  const snapshot = new Command("snapshot")
    .description(
      "Save a sandbox's workspace as a named snapshot on its host (create --from-snapshot NAME starts from it); list, rm",
    )
    .argument("[id]", "the sandbox to snapshot")
    .argument("[name]", "the snapshot's name ([a-z0-9][a-z0-9._-]{0,62}), per remote user and root")
    .option("--ttl <duration>", "keep it this long (default: the profile's snapshot_ttl, 7d)")
    .option("--replace", "replace a snapshot of ours with the same name")
    .option("--json", "print the snapshot as JSON")
    // `snapshot list --json`: options after a subcommand are the subcommand's.
    .enablePositionalOptions()
    .action(async (id: string | undefined, name: string | undefined, options) => {
      if (id === undefined || name === undefined) {
        throw new UsageError(
          "Cannot snapshot: give the sandbox and a name, e.g. sandboxer snapshot ID NAME (or snapshot list, snapshot rm NAME)",
        );
      }
      const info = await (await ctx.manager()).snapshot(id, name, {
        ttlSeconds: options.ttl === undefined ? undefined : snapshotTtl(options.ttl),
        replace: options.replace,
        signal: ctx.signal,
      });
      if (options.json) return ctx.output.out(json(info));
      ctx.output.out(
        escapeControl(
          `saved ${info.name} ${info.path} on ${info.target} (${
            size(info.bytes)
          }, expires ${info.expires})`,
        ) + "\n",
      );
    });
  snapshot.addCommand(
    new Command("list")
      .description(
        "List this sandboxer's snapshots on a profile's host (every pool host); without PROFILE, on every host it saved snapshots on",
      )
      .argument("[profile]", "profile name or YAML file")
      .option(
        "--set <path=value>",
        "override a profile field (repeatable)",
        collect,
        [] as string[],
      )
      .option(
        "--json",
        "print a JSON array: one object per host with its snapshots and what was left alone",
      )
      .action(async (profile: string | undefined, options) => {
        const scans = await (await ctx.manager()).snapshots(profile, {
          overrides: options.set,
          signal: ctx.signal,
        });
        if (options.json) return ctx.output.out(json(scans));
        ctx.output.out(table(scans));
      }) as unknown as Command,
  );
  snapshot.addCommand(
    new Command("rm")
      .description(
        "Remove a snapshot (only one whose marker says it is this sandboxer's; symlinks are never followed)",
      )
      .argument("<name>", "the snapshot's name")
      .option(
        "-p, --profile <name|file>",
        "the profile whose host keeps it (default: search the hosts this sandboxer saved snapshots on)",
      )
      .option(
        "--set <path=value>",
        "override a profile field (repeatable)",
        collect,
        [] as string[],
      )
      .option("--json", "print what was removed as JSON")
      .action(async (name: string, options) => {
        if (options.set.length && options.profile === undefined) {
          throw new UsageError("Cannot use --set without --profile: it overrides that profile");
        }
        const removed = await (await ctx.manager()).removeSnapshot(options.profile, name, {
          overrides: options.set,
          signal: ctx.signal,
        });
        if (options.json) return ctx.output.out(json(removed));
        ctx.output.out(
          escapeControl(`removed ${removed.name} ${removed.path} on ${removed.target}`) + "\n",
        );
      }) as unknown as Command,
  );
  return snapshot;
}

/** Parse `snapshot --ttl`: a ttl (at most 365d), and at least a minute. */
function snapshotTtl(value: string): number {
  const seconds = ttlSeconds(value);
  if (seconds < 60) {
    throw new UsageError(`Cannot use --ttl ${value}: a snapshot is kept at least 1m`);
  }
  return seconds;
}

function size(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.ceil(bytes / 1024)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function table(scans: readonly SnapshotScan[]): string {
  const all: SnapshotInfo[] = scans.flatMap((scan) => scan.snapshots);
  const lines: string[] = [];
  if (!all.length) lines.push("No snapshots.");
  else {
    const rows = [["NAME", "SIZE", "CREATED", "EXPIRES", "SOURCE", "HOST"]];
    for (const s of all) {
      rows.push([s.name, size(s.bytes), s.created, s.expires, s.source, s.target]);
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    lines.push(...rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()));
  }
  for (const scan of scans) {
    for (const i of scan.ignored) lines.push(`left alone ${i.path} on ${scan.target}: ${i.reason}`);
  }
  return lines.map(escapeControl).join("\n") + "\n";
}
