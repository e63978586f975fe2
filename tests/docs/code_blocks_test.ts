// The code in the guides cannot drift from what runs: every ```ts block of docs/extension-sdk.md,
// docs/sdk.md, docs/warm-workspaces.md and docs/snapshots.md is type-checked with `deno check` (its "@sandboxer/sandboxer" imports pointed at this
// repository's mod.ts, extension.ts and errors.ts), every ```ts excerpt=FILE block appears verbatim in FILE, every
// ```yaml file=FILE block equals FILE, and the worked example itself type-checks.
import assert from "node:assert/strict";
import { ROOT, runProgram, tempDir } from "../helpers.ts";
import { type Block, fencedBlocks, readDoc } from "./markdown.ts";

const GUIDES = [
  "docs/extension-sdk.md",
  "docs/sdk.md",
  "docs/warm-workspaces.md",
  "docs/snapshots.md",
];
const MOD_URL = new URL("../../mod.ts", import.meta.url).href;

function option(block: Block, name: string): string | undefined {
  return block.info.find((word) => word.startsWith(`${name}=`))?.slice(name.length + 1);
}

async function denoCheck(files: readonly string[]): Promise<{ code: number; output: string }> {
  const result = await runProgram(
    Deno.execPath(),
    ["check", "--quiet", "--config", `${ROOT}/deno.json`, ...files],
    { env: { NO_COLOR: "1" } },
  );
  return { code: result.code, output: result.stdout + result.stderr };
}

/** The lines of `text`, each trimmed, without blank ones. */
function trimmedLines(text: string): string[] {
  return text.split("\n").map((line) => line.trim()).filter((line) => line !== "");
}

for (const doc of GUIDES) {
  Deno.test(`${doc}: every ts block type-checks`, async () => {
    const blocks = fencedBlocks(await readDoc(doc)).filter((b) => b.lang === "ts");
    const standalone = blocks.filter((b) => option(b, "excerpt") === undefined);
    assert.ok(standalone.length > 0, `${doc} has ts blocks to check`);
    await using dir = await tempDir("sbx-doc-blocks-");
    const files: string[] = [];
    for (const block of standalone) {
      const code = block.code
        .replace(
          /"@sandboxer\/sandboxer\/(extension|errors)"/g,
          (_, entry) => JSON.stringify(new URL(`../../${entry}.ts`, import.meta.url).href),
        )
        .replaceAll(`"@sandboxer/sandboxer"`, JSON.stringify(MOD_URL));
      const file = `${dir.path}/${doc.replace(/\W/g, "_")}_line_${block.line}.ts`;
      await Deno.writeTextFile(file, code);
      files.push(file);
    }
    const result = await denoCheck(files);
    assert.equal(result.code, 0, `deno check of the ts blocks of ${doc} failed:\n${result.output}`);
  });

  Deno.test(`${doc}: excerpts and included files match the code`, async () => {
    for (const block of fencedBlocks(await readDoc(doc))) {
      const excerpt = option(block, "excerpt");
      const file = option(block, "file");
      if (excerpt !== undefined) {
        const source = trimmedLines(await Deno.readTextFile(`${ROOT}/${excerpt}`)).join("\n");
        assert.ok(
          source.includes(trimmedLines(block.code).join("\n")),
          `${doc}:${block.line}: the excerpt is not in ${excerpt} as written; copy it again`,
        );
      }
      if (file !== undefined) {
        assert.equal(
          block.code,
          await Deno.readTextFile(`${ROOT}/${file}`),
          `${doc}:${block.line}: differs from ${file}`,
        );
      }
    }
  });
}

Deno.test("examples/: the worked extension type-checks", async () => {
  const result = await denoCheck([`${ROOT}/examples/ext.ssh-dir/ssh_dir.ts`]);
  assert.equal(result.code, 0, result.output);
});
