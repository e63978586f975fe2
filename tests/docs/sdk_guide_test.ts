// docs/sdk.md, run as written: its deno.json, build.ts and check.ts are written into a project
// outside this repository (the checkout path and the profile name substituted) and run with the
// documented `deno run` flags against a real sshd "build VM" with stand-in ghc/cabal.
import assert from "node:assert/strict";
import { ROOT, workspaceRootEntries } from "../helpers.ts";
import { DocSession, setTestsFailing, startBuildVm, writeHaskellProject } from "./build_vm.ts";
import { commandsOf, fencedBlocks, readDoc, runScript } from "./markdown.ts";

const DOC = "docs/sdk.md";

Deno.test("docs/sdk.md: the scripts run with the documented flags", async () => {
  await using box = await startBuildVm();
  const { vm } = box;
  await box.installClientKey();
  const profile = await box.haskellProfile();
  const project = `${box.scratch}/hello`;
  await writeHaskellProject(project, "Hello from the SDK");
  const blocks = fencedBlocks(await readDoc(DOC));

  const substitute = (text: string) =>
    text.replaceAll('"../sandboxer/mod.ts"', JSON.stringify(`${ROOT}/mod.ts`))
      .replaceAll('profile: "vm-haskell-build"', `profile: ${JSON.stringify(profile)}`);
  const named = blocks.filter((b) => b.info.some((word) => word.startsWith("name=")));
  assert.deepEqual(named.map((b) => b.info[0]), [
    "name=deno.json",
    "name=build.ts",
    "name=check.ts",
  ]);
  for (const block of named) {
    const text = substitute(block.code);
    assert.notEqual(text, block.code, `${block.info[0]} had something to substitute`);
    await Deno.writeTextFile(`${project}/${block.info[0].slice(5)}`, text);
  }

  // sandboxer's lock file pins the npm packages' own dependencies to the versions this run has
  // tested and cached; without it a cold cache resolves them afresh from the registry.
  await Deno.copyFile(`${ROOT}/deno.lock`, `${project}/deno.lock`);

  // No dependency entries: sandboxer's own pins live in its src/deps/ and come with mod.ts.
  assert.deepEqual(Object.keys(JSON.parse(named[0].code).imports), ["@sandboxer/sandboxer"]);

  const [run] = blocks.filter((b) => b.lang === "sh");
  const session = new DocSession(DOC, box.env, project, (text) => text);
  const result = await session.run(run);
  assert.match(result.stderr, /^create: \d+ ms$/m);
  assert.match(result.stderr, /^destroy: \d+ ms$/m);
  assert.match(result.stdout, /Test suite hello-test: PASS/);
  const hello = await new Deno.Command(`${project}/dist/hello`, { stdout: "piped" }).output();
  assert.equal(new TextDecoder().decode(hello.stdout), "Hello from the SDK\n");
  assert.deepEqual(await workspaceRootEntries(vm.root), [".cabal"], "both sandboxes destroyed");

  // A failing test suite: check.ts exits with cabal's code and still destroys the sandbox.
  await setTestsFailing(project, true);
  const check = commandsOf(run).find((c) => c.text.endsWith(" check.ts"));
  assert.ok(check);
  const failed = await runScript(check.text, { cwd: project, env: session.env });
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(failed.stdout, /Test suite hello-test: FAIL/);
  assert.deepEqual(await workspaceRootEntries(vm.root), [".cabal"]);
});
