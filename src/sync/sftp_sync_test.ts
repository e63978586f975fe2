import assert from "node:assert/strict";
import { SandboxerError } from "../core/errors.ts";
import { parseRsyncItems, safeSegments, unescapeRsyncName } from "./rsync_items.ts";

Deno.test("parseRsyncItems() reads sends, creations, attribute changes and deletions", () => {
  const stdout = [
    "*deleting   gone/deep/f",
    "*deleting   gone/",
    ".d..t...... ./",
    ">f+++++++++ a b $(x) 'q'.txt",
    ".f...p..... mode-only",
    "cd+++++++++ dir/",
    "cL+++++++++ dir/link",
    "cannot delete non-empty directory: kept",
    "",
  ].join("\n");
  assert.deepEqual(parseRsyncItems(stdout), [
    { action: "delete", kind: "file", path: "gone/deep/f", modeChanged: false },
    { action: "delete", kind: "dir", path: "gone", modeChanged: false },
    { action: "attrs", kind: "dir", path: "", modeChanged: false },
    { action: "send", kind: "file", path: "a b $(x) 'q'.txt", modeChanged: false },
    { action: "attrs", kind: "file", path: "mode-only", modeChanged: true },
    { action: "create", kind: "dir", path: "dir", modeChanged: false },
    { action: "create", kind: "symlink", path: "dir/link", modeChanged: false },
  ]);
});

Deno.test("parseRsyncItems() keeps a name that looks like an item code", () => {
  const [item] = parseRsyncItems(">f+++++++++ *deleting   x\n");
  assert.equal(item.action, "send");
  assert.equal(item.path, "*deleting   x");
});

Deno.test("unescapeRsyncName() decodes \\#ooo escapes to bytes, then UTF-8", () => {
  assert.equal(unescapeRsyncName("new\\#012line"), "new\nline");
  // rsync escapes a backslash that would read as an escape.
  assert.equal(unescapeRsyncName("\\#134#012weird"), "\\#012weird");
  assert.equal(unescapeRsyncName("\\#303\\#274n\\#303\\#257.txt"), "ünï.txt");
  assert.equal(unescapeRsyncName("plain \\ name"), "plain \\ name");
  assert.throws(() => unescapeRsyncName("\\#377"), SandboxerError);
});

Deno.test("safeSegments() refuses paths that could leave the workspace", () => {
  assert.deepEqual(safeSegments(""), []);
  assert.deepEqual(safeSegments("a/b c/.d"), ["a", "b c", ".d"]);
  for (const bad of ["/etc", "a/../b", "..", "./a", "a//b", "a/"]) {
    assert.throws(() => safeSegments(bad), SandboxerError, bad);
  }
});
