import { Command } from "../../deps/commander.ts";
import type { CliContext } from "../context.ts";
import { escapeControl } from "../output.ts";

/**
 * `sandboxer doctor --profile P`: one line per check, ✓ or ✗ (and the fix), `-` for what cannot
 * be checked; exits 1 unless every check passed.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function doctorCommand(ctx: CliContext) {
  return new Command("doctor")
    .description(
      "Check that a profile's sandboxes can be made: profile, host, key, login, root, rsync, setup (boot mode: packer, qemu, accelerator, state, image)",
    )
    .requiredOption("--profile <name>", "profile name or file")
    .action(async (options: { profile: string }) => {
      // Loaded in the action: a static import would load ssh2 and the manager for every CLI call.
      const { doctor } = await import("../../sandbox/doctor.ts");
      const checks = await doctor(await ctx.manager(), options.profile, {
        acceptNewHostKey: ctx.flags.acceptNewHostKey ?? false,
        signal: ctx.signal,
        onCheck: (check) => {
          const mark = check.ok === true ? "✓" : check.ok === false ? "✗" : "-";
          const fix = check.fix ? `\n    fix: ${escapeControl(check.fix)}` : "";
          const note = check.note ? `\n    note: ${escapeControl(check.note)}` : "";
          // Lines carry text from the host and the profile: no terminal controls.
          ctx.output.out(`${mark} ${escapeControl(check.line)}${fix}${note}\n`);
        },
      });
      ctx.exitCode = checks.every((c) => c.ok === true) ? 0 : 1;
    });
}
