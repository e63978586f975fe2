// mod.ts stays small enough to read in one sitting: at most 40 exported symbols, the Sandbox
// object and the Manager among them. What extension authors need lives in ./extension, every
// error class in ./errors.
import assert from "node:assert/strict";
import { ROOT, runProgram } from "../helpers.ts";

const MAX_SYMBOLS = 40;

Deno.test("mod.ts exports at most 40 symbols, Sandbox and Manager among them", async () => {
  const result = await runProgram(Deno.execPath(), ["doc", "--json", `${ROOT}/mod.ts`], {
    env: { NO_COLOR: "1" },
  });
  assert.equal(result.code, 0, result.stderr);
  const nodes = JSON.parse(result.stdout).nodes as Record<
    string,
    { symbols: { name: string }[] }
  >;
  const names = nodes[`file://${ROOT}/mod.ts`].symbols.map((s) => s.name);
  assert.ok(names.length <= MAX_SYMBOLS, `${names.length} symbols: ${names.join(", ")}`);
  for (const name of ["Sandbox", "SandboxExecResult", "Manager", "runInSandbox"]) {
    assert.ok(names.includes(name), `mod.ts exports ${name}`);
  }
});
