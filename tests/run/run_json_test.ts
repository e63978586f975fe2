// `run --json`: one result document on stdout (id, exit code, phase timings, artifacts) and the
// command's own output on stderr, against a real sshd with the CLI's exact flags.
import assert from "node:assert/strict";
import { tempDir, workspaceRootEntries } from "../helpers.ts";
import { startTestVm } from "../harness/test_vm.ts";

Deno.test("run --json prints one result document; the command's output goes to stderr", async () => {
  await using vm = await startTestVm();
  await using out = await tempDir();
  const profile = await vm.profile("json");
  const result = await vm.cli([
    "run",
    "--json",
    "--profile",
    profile,
    "--artifact",
    `out.txt:${out.path}`,
    "--",
    "sh",
    "-c",
    "echo to-stdout; echo to-stderr >&2; echo made > out.txt; exit 4",
  ]);
  assert.equal(result.code, 4, result.stderr);
  const doc = JSON.parse(result.stdout);
  assert.deepEqual(Object.keys(doc), ["id", "exit_code", "kept", "phases_ms", "artifacts"]);
  assert.match(doc.id, /^[a-z0-9][a-z0-9-]*$/);
  assert.equal(doc.exit_code, 4);
  assert.equal(doc.kept, false);
  for (const phase of ["create", "run", "artifacts", "destroy"]) {
    assert.equal(typeof doc.phases_ms[phase], "number", `phase ${phase}: ${result.stdout}`);
  }
  assert.deepEqual(doc.artifacts, [{ remote: "out.txt", local: out.path }]);
  assert.match(result.stderr, /^to-stdout$/m);
  assert.match(result.stderr, /^to-stderr$/m);
  assert.equal(await Deno.readTextFile(`${out.path}/out.txt`), "made\n");
  assert.deepEqual(await workspaceRootEntries(vm.root), []);
});

Deno.test("run --json whose create fails prints the error document and exits 125", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("json-bad", { target: { port: 1 } });
  const result = await vm.cli(["run", "--json", "--profile", profile, "--", "true"]);
  assert.equal(result.code, 125, result.stderr);
  const doc = JSON.parse(result.stdout);
  assert.equal(typeof doc.error.code, "string");
  assert.deepEqual(await vm.list(), [], "nothing was made: no record");
});
