/**
 * Startup probe, PROTOTYPE of a lazily loading CLI: the command tree is built
 * from commander and the version alone; a command's module (and with it the
 * manager, ssh2 and yaml) would be imported only inside its action. This is
 * what `sandboxer --version` costs when nothing else is loaded.
 *
 * @module
 */
import { Command } from "../../src/deps/commander.ts";
import { VERSION } from "../../src/cli/version.ts";

const program = new Command("sandboxer").version(VERSION, "-V, --version", "print the version");
for (const name of ["create", "list", "show", "exec", "sync", "destroy", "gc", "profiles", "run"]) {
  program.command(name).action(async () => {
    await import("../../src/cli/program.ts");
  });
}
program.exitOverride();
try {
  await program.parseAsync(Deno.args, { from: "user" });
} catch {
  // --version ends in a CommanderError after printing.
}
