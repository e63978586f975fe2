// exec behaves like ssh: stdin passes through (streamed), -n gives none, -e sets variables with
// literal values, -w runs in a directory of the workspace resolved on the host (a symlink out is
// refused), --timeout kills the command and exits 124; -t gives a PTY, with -w and -n too. Real
// sshd, the CLI's exact flags.
import assert from "node:assert/strict";
import { spawnSandboxer, textOf } from "../helpers.ts";
import { createOk, startTestVm, type TestVm } from "../harness/test_vm.ts";

/** Run the CLI with `input` on its stdin. */
async function cliWithStdin(vm: TestVm, args: readonly string[], input: Uint8Array) {
  const child = await spawnSandboxer(args, vm.env, { stdin: "piped" });
  const writer = child.stdin.getWriter();
  await writer.write(input);
  await writer.close();
  return textOf(await child.output());
}

/** The one line a failing command printed, after checking it is one line. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, stderr);
  assert.doesNotMatch(stderr, /internal error|at .*\.ts:\d+/);
  return lines[0];
}

/** Each `-w DIR` (with `flags`) is refused in one line, exit 125, and no command ran. */
async function assertWorkdirsRefused(vm: TestVm, flags: string[], dirs: string[]): Promise<void> {
  const canary = `${vm.dir}/canary${flags.join("")}`;
  await Deno.writeTextFile(canary, "");
  for (const dir of dirs) {
    const result = await vm.cli(["exec", ...flags, "-w", dir, "x1", "--", "rm", "-f", canary]);
    assert.equal(result.code, 125, `${dir}: ${result.stderr}`);
    assert.match(
      oneLine(result.stderr),
      dir === "missing"
        ? /refused the working directory: missing is not a directory in the workspace/
        : /refused the working directory: .* outside the workspace; give -w a directory inside/,
    );
    assert.equal(result.stdout, "");
  }
  await Deno.stat(canary); // no command ran
}

Deno.test("exec: stdin, -n, -e, -w (hostile too) and --timeout", async (t) => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "x1"]);
  const workspace = `${vm.root}/sbx-x1`;

  await t.step("stdin reaches the command, streamed and byte-exact", async () => {
    const hi = await cliWithStdin(
      vm,
      ["exec", "x1", "--", "cat"],
      new TextEncoder().encode("hi\n"),
    );
    assert.equal(hi.code, 0, hi.stderr);
    assert.equal(hi.stdout, "hi\n");
    // More than one SSH window (2 MiB) of binary data, counted on the far side.
    const big = new Uint8Array(5 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
    const counted = await cliWithStdin(vm, ["exec", "x1", "--", "wc", "-c"], big);
    assert.equal(counted.code, 0, counted.stderr);
    assert.equal(counted.stdout.trim(), String(big.length));
  });
  await t.step("a command that never reads stdin still ends", async () => {
    const child = await spawnSandboxer(["exec", "x1", "--", "true"], vm.env, { stdin: "piped" });
    const result = textOf(await child.output()); // stdin left open
    assert.equal(result.code, 0, result.stderr);
  });
  await t.step("-n gives the command no stdin", async () => {
    const result = await cliWithStdin(
      vm,
      ["exec", "-n", "x1", "--", "cat"],
      new TextEncoder().encode("not for you\n"),
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "");
  });
  await t.step("-e sets variables; values stay literal", async () => {
    const value = "a b; $(touch pwned) `id` 'q\"";
    const result = await vm.cli([
      "exec",
      "-e",
      `GREETING=${value}`,
      "-e",
      "EMPTY=",
      "x1",
      "--",
      "sh",
      "-c",
      'printf "%s|%s|" "$GREETING" "${EMPTY-unset}"',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${value}||`);
    assert.equal((await vm.cli(["exec", "x1", "--", "test", "!", "-e", "pwned"])).code, 0);
    for (const bad of ["1X=y", "A-B=c", "=v", "NOEQUALS", "A B=c"]) {
      const refused = await vm.cli(["exec", "-e", bad, "x1", "--", "true"]);
      assert.equal(refused.code, 125, bad);
      assert.match(oneLine(refused.stderr), /Cannot use -e .*write NAME=VALUE/);
    }
  });
  await t.step("-w runs in a directory of the workspace, symlinks resolved", async () => {
    assert.equal((await vm.cli(["exec", "x1", "--", "mkdir", "-p", "sub/deep"])).code, 0);
    assert.equal((await vm.cli(["exec", "x1", "--", "ln", "-s", "sub/deep", "inside"])).code, 0);
    const there = await vm.cli(["exec", "-w", "sub/deep", "x1", "--", "pwd", "-P"]);
    assert.equal(there.code, 0, there.stderr);
    assert.equal(there.stdout.trim(), `${workspace}/sub/deep`);
    const viaLink = await vm.cli(["exec", "-w", "inside", "x1", "--", "pwd", "-P"]);
    assert.equal(viaLink.stdout.trim(), `${workspace}/sub/deep`);
  });
  await t.step("a hostile -w is refused before the command runs", async () => {
    assert.equal((await vm.cli(["exec", "x1", "--", "ln", "-s", "/", "escape"])).code, 0);
    assert.equal((await vm.cli(["exec", "x1", "--", "ln", "-s", "..", "up"])).code, 0);
    const dirs = ["escape", "escape/etc", "up", "..", "/", "/etc", "sub/../..", "missing"];
    await assertWorkdirsRefused(vm, [], dirs);
  });
  await t.step("--timeout kills the command and exits 124", async () => {
    const started = Date.now();
    // A duration no other test uses: the login user is shared with tests running beside this one.
    const result = await vm.cli(["exec", "--timeout", "2s", "x1", "--", "sleep", "6017"]);
    assert.equal(result.code, 124, result.stderr);
    assert.match(oneLine(result.stderr), /ran past --timeout 2s and was killed/);
    assert.ok(Date.now() - started < 30_000);
    // The kill reaches the host as the CLI exits: allow it up to 5 s to land.
    const gone = await vm.cli([
      "exec",
      "x1",
      "--",
      "sh",
      "-c",
      "for i in $(seq 50); do pgrep -xf 'sleep 6017' -u \"$(id -u)\" >/dev/null || exit 0; sleep 0.1; done; exit 1",
    ]);
    assert.equal(gone.code, 0, "the remote sleep was killed");
    const fast = await vm.cli(["exec", "--timeout", "1m", "x1", "--", "sh", "-c", "exit 3"]);
    assert.equal(fast.code, 3);
    const bad = await vm.cli(["exec", "--timeout", "soon", "x1", "--", "true"]);
    assert.equal(bad.code, 125);
    assert.match(oneLine(bad.stderr), /Cannot use --timeout soon/);
  });
  await t.step("-t runs the command on a PTY; its code, -e and --timeout still apply", async () => {
    const plain = await vm.cli(["exec", "x1", "--", "sh", "-c", "tty; true"]);
    assert.match(plain.stdout, /not a tty/);
    const tty = await vm.cli([
      "exec",
      "-t",
      "-e",
      "WHO=pty",
      "x1",
      "--",
      "sh",
      "-c",
      'tty; echo "$WHO"; pwd -P; exit 4',
    ]);
    assert.equal(tty.code, 4, tty.stderr);
    assert.match(tty.stdout, /^\/dev\/pts\/\d+\r?$/m);
    assert.match(tty.stdout, /^pty\r?$/m);
    assert.ok(tty.stdout.includes(workspace), tty.stdout);
    const slow = await vm.cli(["exec", "-t", "--timeout", "2s", "x1", "--", "sleep", "60"]);
    assert.equal(slow.code, 124, slow.stderr);
    assert.match(oneLine(slow.stderr), /ran past --timeout 2s/);
  });
  await t.step("-t with -w runs on a PTY in the directory the host resolves", async () => {
    // sub/deep and the symlink "inside" → sub/deep were made by the -w step above.
    const there = await vm.cli([
      "exec",
      "-t",
      "-w",
      "inside",
      "x1",
      "--",
      "sh",
      "-c",
      "tty; pwd -P",
    ]);
    assert.equal(there.code, 0, there.stderr);
    assert.match(there.stdout, /^\/dev\/pts\/\d+\r?$/m);
    assert.match(there.stdout, new RegExp(`^${workspace}/sub/deep\r?$`, "m"));
    const withEnv = await vm.cli([
      "exec",
      "-t",
      "-e",
      "WHO=pty",
      "-w",
      "sub",
      "x1",
      "--",
      "sh",
      "-c",
      'echo "$WHO in $(pwd -P)"; exit 6',
    ]);
    assert.equal(withEnv.code, 6, withEnv.stderr);
    assert.match(withEnv.stdout, new RegExp(`^pty in ${workspace}/sub\r?$`, "m"));
  });
  await t.step("-t with a hostile -w is refused in one line, exit 125, before a PTY", async () => {
    await assertWorkdirsRefused(vm, ["-t"], ["../..", "escape", "up", "missing"]);
  });
  await t.step("-t with -n: a PTY, and the caller's stdin is not read", async () => {
    const script = "tty; timeout 3 cat; echo cat=$?";
    const withStdin = await cliWithStdin(
      vm,
      ["exec", "-t", "x1", "--", "sh", "-c", script],
      new TextEncoder().encode("secret-input\n"),
    );
    assert.match(withStdin.stdout, /secret-input/, "without -n, stdin reaches the PTY");
    const noStdin = await cliWithStdin(
      vm,
      ["exec", "-t", "-n", "x1", "--", "sh", "-c", script],
      new TextEncoder().encode("secret-input\n"),
    );
    assert.equal(noStdin.code, 0, noStdin.stderr);
    assert.match(noStdin.stdout, /^\/dev\/pts\/\d+\r?$/m);
    assert.match(noStdin.stdout, /^cat=\d+\r?$/m);
    assert.doesNotMatch(noStdin.stdout, /secret-input/);
  });
  await t.step("exec's options after the id are refused with where they go", async () => {
    const result = await vm.cli(["exec", "x1", "--timeout", "1m", "--", "true"]);
    assert.equal(result.code, 125);
    assert.match(oneLine(result.stderr), /exec's options go before it/);
  });
  assert.equal((await vm.cli(["destroy", "x1"])).code, 0);
});
