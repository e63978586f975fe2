/**
 * The one POSIX shell quoter. Every string that a remote shell parses (an
 * ssh exec request, rsync's `-e` value) is built here, from an argv, and
 * nowhere else.
 *
 * Arguments are JavaScript strings (UTF-16) and travel as UTF-8. A raw byte
 * sequence that is not valid UTF-8 (such as a Latin-1 file name) cannot be
 * passed; a string holding a lone surrogate half cannot be encoded to UTF-8
 * without silently becoming U+FFFD, so it is refused with a `TypeError`
 * rather than altered.
 *
 * The output is for POSIX shells (sh, dash, bash, ksh, zsh). A remote login
 * shell such as csh or fish would parse it differently.
 *
 * @module
 */

/** Characters that never need quoting in any POSIX shell position. */
const SAFE_ARG = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Quote one argument. Safe words stay bare; everything else is wrapped in
 * single quotes, inside which the shell interprets nothing, and each
 * embedded `'` becomes `'"'"'` (close, double-quoted quote, reopen). Unlike
 * backslash escapes this form also survives rsync's `-e` splitter.
 */
function quoteOne(arg: string): string {
  if (arg.includes("\0")) {
    throw new TypeError(
      "Cannot quote argument: it contains a NUL character, which no shell can pass",
    );
  }
  if (!arg.isWellFormed()) {
    throw new TypeError(
      "Cannot quote argument: it contains a lone UTF-16 surrogate, which has no UTF-8 encoding",
    );
  }
  if (arg === "") return "''";
  if (SAFE_ARG.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'"'"'`)}'`;
}

/**
 * Quote an argv so that a POSIX shell splits it back into exactly these
 * arguments, with no expansion of `$`, backticks, globs or `~`.
 *
 * @param argv The words; may be empty (yields `""`).
 * @returns The words, quoted and joined by single spaces.
 * @throws {TypeError} When a word contains NUL or a lone surrogate.
 *
 * @example Quoting hostile input
 * ```ts
 * import { shellQuote } from "./quote.ts";
 * console.log(shellQuote(["echo", "it's $HOME", ""])); // echo 'it'"'"'s $HOME' ''
 * ```
 */
export function shellQuote(argv: readonly string[]): string {
  return argv.map(quoteOne).join(" ");
}

/** Options for {@linkcode remoteCommand}. */
export interface RemoteCommandOptions {
  /** Directory to run in; the command does not run if `cd` fails. */
  cwd?: string;
}

/**
 * Build the command string for an SSH exec request: optionally change
 * directory, then `exec` the program so that its exit status or signal is
 * the session's own (no shell stays in between).
 *
 * Because of `exec`, `argv[0]` must be a program on the remote PATH (or a
 * path), not a shell builtin or function; set variables with
 * `["env", "NAME=value", "program", ...]`.
 *
 * @param argv The program and its arguments; must not be empty.
 * @param options Working directory.
 * @returns `cd -- DIR && exec ARGV`, or `exec ARGV`.
 * @throws {TypeError} When argv is empty, `argv[0]` starts with `-`, or a word cannot be quoted.
 *
 * @example
 * ```ts
 * import { remoteCommand } from "./quote.ts";
 * console.log(remoteCommand(["ls", "-la"], { cwd: "/build/sbx 1" })); // cd -- '/build/sbx 1' && exec ls -la
 * ```
 */
export function remoteCommand(argv: readonly string[], options: RemoteCommandOptions = {}): string {
  if (argv.length === 0) throw new TypeError("Cannot build a remote command: argv is empty");
  // dash's `exec` has no `--`, so a leading "-" would be read as an option of exec itself.
  if (argv[0].startsWith("-")) {
    throw new TypeError(
      `Cannot build a remote command: program ${JSON.stringify(argv[0])} starts with "-"; use "./${
        argv[0]
      }" or a full path`,
    );
  }
  const command = `exec ${shellQuote(argv)}`;
  return options.cwd === undefined ? command : `cd -- ${shellQuote([options.cwd])} && ${command}`;
}
