import assert from "node:assert/strict";
import {
  CommandFailedError,
  MissingProgramError,
  PermissionError,
  TimeoutError,
} from "../core/errors.ts";
import { run } from "./run.ts";

Deno.test("run() captures stdout and stderr and passes stdin", async () => {
  assert.deepEqual(await run(["echo", "hello world"]), {
    code: 0,
    stdout: "hello world\n",
    stderr: "",
  });
  assert.equal((await run(["cat"], { stdin: "from stdin é" })).stdout, "from stdin é");
  assert.equal((await run(["cat"], { stdin: new Uint8Array([0x61, 0x00, 0x62]) })).stdout, "a\0b");
  // No stdin option means stdin is closed: cat must not hang.
  assert.equal((await run(["cat"])).stdout, "");
});

Deno.test("run() passes argv literally, with no shell in between", async () => {
  const hostile = ["$HOME", "`id`", "a b", "'", "*", "\n", ""];
  const { stdout } = await run(["printf", "%s\\0", ...hostile]);
  assert.deepEqual(stdout.split("\0").slice(0, -1), hostile);
});

Deno.test("run() applies cwd, env and clearEnv", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sbx-run-" });
  try {
    assert.equal((await run(["pwd"], { cwd: dir })).stdout.trim(), await Deno.realPath(dir));
    const env = await run(["env"], { env: { SBX_TEST: "1" } });
    assert.match(env.stdout, /^SBX_TEST=1$/m);
    assert.match(env.stdout, /^PATH=/m);
    const clear = await run(["/usr/bin/env"], { env: { ONLY: "this" }, clearEnv: true });
    assert.equal(clear.stdout, "ONLY=this\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run() streams chunks to the callbacks while still capturing", async () => {
  const chunks: string[] = [];
  const result = await run(["printf", "abc"], {
    onStdout: (chunk) => chunks.push(new TextDecoder().decode(chunk)),
  });
  assert.equal(chunks.join(""), "abc");
  assert.equal(result.stdout, "abc");
});

Deno.test("run() throws CommandFailedError with the stderr tail, or returns with allowFailure", async () => {
  const argv = ["ls", "/nonexistent/sbx-path"] as const;
  await assert.rejects(run(argv), (error: unknown) => {
    assert.ok(error instanceof CommandFailedError);
    assert.equal(error.exitCode, 2);
    assert.deepEqual(error.argv, argv);
    assert.match(error.stderrTail, /No such file/);
    assert.match(error.message, /^Command "ls" failed with exit code 2: .*No such file/);
    return true;
  });
  const result = await run(argv, { allowFailure: true });
  assert.equal(result.code, 2);
});

Deno.test("run() reports 128+N and the signal for a program killed by a signal", async () => {
  const result = await run(["sh", "-c", "kill -TERM $$"], { allowFailure: true });
  assert.equal(result.code, 143);
  assert.equal(result.signal, "SIGTERM");
});

Deno.test("run() names a missing program, but not for a missing cwd", async () => {
  await assert.rejects(run(["sbx-no-such-program-xyz"]), MissingProgramError);
  await assert.rejects(run(["true"], { cwd: "/nonexistent/sbx-dir" }), Deno.errors.NotFound);
});

Deno.test({
  name: "run() names the --allow-run flag when the permission is missing",
  permissions: { run: ["true"], read: true },
  async fn() {
    await assert.rejects(run(["false"]), (error: unknown) => {
      assert.ok(error instanceof PermissionError);
      assert.equal(error.flag, "--allow-run=false");
      return true;
    });
  },
});

Deno.test("run() stops a program at its time limit", async () => {
  const start = performance.now();
  await assert.rejects(run(["sleep", "10"], { timeoutMs: 200 }), TimeoutError);
  assert.ok(performance.now() - start < 1_500);
});

Deno.test("run() escalates to SIGKILL when SIGTERM is ignored, even if a child holds the pipes", async () => {
  const start = performance.now();
  await assert.rejects(
    run(["sh", "-c", "trap '' TERM; sleep 5 & sleep 5; wait"], { timeoutMs: 200 }),
    TimeoutError,
  );
  const elapsed = performance.now() - start;
  assert.ok(elapsed > 2_000 && elapsed < 4_000, `took ${elapsed} ms`);
});

Deno.test("run() rejects with the abort reason", async () => {
  const controller = new AbortController();
  const reason = new Error("user pressed ^C");
  setTimeout(() => controller.abort(reason), 100);
  await assert.rejects(
    run(["sleep", "10"], { signal: controller.signal }),
    (error) => error === reason,
  );
  const aborted = AbortSignal.abort(reason);
  await assert.rejects(run(["true"], { signal: aborted }), (error) => error === reason);
});
