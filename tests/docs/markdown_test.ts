// The doc reader the doc tests rely on: fences, headings, commands and their expected exit codes.
import assert from "node:assert/strict";
import { commandsOf, fencedBlocks } from "./markdown.ts";

Deno.test("fencedBlocks() reads language, info words, heading and indented fences", () => {
  const blocks = fencedBlocks(
    "# Top\n\n## Steps\n\n1. Do it:\n\n   ```sh on-the-vm\n   echo a\n   ```\n\n```ts excerpt=x.ts\nconst a = 1;\n```\n",
  );
  assert.deepEqual(blocks, [
    { lang: "sh", info: ["on-the-vm"], code: "echo a\n", line: 7, heading: "Steps" },
    { lang: "ts", info: ["excerpt=x.ts"], code: "const a = 1;\n", line: 11, heading: "Steps" },
  ]);
});

Deno.test("commandsOf() joins continuations, drops comments, reads '# exits N'", () => {
  const [block] = fencedBlocks(
    [
      "```sh",
      "# a comment line",
      "sandboxer run -p x -- \\",
      "  sh -c 'echo # not a comment; exit 3'  # exits 3: the command's own code",
      'echo "a # b" # it\'s fine',
      "",
      "false  # exits 1",
      "```",
    ].join("\n"),
  );
  assert.deepEqual(commandsOf(block), [
    { text: "sandboxer run -p x -- sh -c 'echo # not a comment; exit 3'", exit: 3, line: 3 },
    { text: 'echo "a # b"', exit: 0, line: 5 },
    { text: "false", exit: 1, line: 7 },
  ]);
});
