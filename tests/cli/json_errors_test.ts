// With --json, a failing command prints {"error":{"code","message"}} on stdout as well as its one
// line on stderr (the devcontainers CLI convention); without --json, or when --json belongs to
// exec's remote command, stdout stays empty. The real CLI with the task's flags.
import assert from "node:assert/strict";
import { runSandboxer, tempDir } from "../helpers.ts";

async function fails(args: string[], env: Record<string, string>) {
  const result = await runSandboxer(args, env);
  assert.notEqual(result.code, 0);
  const lines = result.stderr.trim().split("\n");
  return { ...result, line: lines.at(-1)! };
}

Deno.test("--json failures print the error's code and message on stdout too", async (t) => {
  await using home = await tempDir();
  const env = { SANDBOXER_HOME: `${home.path}/state`, HOME: home.path };

  await t.step("an unknown sandbox", async () => {
    const result = await fails(["show", "nope", "--json"], env);
    assert.equal(result.code, 1);
    const { error } = JSON.parse(result.stdout);
    assert.equal(error.code, "SANDBOX_NOT_FOUND");
    assert.match(error.message, /^Cannot find sandbox "nope"/);
    assert.equal(result.line, `sandboxer: error: ${error.message}`);
    assert.deepEqual(Object.keys(error), ["code", "message"]);
  });
  await t.step("a missing profile file", async () => {
    const result = await fails(["create", "--json", "-p", `${home.path}/absent.yaml`], env);
    assert.equal(JSON.parse(result.stdout).error.code, "PROFILE_NOT_FOUND");
  });
  await t.step("a usage error", async () => {
    const result = await fails(["list", "--json", "--bogus"], env);
    assert.equal(result.code, 2);
    const { error } = JSON.parse(result.stdout);
    assert.equal(error.code, "USAGE");
    assert.match(error.message, /unknown option '--bogus'/);
  });
  await t.step("without --json stdout stays empty", async () => {
    assert.equal((await fails(["show", "nope"], env)).stdout, "");
  });
  await t.step("--json after exec's -- is the remote command's", async () => {
    const result = await fails(["exec", "nope", "--", "echo", "--json"], env);
    assert.equal(result.code, 125);
    assert.equal(result.stdout, "");
  });
});
