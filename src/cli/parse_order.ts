/**
 * Two fixes to how commander reads a command line: global options may follow
 * the verb, and a misspelt option is reported as unknown rather than as a
 * missing required option.
 *
 * @module
 */

import type { Command } from "../deps/commander.ts";

/**
 * Move the program's own options that appear after the verb to the front, so
 * `sandboxer run --accept-new-host-key --profile P -- true` means what it says.
 * Words after `--` belong to the remote command and are never moved; a verb's
 * option of the same name (none today) would win, since it is left in place.
 *
 * @param program The program, with its subcommands added.
 * @param args The command line without the program name.
 * @returns The same words, global options first.
 */
export function hoistGlobalOptions(program: Command, args: readonly string[]): string[] {
  const verbAt = args.findIndex((arg) => !arg.startsWith("-"));
  if (verbAt < 0) return [...args];
  const verb = program.commands.find((c) => c.name() === args[verbAt]);
  if (verb === undefined) return [...args];
  const own = new Set(verb.options.flatMap((o) => [o.long, o.short]).filter(Boolean));
  const global = new Map(
    program.options.flatMap((o) =>
      [o.long, o.short].filter((f): f is string => f !== undefined).map((f) => [f, o] as const)
    ),
  );
  const moved: string[] = [];
  const kept: string[] = [];
  for (let i = verbAt + 1; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      kept.push(...args.slice(i));
      break;
    }
    const name = arg.split("=")[0];
    const option = global.get(name);
    if (option === undefined || own.has(name) || name === "-V" || name === "--version") {
      kept.push(arg);
      continue;
    }
    moved.push(arg);
    // An option that takes a value given as a separate word takes that word along.
    if (option.required && !arg.includes("=") && i + 1 < args.length) moved.push(args[++i]);
  }
  return [...args.slice(0, verbAt), ...moved, args[verbAt], ...kept];
}

interface MandatoryCheck {
  _checkForMissingMandatoryOptions(): void;
}

/**
 * Check required options after unknown ones: commander checks them first, so
 * `create --profle x` used to say `--profile` is missing instead of naming the
 * typo. The check moves to a preAction hook, which runs after commander has
 * rejected unknown options and surplus arguments.
 *
 * @param command A verb.
 */
export function checkUnknownOptionsFirst(command: Command): void {
  const internal = command as unknown as MandatoryCheck;
  const original = internal._checkForMissingMandatoryOptions.bind(command);
  internal._checkForMissingMandatoryOptions = () => {};
  command.hook("preAction", () => original());
}
