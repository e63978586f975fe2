// Every ```ts and ```sh block of every doc (README.md, docs/**/*.md) is run or type-checked by a
// test, or says in its info string that it is not (see docs/testing.md, "Code blocks in the
// docs"): a block nobody runs drifts from the code unnoticed. And docs/architecture.md names
// only files that exist.
import assert from "node:assert/strict";
import { ROOT, runProgram } from "../helpers.ts";
import { type Block, fencedBlocks, readDoc } from "./markdown.ts";

/** The tests that run (or type-check) each doc's ts and sh blocks; each names its doc. */
const RUNNERS: Readonly<Record<string, readonly string[]>> = {
  "README.md": ["tests/docs/usage_test.ts", "tests/demo_test.ts", "tests/install/install_test.ts"],
  "docs/compose-ssh.md": ["tests/compose/compose_test.ts"],
  "docs/extension-sdk.md": [
    "tests/docs/code_blocks_test.ts",
    "tests/docs/example_extension_test.ts",
    "tests/docs/extension_guide_test.ts",
  ],
  "docs/migration-build-machines.md": ["tests/docs/migration_test.ts"],
  "docs/profiles.md": ["tests/docs/usage_test.ts"],
  "docs/runbooks/vm-haskell-build.md": ["tests/docs/runbook_test.ts"],
  "docs/sdk.md": ["tests/docs/sdk_guide_test.ts", "tests/docs/code_blocks_test.ts"],
  "docs/warm-workspaces.md": ["tests/docs/code_blocks_test.ts"],
  "docs/snapshots.md": ["tests/docs/code_blocks_test.ts"],
};

/** Info words that say how a block is checked other than by running it (docs/testing.md). */
const MARKERS = {
  /** Deliberately not run by any test (the suite itself, a 4-minute benchmark…). */
  notRun: "not-run",
  /** Runs on the build VM as root: `bash -n` by the runbook test. */
  onTheVm: "on-the-vm",
};

const CODE_LANGS = ["ts", "typescript", "sh", "bash", "shell"];

async function docs(): Promise<string[]> {
  const found = ["README.md"];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(`${ROOT}/${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".md")) found.push(path);
    }
  };
  await walk("docs");
  return found.sort();
}

/** How a block is covered, or undefined when nothing covers it. */
function coverage(doc: string, block: Block): string | undefined {
  if (block.info.includes(MARKERS.notRun)) return "marked not-run";
  if (block.info.includes(MARKERS.onTheVm)) return "bash -n (runbook test)";
  if (block.info.some((word) => word.startsWith("excerpt="))) return "excerpt of the code";
  return RUNNERS[doc] ? `run by ${RUNNERS[doc].join(", ")}` : undefined;
}

Deno.test("every ts and sh block of every doc is run, type-checked or marked not-run", async () => {
  const uncovered: string[] = [];
  let blocks = 0;
  for (const doc of await docs()) {
    for (const block of fencedBlocks(await readDoc(doc))) {
      if (!CODE_LANGS.includes(block.lang)) continue;
      blocks++;
      if (coverage(doc, block) === undefined) {
        uncovered.push(`${doc}:${block.line} (${block.lang})`);
      }
    }
  }
  assert.ok(blocks > 30, `found ${blocks} blocks`);
  assert.deepEqual(
    uncovered,
    [],
    "run these blocks in a test and add it to RUNNERS in tests/docs/coverage_test.ts, " +
      "or mark them not-run (docs/testing.md)",
  );
});

Deno.test("each doc's runner tests exist and read that doc", async () => {
  for (const [doc, tests] of Object.entries(RUNNERS)) {
    const blocks = fencedBlocks(await readDoc(doc)).filter((b) =>
      CODE_LANGS.includes(b.lang) && !b.info.includes(MARKERS.notRun)
    );
    assert.ok(blocks.length > 0, `${doc} has blocks for its runners`);
    for (const test of tests) {
      const text = await Deno.readTextFile(`${ROOT}/${test}`);
      assert.ok(text.includes(`"${doc}"`), `${test} does not name "${doc}"`);
    }
  }
});

Deno.test("every sh block, not-run ones included, is valid shell (bash -n)", async () => {
  for (const doc of await docs()) {
    for (const block of fencedBlocks(await readDoc(doc))) {
      if (!["sh", "bash", "shell"].includes(block.lang)) continue;
      // Placeholders such as `<id>` stand for one word.
      const code = block.code.replace(/<[a-z][a-z-]*>/g, "PLACEHOLDER");
      const result = await runProgram("bash", ["-n", "-c", code]);
      assert.equal(result.code, 0, `${doc}:${block.line}: ${result.stderr}`);
    }
  }
});

Deno.test("README's test command is what CI runs (.ci/run), so marking it not-run hides nothing", async () => {
  const [test] = fencedBlocks(await readDoc("README.md")).filter((b) =>
    b.info.includes(MARKERS.notRun)
  );
  assert.equal(test.code, "bash tools/test.sh\n");
  assert.match(await Deno.readTextFile(`${ROOT}/.ci/run`), /^bash tools\/test\.sh$/m);
});

Deno.test("docs/architecture.md names only files and directories that exist", async () => {
  const text = await readDoc("docs/architecture.md");
  const named = new Set<string>();
  for (const [, code] of text.matchAll(/`([^`\n]+)`/g)) {
    // Repository paths: a top-level directory of this repository, then a path without
    // placeholders (`<id>`, `*`, `…`).
    if (!/^(src|tests|tools|docs|bench|examples|extensions|profiles)\/[\w./-]*$/.test(code)) {
      continue;
    }
    named.add(code.replace(/\/$/, ""));
  }
  assert.ok(named.size > 10, `found ${[...named].join(", ")}`);
  const missing: string[] = [];
  for (const path of named) {
    if (!(await Deno.stat(`${ROOT}/${path}`).then(() => true, () => false))) missing.push(path);
  }
  assert.deepEqual(missing, [], "docs/architecture.md names files that do not exist");
});
