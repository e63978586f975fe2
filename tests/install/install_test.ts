// The README's install line, run as written from the checkout into a temporary install root: its
// flags are exactly the `sandboxer` task's, the installed command works from another directory,
// `--repo .` syncs that directory (not sandboxer's checkout), nothing but the command's own output
// reaches stderr (no Deno warning a user cannot act on), and the uninstall line removes it.
import assert from "node:assert/strict";
import { dirname } from "node:path";
import {
  denoDir,
  denoNetworkEnv,
  listDir,
  ROOT,
  runProgram,
  sandboxerTaskArgv,
  tempDir,
} from "../helpers.ts";
import { startTestVm } from "../harness/test_vm.ts";
import { commandsOf, fencedBlocks, readDoc, runScript } from "../docs/markdown.ts";

/** The permission flags between `deno run`/`deno install …` and `main.ts`. */
function flagsOf(words: readonly string[]): string[] {
  return words.filter((w) => w.startsWith("-") && !["-g", "-f", "-n", "--config"].includes(w))
    .sort();
}

Deno.test("README install: the task's flags, works from anywhere, --repo . is the caller's directory", async () => {
  const [block] = fencedBlocks(await readDoc("README.md")).filter((b) => b.heading === "Install");
  assert.ok(block, "README.md has an Install block");
  const [install] = commandsOf(block);
  assert.match(install.text, /^deno install -g /);
  const words = install.text.split(/\s+/).map((w) => w.replace(/^'(.*)'$/, "$1"));
  const [, ...taskWords] = await sandboxerTaskArgv();
  assert.deepEqual(flagsOf(words), flagsOf(taskWords), "the install line has the task's flags");
  assert.equal(words.at(-1), "main.ts");
  // sandboxer's own deno.json goes with it: third-party extensions import the SDK by its name.
  assert.equal(words[words.indexOf("--config") + 1], "deno.json");

  await using root = await tempDir("sbx-install-");
  const denoBin = dirname(Deno.execPath());
  const env = {
    ...denoNetworkEnv(),
    HOME: root.path,
    DENO_DIR: await denoDir(),
    DENO_INSTALL_ROOT: root.path,
    PATH: `${root.path}/bin:${denoBin}:/usr/bin:/bin`,
  };
  const installed = await runScript(install.text, { cwd: ROOT, env });
  assert.equal(installed.code, 0, installed.stderr);

  await using vm = await startTestVm();
  const project = `${vm.dir}/caller`;
  await Deno.mkdir(project);
  await Deno.writeTextFile(`${project}/only-here.txt`, "the caller's file\n");
  const profile = await vm.profile("p");
  const run = (...args: string[]) =>
    runProgram("sandboxer", args, {
      cwd: project,
      env: { ...env, ...vm.env, DENO_INSTALL_ROOT: root.path },
    });

  const version = await run("--version");
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^\d+\.\d+\.\d+/);
  assert.equal(version.stderr, "", "no Deno warning on the first run");

  const created = await run("create", "--profile", profile, "--repo", ".", "--json");
  assert.equal(created.code, 0, created.stderr);
  assert.doesNotMatch(created.stderr, /Warning|Ignored build scripts|Info/);
  const record = JSON.parse(created.stdout);
  assert.deepEqual(
    await listDir(record.workspace),
    [".sandboxer.json", "only-here.txt"],
    "the caller's directory",
  );
  const destroyed = await run("destroy", record.id);
  assert.equal(destroyed.code, 0, destroyed.stderr);

  const uninstall = await runScript("deno uninstall -g sandboxer", { cwd: ROOT, env });
  assert.equal(uninstall.code, 0, uninstall.stderr);
  assert.deepEqual(
    (await listDir(`${root.path}/bin`)).filter((name) => !name.startsWith(".")),
    [],
    "uninstalled",
  );
});
