import assert from "node:assert/strict";
import { remoteCommand, shellQuote } from "./quote.ts";
import { HOSTILE_WORDS, hostileStrings } from "../testing/hostile_strings.ts";

const decoder = new TextDecoder();

/** Shells to round-trip through; each is skipped when not installed. */
const SHELLS: readonly (readonly string[])[] = [["sh"], ["dash"], ["bash"], ["busybox", "sh"]];

async function available(shell: readonly string[]): Promise<boolean> {
  try {
    const out = await new Deno.Command(shell[0], {
      args: [...shell.slice(1), "-c", "true"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch (error) {
    // A missing shell is skipped; a missing --allow-run must fail loudly, not skip everything.
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Let a real shell parse `script` (which is built from shellQuote output, the
 * thing under test) and return the NUL-separated words printf saw.
 */
async function shellWords(shell: readonly string[], script: string): Promise<string[]> {
  const out = await new Deno.Command(shell[0], {
    args: [...shell.slice(1), "-c", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, `${shell.join(" ")} failed: ${decoder.decode(out.stderr)}`);
  const text = decoder.decode(out.stdout);
  assert.ok(text.endsWith("\0"), "printf output must end with NUL");
  return text.slice(0, -1).split("\0");
}

async function assertRoundTrip(args: readonly string[]): Promise<void> {
  let shells = 0;
  for (const shell of SHELLS) {
    if (!(await available(shell))) continue;
    shells++;
    const words = await shellWords(shell, 'printf "%s\\0" ' + shellQuote(args));
    assert.deepEqual(words, args, `round trip through ${shell.join(" ")}`);
  }
  assert.ok(shells > 0, "no POSIX shell found to test against");
}

Deno.test("shellQuote() leaves safe words bare", () => {
  assert.equal(
    shellQuote(["ls", "-la", "/a/b.c", "x=1", "u@h:2,3%+"]),
    "ls -la /a/b.c x=1 u@h:2,3%+",
  );
});

Deno.test("shellQuote() single-quotes everything else", () => {
  assert.equal(shellQuote([""]), "''");
  assert.equal(shellQuote(["a b"]), "'a b'");
  assert.equal(shellQuote(["it's"]), `'it'"'"'s'`);
  assert.equal(shellQuote(["$HOME"]), "'$HOME'");
  assert.equal(shellQuote(["~"]), "'~'");
  assert.equal(shellQuote([]), "");
});

Deno.test("shellQuote() refuses NUL and lone surrogates", () => {
  assert.throws(() => shellQuote(["a\0b"]), TypeError);
  assert.throws(() => shellQuote(["\ud800"]), TypeError);
  assert.throws(() => shellQuote(["x\udc00y"]), TypeError);
  // A proper pair is fine.
  assert.equal(shellQuote(["😀"]), "'😀'");
});

Deno.test("shellQuote() round-trips hand-picked hostile words through real shells", async () => {
  await assertRoundTrip(HOSTILE_WORDS);
  for (const word of HOSTILE_WORDS) await assertRoundTrip(["prefix", word, "suffix"]);
});

Deno.test("shellQuote() round-trips 500 generated hostile words through real shells", async () => {
  const seed = 0x5bd1e995;
  const words = hostileStrings(seed, 500);
  // Batches keep the process count low while still mixing neighbours.
  for (let i = 0; i < words.length; i += 50) {
    const batch = words.slice(i, i + 50);
    try {
      await assertRoundTrip(batch);
    } catch (error) {
      throw new Error(`seed ${seed}, batch at ${i}`, { cause: error });
    }
  }
});

Deno.test("remoteCommand() builds cd && exec", () => {
  assert.equal(remoteCommand(["echo", "hi"]), "exec echo hi");
  assert.equal(remoteCommand(["ls"], { cwd: "/a b" }), "cd -- '/a b' && exec ls");
  assert.throws(() => remoteCommand([]), TypeError);
  assert.throws(() => remoteCommand(["-x"]), TypeError);
});

Deno.test("remoteCommand() runs in a hostile cwd and does not run when cd fails", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sbx-quote-" });
  try {
    const cwd = `${dir}/it's $(x) \`y\` ;&|\n*`;
    await Deno.mkdir(cwd);
    for (const shell of SHELLS) {
      if (!(await available(shell))) continue;
      const words = await shellWords(
        shell,
        remoteCommand([
          "sh",
          "-c",
          'printf "%s\\0" "$PWD" "$@"',
          "sh",
          ...HOSTILE_WORDS.slice(0, 30),
        ], {
          cwd,
        }),
      );
      assert.deepEqual(words, [cwd, ...HOSTILE_WORDS.slice(0, 30)]);
      const out = await new Deno.Command(shell[0], {
        args: [...shell.slice(1), "-c", remoteCommand(["echo", "ran"], { cwd: `${dir}/missing` })],
        stdout: "piped",
        stderr: "null",
      }).output();
      assert.notEqual(out.code, 0);
      assert.equal(decoder.decode(out.stdout), "");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
