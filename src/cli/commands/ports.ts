import { Command } from "../../deps/commander.ts";
import { UsageError } from "../../core/errors.ts";
import type { PortLease } from "../../core/ports/registry.ts";
import type { CliContext } from "../context.ts";
import { escapeControl, json } from "../output.ts";

/**
 * `sandboxer ports`, `ports register NAME [PORT]`, `ports release NAME`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function portsCommand(ctx: CliContext) {
  const ports = new Command("ports")
    .description(
      "List the local ports leased to sandboxes' VMs and to registered VMs (range SANDBOXER_PORT_RANGE, default 12222-12299)",
    )
    .option("--json", "print a JSON array")
    .action(async (options) => {
      const registry = (await ctx.manager()).ports();
      const leases = await registry.list();
      if (options.json) return ctx.output.out(json(leases));
      ctx.output.out(table(leases, `${registry.range.first}-${registry.range.last}`));
    });
  ports.addCommand(
    new Command("register")
      .description(
        "Record a long-lived VM (e.g. a build VM behind a reverse tunnel) under NAME on PORT, or on a free port of the range; attach profiles name it with target.vm",
      )
      .argument("<name>", "the VM's name, e.g. haskell-1")
      .argument("[port]", "its port (default: a free port of the range)")
      .action(async (name, port) => {
        const number = port === undefined ? undefined : Number(port);
        if (port !== undefined && !/^\d{1,5}$/.test(port)) {
          throw new UsageError(`Cannot register port ${JSON.stringify(port)}: give a number`);
        }
        const lease = await (await ctx.manager()).ports().register(name, number);
        ctx.output.out(`registered ${lease.name} on port ${lease.port}\n`);
      }) as unknown as Command,
  );
  ports.addCommand(
    new Command("release")
      .description("Forget a registered VM and free its port")
      .argument("<name>", "the registered name")
      .action(async (name) => {
        const lease = await (await ctx.manager()).ports().releaseVm(name);
        ctx.output.out(`released port ${lease.port} of ${lease.name}\n`);
      }) as unknown as Command,
  );
  return ports;
}

function table(leases: readonly PortLease[], range: string): string {
  if (!leases.length) return `No ports leased (range ${range}).\n`;
  const rows = [["PORT", "KIND", "NAME", "SINCE"]];
  for (const l of leases) rows.push([String(l.port), l.kind, l.name, l.created_at]);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => escapeControl(r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()))
    .join("\n") + "\n";
}
