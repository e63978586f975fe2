/**
 * Reading the docs the way the doc tests need them: fenced code blocks with
 * their language, info words, line and nearest heading; the commands of a
 * `sh` block; and a bash script that runs those commands in sequence,
 * checking each exit code.
 *
 * Conventions the docs follow (see docs/extension-sdk.md, "Docs are tested"):
 * - ```sh blocks hold commands run on the workstation; every one is run by a
 *   test. A command that is expected to fail ends in a comment `# exits N`.
 * - ```sh on-the-vm blocks run on the build VM as root; they are only
 *   checked by `bash -n`.
 * - ```ts blocks are type-checked; ```ts excerpt=PATH blocks must appear
 *   verbatim in PATH.
 * - ```sh not-run and ```ts not-run blocks are run by no test (docs/testing.md);
 *   tests/docs/coverage_test.ts checks that every other block has a runner.
 *
 * @module
 */

import { ROOT, runProgram } from "../helpers.ts";

/** One fenced code block. */
export interface Block {
  /** The language (first info word), e.g. `sh`. */
  lang: string;
  /** The info words after the language. */
  info: string[];
  /** The block's text, with its indentation removed, ending in a newline. */
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The nearest heading above it, without the `#`s. */
  heading: string;
}

/**
 * Every fenced code block of a markdown text, in order.
 *
 * @param markdown The text.
 * @returns The blocks.
 */
export function fencedBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split("\n");
  let heading = "";
  for (let i = 0; i < lines.length; i++) {
    const h = /^(#{1,6})\s+(.*)$/.exec(lines[i]);
    if (h) {
      heading = h[2].trim();
      continue;
    }
    const open = /^(\s*)(`{3,})(.*)$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, infoText] = open;
    const [lang = "", ...info] = infoText.trim().split(/\s+/).filter(Boolean);
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      if (lines[j].trimStart().startsWith(fence) && lines[j].trim() === fence) break;
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j]);
    }
    blocks.push({ lang, info, code: body.join("\n") + "\n", line: i + 1, heading });
    i = j;
  }
  return blocks;
}

/** One command of a `sh` block. */
export interface DocCommand {
  /** The command as written (continuation lines joined), without its trailing comment. */
  text: string;
  /** The exit code the doc says it has (`# exits N`), else 0. */
  exit: number;
  /** 1-based line in the markdown file. */
  line: number;
}

/**
 * The commands of a `sh` block: comment and blank lines dropped, lines ending
 * in `\` joined with the next, `# exits N` read from a trailing comment.
 *
 * @param block The block.
 * @returns Its commands.
 */
export function commandsOf(block: Block): DocCommand[] {
  const commands: DocCommand[] = [];
  const lines = block.code.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let text = lines[i];
    while (text.endsWith("\\") && i + 1 < lines.length) text = text.slice(0, -1) + lines[++i];
    if (text.trim() === "" || text.trim().startsWith("#")) continue;
    let exit = 0;
    const at = commentStart(text);
    if (at !== undefined) {
      const expected = /^#\s+exits (\d+)\b/.exec(text.slice(at));
      if (expected) exit = Number(expected[1]);
      text = text.slice(0, at);
    }
    commands.push({ text: text.trim().replace(/\s+/g, " "), exit, line: block.line + 1 + start });
  }
  return commands;
}

/** Where a trailing `# comment` starts: the first `#` after a blank outside quotes. */
function commentStart(text: string): number | undefined {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"') i++;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === "\\") {
      i++;
    } else if (c === "#" && i > 0 && /\s/.test(text[i - 1])) {
      return i;
    }
  }
  return undefined;
}

/**
 * A bash script running `commands` in order in one shell (so `cd` and
 * `export` carry over), echoing each, and stopping with exit 99 and a
 * message at the first command whose exit code is not the expected one.
 *
 * @param commands The commands.
 * @param where The doc's name, for messages.
 * @returns The script.
 */
export function scriptOf(commands: readonly DocCommand[], where: string): string {
  const parts = ["set -u"];
  for (const command of commands) {
    const label = JSON.stringify(`${where}:${command.line}: ${command.text}`);
    parts.push(
      `printf '%s\\n' ${shQuote(`$ ${command.text}`)} >&2`,
      command.text,
      `rc=$?; if [ "$rc" != ${command.exit} ]; then printf 'FAILED %s: exit %s, expected %s\\n' ${
        shQuote(label)
      } "$rc" ${command.exit} >&2; exit 99; fi`,
    );
  }
  return parts.join("\n") + "\n";
}

function shQuote(text: string): string {
  return `'${text.replaceAll("'", `'"'"'`)}'`;
}

/**
 * Read a doc of this repository.
 *
 * @param path Path relative to the repository root.
 * @returns Its text.
 */
export function readDoc(path: string): Promise<string> {
  return Deno.readTextFile(`${ROOT}/${path}`);
}

/** Result of a bash script. */
export interface ScriptResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error (each command is echoed there as `$ command`). */
  stderr: string;
}

/**
 * Run a bash script.
 *
 * @param script The script.
 * @param options Working directory and the complete environment.
 * @returns Exit code and output.
 */
export async function runScript(
  script: string,
  options: { cwd: string; env: Record<string, string> },
): Promise<ScriptResult> {
  return await runProgram("bash", ["-c", script], {
    cwd: options.cwd,
    env: options.env,
    clearEnv: true,
  });
}
