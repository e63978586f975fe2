// Copying artifacts back (`fetch`, `run --artifact`): while stderr is a terminal a progress line
// (bytes and files arrived so far) that is wiped before the one-line summary ("fetched N files, X MB in Ts");
// without a terminal only the summary; a missing artifact is one clear line, and `run` exits 125.
// Real sshd and rsync; the terminal is a real PTY (util-linux script(1)) whose raw bytes are read.
import assert from "node:assert/strict";
import { runProgram, sandboxerTaskArgv } from "../helpers.ts";
import { createOk, startTestVm, type TestVm } from "../harness/test_vm.ts";
import { shQuote } from "../docs/build_vm.ts";

/** Three files of 500 000 bytes each in `out/` (two of them in `out/sub/`). */
const MAKE_OUT =
  "mkdir -p out/sub && for f in a sub/b sub/c; do head -c 500000 /dev/urandom > out/$f; done";
const SUMMARY = /sandboxer: fetched 3 files, 1\.5 MB in \d+\.\ds \(/;

/** `run` that makes out/ and copies it back into `local`. */
const runArgs = (profile: string, local: string) => [
  "run",
  "-p",
  profile,
  "--artifact",
  `out:${local}`,
  "--",
  "sh",
  "-c",
  MAKE_OUT,
];

/**
 * Run the CLI with its stderr on a PTY (stdout to a file), and return the raw bytes the terminal
 * received, with the exit code.
 */
async function onTerminal(vm: TestVm, args: readonly string[]) {
  const env = { ...vm.env, NO_COLOR: "1", TERM: "xterm" };
  const assigns = Object.entries(env).map(([k, v]) => `${k}=${shQuote(v)}`).join(" ");
  const cli = [...await sandboxerTaskArgv(), ...args].map(shQuote).join(" ");
  const stdout = `${vm.dir}/terminal-stdout`;
  const line = `env ${assigns} ${cli} > ${shQuote(stdout)}; echo "rc=$?"`;
  const result = await runProgram("script", ["-qefc", line, "/dev/null"]);
  assert.equal(result.code, 0, result.stderr);
  const rc = /rc=(\d+)/.exec(result.stdout);
  assert.ok(rc, result.stdout);
  return { code: Number(rc[1]), terminal: result.stdout, stdout: await Deno.readTextFile(stdout) };
}

/** The progress line was shown, then wiped (`\r` + erase line) right before the summary. */
function assertWipedBeforeSummary(terminal: string, label: string): void {
  const at = terminal.search(SUMMARY);
  assert.ok(at > 0, `no summary:\n${JSON.stringify(terminal)}`);
  const before = terminal.slice(0, at);
  assert.ok(before.includes(`\r\x1b[K${label}: `), `no progress line:\n${JSON.stringify(before)}`);
  assert.match(before, new RegExp(`${label}: [\\d.]+ MiB, \\d+ files?`));
  assert.ok(
    before.endsWith("\r\x1b[K"),
    `not wiped before the summary:\n${JSON.stringify(before)}`,
  );
  assert.ok(!terminal.slice(at).includes(`${label}: `), "no progress after the summary");
}

Deno.test("fetch and run --artifact: progress on a terminal, then one summary line", async (t) => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "b1"]);
  assert.equal((await vm.cli(["exec", "b1", "--", "sh", "-c", MAKE_OUT])).code, 0);

  await t.step("fetch without a terminal: only the summary", async () => {
    const local = `${vm.dir}/plain`;
    const result = await vm.cli(["fetch", "b1", "out", local]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`^${SUMMARY.source}out from b1 into ${local}\\)\\n$`),
    );
    assert.equal((await Deno.stat(`${local}/out/sub/c`)).size, 500000);
  });
  await t.step("fetch on a terminal: a progress line, wiped before the summary", async () => {
    const local = `${vm.dir}/tty`;
    const result = await onTerminal(vm, ["fetch", "b1", "out", local]);
    assert.equal(result.code, 0, result.terminal);
    assertWipedBeforeSummary(result.terminal, "fetch");
    assert.equal(result.stdout, "");
    assert.equal((await Deno.stat(`${local}/out/a`)).size, 500000);
  });
  await t.step("fetch of a missing path: one clear line, no rsync output", async () => {
    const result = await onTerminal(vm, ["fetch", "b1", "nope.txt", `${vm.dir}/none`]);
    assert.equal(result.code, 1);
    // What the terminal shows: each line as the last erase-line (ESC [K) left it.
    const visible = (line: string) =>
      line.slice(line.lastIndexOf("\x1b[K") + 1).replace(/^\[K/, "");
    const lines = result.terminal.split("\r\n").map(visible)
      .filter((l) => l !== "" && !l.startsWith("rc="));
    assert.deepEqual(lines, [
      `sandboxer: error: Workspace ${vm.root}/sbx-b1 has no nope.txt to copy back; give a path relative to the workspace (see what is there with sandboxer exec ID -- ls)`,
    ]);
  });
  assert.equal((await vm.cli(["destroy", "b1"])).code, 0);

  await t.step("run --artifact on a terminal: progress, then the summary", async () => {
    const local = `${vm.dir}/ran`;
    const result = await onTerminal(vm, runArgs(profile, local));
    assert.equal(result.code, 0, result.terminal);
    assertWipedBeforeSummary(result.terminal, "fetch");
    assert.match(result.terminal, new RegExp(`${SUMMARY.source}out into ${local}\\)`));
    assert.equal((await Deno.stat(`${local}/out/sub/b`)).size, 500000);
  });
  await t.step("run --artifact without a terminal: the summary only", async () => {
    const local = `${vm.dir}/ran-plain`;
    const result = await vm.cli(runArgs(profile, local));
    assert.equal(result.code, 0, result.stderr);
    assert.ok(!result.stderr.includes("\x1b") && !result.stderr.includes("fetch: "), result.stderr);
    const summaries = result.stderr.split("\n").filter((l) => l.includes("fetched"));
    assert.equal(summaries.length, 1, result.stderr);
    assert.match(summaries[0], new RegExp(`^${SUMMARY.source}out into ${local}\\)$`));
  });
  await t.step("run with a missing artifact: one clear line, exit 125", async () => {
    const result = await vm.cli(["run", "-p", profile, "--artifact", "nope.txt", "--", "true"]);
    assert.equal(result.code, 125, result.stderr);
    const errors = result.stderr.split("\n").filter((l) => l.startsWith("sandboxer: error:"));
    assert.equal(errors.length, 1, result.stderr);
    assert.match(errors[0], /has no nope\.txt to copy back; give a path relative to the workspace/);
    assert.doesNotMatch(result.stderr, /rsync|link_stat|No such file/);
    assert.deepEqual(await vm.rootEntries(), [], "the run's sandbox is gone");
  });
});
