// tools/test_runner.ts: what it reads from `deno test` (a real run over a fixture), the allow
// list check, and the repository's own lists.
import assert from "node:assert/strict";
import {
  notAllowed,
  parseIgnored,
  parseSerialList,
  parseSummary,
} from "../../tools/test_runner.ts";
import { ROOT, runProgram, tempDir } from "../helpers.ts";

Deno.test("test runner: reads counts and ignored tests with reasons from a real deno test run", async () => {
  await using dir = await tempDir("sbx-runner-");
  const junit = `${dir.path}/junit.xml`;
  const result = await runProgram(
    Deno.execPath(),
    ["test", "--allow-read", `--junit-path=${junit}`, `${ROOT}/tests/fixtures/runner/skips.ts`],
    { env: { NO_COLOR: "1" }, cwd: ROOT },
  );
  assert.notEqual(result.code, 0, "the fixture has a failing test");
  assert.deepEqual(parseSummary(result.stdout), { passed: 2, failed: 1 }, result.stdout);
  const ignored = parseIgnored(await Deno.readTextFile(junit));
  assert.deepEqual(
    ignored.map(({ name, reason }) => ({ name, reason })),
    [
      { name: "skipped with a reason", reason: "needs a <thing> & more" },
      { name: "ignored without a reason", reason: undefined },
    ],
  );
  assert.equal(ignored[0].file, "./tests/fixtures/runner/skips.ts");
});

Deno.test("test runner: no summary line is undefined, not zero", () => {
  assert.equal(parseSummary("error: Type checking failed\n"), undefined);
  assert.deepEqual(
    parseSummary("ok | 396 passed (183 steps) | 0 failed | 1 ignored (4m40s)\n"),
    { passed: 396, failed: 0 },
  );
});

Deno.test("test runner: a step of a skipped test carries its parent's reason", () => {
  const xml = `<testcase name="t [skipped: no root] &gt; step" classname="./a_test.ts" time="0">
            <skipped/>
        </testcase>
        <testcase name="other" classname="./a_test.ts" time="0">
        </testcase>`;
  assert.deepEqual(parseIgnored(xml), [
    { file: "./a_test.ts", name: "t > step", reason: "no root" },
  ]);
});

Deno.test("test runner: CI allows only a listed name with its listed reason", () => {
  const allowed = [{ name: "binary", reason: "no denort" }];
  const file = "./x_test.ts";
  assert.deepEqual(notAllowed([{ file, name: "binary", reason: "no denort" }], allowed), []);
  for (
    const skipped of [
      { file, name: "binary", reason: "no root" },
      { file, name: "binary", reason: undefined },
      { file, name: "other", reason: "no denort" },
    ]
  ) {
    assert.deepEqual(notAllowed([skipped], allowed), [skipped]);
  }
});

Deno.test("tests/serial.txt names existing test files; tests/allowed_skips.json gives reasons", async () => {
  const serial = parseSerialList(await Deno.readTextFile(`${ROOT}/tests/serial.txt`));
  assert.ok(serial.includes("tests/load/many_sandboxes_test.ts"), "the load test runs alone");
  for (const file of serial) {
    assert.ok((await Deno.stat(`${ROOT}/${file}`)).isFile, file);
    assert.match(file, /_test\.ts$/);
  }
  assert.deepEqual(parseSerialList("# c\n\na_test.ts  # why\n"), ["a_test.ts"]);
  const { skips } = JSON.parse(await Deno.readTextFile(`${ROOT}/tests/allowed_skips.json`));
  assert.ok(Array.isArray(skips) && skips.length > 0);
  for (const skip of skips) {
    assert.equal(typeof skip.name, "string");
    assert.ok(typeof skip.reason === "string" && skip.reason.length > 10, skip.name);
  }
});
