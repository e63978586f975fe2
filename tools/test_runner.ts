/**
 * Runs sandboxer's test suite the way `tools/test.sh` (and so CI) does:
 *
 * 1. the checks: `deno fmt --check`, `deno lint`, `deno task check`, `deno check --doc` and
 *    `deno doc --lint` on the three entry points (mod.ts, extension.ts, errors.ts; the doc check
 *    covers the JSDoc examples of src/ too),
 *    `deno publish --dry-run`;
 * 2. the parallel phase: every test file except those listed in `tests/serial.txt`, with
 *    `deno test --parallel`;
 * 3. the serial phase: the files of `tests/serial.txt`, one at a time, so that tests that load the
 *    machine (many processes, VMs) do not share its two cores with the rest.
 *
 * Each phase's time is printed. At the end it prints every ignored test with the reason in its
 * name (`skipIf()` in tests/helpers.ts), and as the very last line
 * `N passed, M failed, K ignored`, summed over the phases (tests, not steps; a failed check counts
 * as one failure; an ignored step counts as ignored). With `CI=true` an ignored test whose name
 * and reason are not in `tests/allowed_skips.json` fails the run.
 *
 * Tests that need a system login user make it under the name in `SANDBOXER_TEST_USER`; the runner
 * picks a fresh one per run (`sbxt-` and 8 hex digits) and removes it (`userdel -r`) at the end,
 * so a run leaves no user behind. A name given by the caller is the caller's to remove.
 *
 * Usage: `deno task test` (what `bash tools/test.sh` runs). Environment: `CI`,
 * `SANDBOXER_TEST_USER`, `SANDBOXER_TEST_PHASE_TIMEOUT` (minutes per phase, default 45).
 *
 * @module
 */

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const DENO = Deno.execPath();
/** What every test process may do (the tests start sshd, dockerd, useradd…). */
const TEST_FLAGS = [
  "--frozen",
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-run",
  "--allow-env",
  "--allow-sys",
];
/** The prefix of the login users this runner makes, and the only ones it removes. */
const USER_PREFIX = "sbxt-";

const encoder = new TextEncoder();
const say = (text: string) => Deno.stdout.writeSync(encoder.encode(text + "\n"));

/** One ignored test or step. */
export interface Ignored {
  /** The test file, as Deno names it (`./tests/x_test.ts`). */
  file: string;
  /** The name without the `[skipped: …]` suffix (a step is `test > step`). */
  name: string;
  /** The reason from the name, or undefined when the test gave none. */
  reason: string | undefined;
}

/** What one `deno test` run reported. */
export interface PhaseResult {
  /** Tests that passed (not counting steps). */
  passed: number;
  /** Tests that failed (not counting steps), at least 1 when deno test failed without a summary. */
  failed: number;
  /** Every ignored test and step. */
  ignored: Ignored[];
}

/**
 * Read the summary line of `deno test` (`ok | 3 passed (2 steps) | 1 failed | 2 ignored (1s)`).
 *
 * @param output deno test's standard output.
 * @returns The counts of tests (not steps), or undefined when there is no summary.
 */
export function parseSummary(output: string): { passed: number; failed: number } | undefined {
  const line = output.split("\n").reverse().find((l) => /^(ok|FAILED) \| \d+ passed/.test(l));
  if (line === undefined) return undefined;
  const count = (word: string) => Number(new RegExp(`(\\d+) ${word}`).exec(line)?.[1] ?? 0);
  return { passed: count("passed"), failed: count("failed") };
}

function unescapeXml(text: string): string {
  return text.replace(/&(lt|gt|quot|apos|amp|#(\d+)|#x([0-9a-fA-F]+));/g, (_, name, dec, hex) => {
    if (dec) return String.fromCodePoint(Number(dec));
    if (hex) return String.fromCodePoint(parseInt(hex, 16));
    return { lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" }[name as string] ?? "";
  });
}

/**
 * The ignored tests and steps of a JUnit report written by `deno test --junit-path`.
 *
 * @param xml The report.
 * @returns One entry per `<testcase>` with `<skipped/>`.
 */
export function parseIgnored(xml: string): Ignored[] {
  const ignored: Ignored[] = [];
  const cases =
    /<testcase name="([^"]*)" classname="([^"]*)"[^>]*?(?:\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const match of xml.matchAll(cases)) {
    if (!/<skipped\s*\/>/.test(match[3] ?? "")) continue;
    const full = unescapeXml(match[1]);
    const reason = /^(.*?) \[skipped: (.*)\]((?: > .*)?)$/.exec(full);
    ignored.push({
      file: unescapeXml(match[2]),
      // A step of a skipped test carries its parent's reason: `parent [skipped: r] > step`.
      name: reason ? reason[1] + reason[3] : full,
      reason: reason?.[2],
    });
  }
  return ignored;
}

/** An entry of tests/allowed_skips.json. */
export interface AllowedSkip {
  /** The test's name without the `[skipped: …]` suffix. */
  name: string;
  /** The exact reason it may be skipped for under CI. */
  reason: string;
  /** Why that is acceptable (for readers; not compared). */
  why?: string;
}

/**
 * The ignored tests that `allowed` does not allow (same name and same reason).
 *
 * @param ignored What the run ignored.
 * @param allowed The allow list.
 * @returns Those not allowed, in order.
 */
export function notAllowed(
  ignored: readonly Ignored[],
  allowed: readonly AllowedSkip[],
): Ignored[] {
  return ignored.filter((i) =>
    !allowed.some((a) => a.name === i.name && i.reason !== undefined && a.reason === i.reason)
  );
}

/**
 * The test files of `tests/serial.txt`: one path (relative to the repository) a line; `#`
 * starts a comment.
 *
 * @param text The file's text.
 * @returns The paths.
 */
export function parseSerialList(text: string): string[] {
  return text.split("\n").map((line) => line.replace(/#.*/, "").trim()).filter((l) => l !== "");
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

/** Run a program with inherited output; its exit code, or -1 when it ran past `timeoutMs`. */
async function runInherited(
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
  capture?: (text: string) => void,
): Promise<number> {
  const child = new Deno.Command(args[0], {
    args: args.slice(1),
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: capture ? "piped" : "inherit",
    stderr: "inherit",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    say(`test runner: ${args.slice(0, 3).join(" ")} ran past ${duration(timeoutMs)}; stopping it`);
    child.kill("SIGTERM");
    setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, 10_000);
  }, timeoutMs);
  if (capture && child.stdout) {
    // Pass deno test's output through as it comes (a long phase shows progress) and keep it.
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      await Deno.stdout.write(chunk);
      capture(decoder.decode(chunk, { stream: true }));
    }
  }
  const status = await child.status;
  clearTimeout(timer);
  return timedOut ? -1 : status.code;
}

async function runPhase(
  label: string,
  files: string[],
  extra: string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<PhaseResult> {
  const junit = await Deno.makeTempFile({ prefix: "sbx-junit-", suffix: ".xml" });
  try {
    let output = "";
    const started = performance.now();
    say(`== phase ${label}`);
    const code = await runInherited(
      [DENO, "test", ...TEST_FLAGS, ...extra, `--junit-path=${junit}`, ...files],
      env,
      timeoutMs,
      (text) => output += text,
    );
    const summary = parseSummary(output);
    const xml = await Deno.readTextFile(junit).catch(() => "");
    const result: PhaseResult = {
      passed: summary?.passed ?? 0,
      failed: summary?.failed ?? 0,
      ignored: parseIgnored(xml),
    };
    if (code !== 0 && result.failed === 0) {
      // deno test failed without a failing test (a type error, a crash, the deadline): count it.
      result.failed = 1;
      say(`phase ${label}: deno test exited ${code} without a failing test; counted as 1 failure`);
    }
    say(
      `== phase ${label}: ${result.passed} passed, ${result.failed} failed, ` +
        `${result.ignored.length} ignored in ${duration(performance.now() - started)}`,
    );
    return result;
  } finally {
    await Deno.remove(junit).catch(() => {});
  }
}

async function runChecks(env: Record<string, string>): Promise<number> {
  const checks: [string, string[]][] = [
    ["deno fmt --check", ["fmt", "--check"]],
    ["deno lint", ["lint"]],
    ["deno task check", ["task", "-q", "check"]],
    ["deno check --doc", [
      "check",
      "--quiet",
      "--doc",
      "mod.ts",
      "extension.ts",
      "errors.ts",
      "src/",
    ]],
    ["deno doc --lint", ["doc", "--lint", "mod.ts", "extension.ts", "errors.ts"]],
    ["deno publish --dry-run", ["publish", "--dry-run", "--allow-dirty", "--quiet"]],
  ];
  const started = performance.now();
  say("== checks");
  let failed = 0;
  for (const [name, args] of checks) {
    const code = await runInherited([DENO, ...args], env, 15 * 60_000);
    if (code !== 0) {
      failed++;
      say(`check failed: ${name} (exit ${code})`);
    }
  }
  say(
    `== checks: ${checks.length - failed} passed, ${failed} failed in ${
      duration(performance.now() - started)
    }`,
  );
  return failed;
}

async function commandOk(program: string, args: string[]): Promise<boolean> {
  try {
    const out = await new Deno.Command(program, { args, stdout: "null", stderr: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** Remove the per-run login user, if this runner named it and a test made it. */
async function removeTestUser(name: string): Promise<void> {
  if (!name.startsWith(USER_PREFIX) || Deno.uid() !== 0) return;
  if (!(await commandOk("getent", ["passwd", name]))) return;
  const out = await new Deno.Command("userdel", { args: ["-r", name], stderr: "piped" }).output();
  // userdel -r says "mail spool not found" on Debian; only its exit code matters.
  if (out.success || (await commandOk("getent", ["passwd", name])) === false) {
    say(`test runner: removed the test login user ${name}`);
  } else {
    say(
      `test runner: could not remove the test login user ${name}: ` +
        `${new TextDecoder().decode(out.stderr).trim()}; remove it with: userdel -r ${name}`,
    );
  }
}

async function main(): Promise<number> {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
  const ownUser = env.SANDBOXER_TEST_USER === undefined;
  if (ownUser) {
    const hex = Array.from(crypto.getRandomValues(new Uint8Array(4)))
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    env.SANDBOXER_TEST_USER = `${USER_PREFIX}${hex}`;
  }
  const timeoutMs = Number(env.SANDBOXER_TEST_PHASE_TIMEOUT ?? "45") * 60_000;
  const ci = env.CI === "true" || env.CI === "1";
  const serial = parseSerialList(await Deno.readTextFile(`${ROOT}/tests/serial.txt`));
  for (const file of serial) {
    try {
      await Deno.stat(`${ROOT}/${file}`);
    } catch {
      say(`tests/serial.txt names ${file}, which does not exist; fix the list`);
      say("0 passed, 1 failed, 0 ignored");
      return 1;
    }
  }
  const allowed: AllowedSkip[] = JSON.parse(
    await Deno.readTextFile(`${ROOT}/tests/allowed_skips.json`),
  ).skips;

  const started = performance.now();
  let failedChecks = 0;
  const phases: PhaseResult[] = [];
  try {
    failedChecks = await runChecks(env);
    const ignore = serial.length > 0 ? [`--ignore=${serial.join(",")}`] : [];
    phases.push(await runPhase("parallel", [], ["--parallel", ...ignore], env, timeoutMs));
    if (serial.length > 0) phases.push(await runPhase("serial", serial, [], env, timeoutMs));
  } finally {
    if (ownUser) await removeTestUser(env.SANDBOXER_TEST_USER!);
  }

  const passed = phases.reduce((n, p) => n + p.passed, 0);
  const failed = failedChecks + phases.reduce((n, p) => n + p.failed, 0);
  let refusedSkips = 0;
  const ignored = phases.flatMap((p) => p.ignored);
  say(`== total time ${duration(performance.now() - started)}`);
  for (const i of ignored) {
    say(`ignored: ${i.file} => ${i.name}: ${i.reason ?? "no reason given (use skipIf())"}`);
  }
  if (ci) {
    const refused = notAllowed(ignored, allowed);
    for (const i of refused) {
      say(
        `CI=true: "${i.name}" may not be skipped for "${i.reason ?? "no reason"}"; make it run ` +
          `here, or list it with that reason in tests/allowed_skips.json`,
      );
    }
    if (refused.length > 0) refusedSkips = refused.length;
  }
  say(`${passed} passed, ${failed} failed, ${ignored.length} ignored`);
  return failed > 0 || refusedSkips > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exitCode = await main();
