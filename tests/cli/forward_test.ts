// `sandboxer forward`: local ports to a real HTTP server started inside the sandbox, over one
// ssh connection, until SIGINT; LOCAL 0 picks a free port and prints it; a port already taken
// is an error, not silence. Real sshd, the CLI's exact flags.
import assert from "node:assert/strict";
import { spawnSandboxer, textOf } from "../helpers.ts";
import { createOk, startTestVm } from "../harness/test_vm.ts";
import { freePort } from "../harness/sshd.ts";

/** Read a child's stdout until `pattern` shows, with a deadline. */
async function readUntil(child: Deno.ChildProcess, pattern: RegExp): Promise<string> {
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = setTimeout(() => reader.cancel(), 60_000);
  try {
    while (!pattern.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
  } finally {
    clearTimeout(deadline);
    reader.releaseLock();
  }
  assert.match(text, pattern);
  return text;
}

Deno.test("forward: a server in the sandbox is reachable on 127.0.0.1 until SIGINT", async (t) => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "w1"]);
  const remote = await freePort();
  const start = await vm.cli([
    "exec",
    "-n",
    "w1",
    "--",
    "sh",
    "-c",
    'echo served-from-sandbox > page.txt; setsid python3 -m http.server "$1" --bind 127.0.0.1 >/dev/null 2>&1 & echo $! > server.pid',
    "sh",
    String(remote),
  ]);
  assert.equal(start.code, 0, start.stderr);
  try {
    await t.step("LOCAL 0 picks a free port, prints it, serves the sandbox's files", async () => {
      const child = await spawnSandboxer(["forward", "w1", `0:${remote}`], vm.env);
      const printed = await readUntil(child, /^127\.0\.0\.1:(\d+) -> sbx-w1:\d+$/m);
      const local = Number(/^127\.0\.0\.1:(\d+) /m.exec(printed)![1]);
      let body = "";
      for (let i = 0; i < 50 && body === ""; i++) {
        try {
          body = await (await fetch(`http://127.0.0.1:${local}/page.txt`)).text();
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 200)); // the server may still start
        }
      }
      assert.equal(body, "served-from-sandbox\n");
      child.kill("SIGINT");
      const result = textOf(await child.output());
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /forwarding stopped/);
      await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: local }));
    });
    await t.step("a local port already taken is an error", async () => {
      using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (taken.addr as Deno.NetAddr).port;
      const child = await spawnSandboxer(["forward", "w1", `${port}:${remote}`], vm.env);
      const result = textOf(await child.output());
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(`Cannot forward 127\\.0\\.0\\.1:${port}: .*[Aa]ddr(ess)? (already )?in use`),
      );
    });
    await t.step("a malformed port is a usage error", async () => {
      const result = await vm.cli(["forward", "w1", "http"]);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /write \[LOCAL:\]REMOTE_PORT/);
    });
  } finally {
    await vm.cli(["exec", "w1", "--", "sh", "-c", 'kill "$(cat server.pid)"']);
    assert.equal((await vm.cli(["destroy", "w1"])).code, 0);
  }
});
