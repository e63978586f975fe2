import assert from "node:assert/strict";
import { WorkspaceError } from "../../core/errors.ts";
import {
  checkNonce,
  checkWorkspacePath,
  newNonce,
  pathInWorkspace,
  workspacePath,
  workspaceRootProblem,
} from "./workspace_path.ts";

Deno.test("workspaceRootProblem() refuses relative, root, unnormalised and system roots", () => {
  for (const good of ["/build", "/srv/ci/build", "/home/me/b", "/data/a b", "/x[1]"]) {
    assert.equal(workspaceRootProblem(good), undefined, good);
  }
  for (
    const bad of [
      "build",
      "",
      "/",
      "//",
      "/build/",
      "/a//b",
      "/a/./b",
      "/a/../b",
      "/etc",
      "/usr",
      "/tmp",
      "/etc/sbx",
      "/usr/lib/x",
      "/build\n",
    ]
  ) {
    assert.notEqual(workspaceRootProblem(bad), undefined, JSON.stringify(bad));
  }
});

Deno.test("workspacePath() is <root>/sbx-<id> and refuses bad ids and roots", () => {
  assert.equal(workspacePath("/build", "k3f9"), "/build/sbx-k3f9");
  assert.throws(() => workspacePath("/build", "../x"));
  assert.throws(() => workspacePath("/build", "A"));
  assert.throws(() => workspacePath("/etc", "x"), WorkspaceError);
});

Deno.test("checkWorkspacePath() accepts exactly <root>/sbx-<id>, of the record's id when given", () => {
  assert.deepEqual(checkWorkspacePath("/build/sbx-a1"), { workspace: "/build/sbx-a1", id: "a1" });
  assert.deepEqual(checkWorkspacePath("/build/sbx-a1", "a1"), {
    workspace: "/build/sbx-a1",
    id: "a1",
  });
  const refused: [string, string | undefined][] = [
    ["/build/sbx-b2", "a1"], // a hand-edited record pointing at another sandbox
    ["/build/sbx-a1/..", undefined],
    ["/build/sbx-a1/", undefined],
    ["/build/a1", undefined],
    ["/build/sbx-", undefined],
    ["/build/sbx-A1", undefined],
    ["/build/sbx-a1/x", "a1"],
    ["/sbx-a1", undefined],
    ["/etc/sbx-a1", undefined],
    ["build/sbx-a1", undefined],
    ["/build/../etc/sbx-a1", undefined],
    ["/build//sbx-a1", undefined],
  ];
  for (const [workspace, id] of refused) {
    assert.throws(
      () => checkWorkspacePath(workspace, id),
      (error: unknown) =>
        error instanceof WorkspaceError && /sandboxer will not delete it/.test(error.message),
      `${workspace} for ${id}`,
    );
  }
  assert.throws(() => checkWorkspacePath("/build/sbx-b2", "a1"), /is not <root>\/sbx-a1/);
});

Deno.test("checkNonce() takes 32 hex digits or nothing (an older handle)", () => {
  const nonce = newNonce();
  assert.match(nonce, /^[0-9a-f]{32}$/);
  assert.notEqual(newNonce(), nonce);
  assert.equal(checkNonce("/b/sbx-1", nonce), nonce);
  assert.equal(checkNonce("/b/sbx-1", undefined), "");
  assert.equal(checkNonce("/b/sbx-1", null), "");
  for (const bad of ["", "abc", nonce.toUpperCase(), `${nonce}0`, 42, "'; rm -rf /; '"]) {
    assert.throws(() => checkNonce("/b/sbx-1", bad), WorkspaceError, String(bad));
  }
});

Deno.test("pathInWorkspace() gives ./relative paths and refuses anything that leaves", () => {
  const ws = "/build/sbx-1";
  assert.equal(pathInWorkspace(ws, "dist/app.tar"), "./dist/app.tar");
  assert.equal(pathInWorkspace(ws, "./dist//app.tar"), "./dist/app.tar");
  assert.equal(pathInWorkspace(ws, `${ws}/dist`), "./dist");
  assert.equal(pathInWorkspace(ws, "a b/$(x)'q'"), "./a b/$(x)'q'");
  for (
    const bad of ["", ".", "./", "/etc/passwd", "..", "../sbx-2", "dist/../../x", ws, `${ws}/`]
  ) {
    assert.throws(() => pathInWorkspace(ws, bad), WorkspaceError, JSON.stringify(bad));
  }
  assert.throws(() => pathInWorkspace(ws, "/build/sbx-10/x"), WorkspaceError);
  assert.throws(() => pathInWorkspace(ws, "a\0b"), WorkspaceError);
});
