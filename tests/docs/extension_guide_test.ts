// docs/extension-sdk.md, followed literally (issue 14 item 12): the files of "Outside this
// repository" are written exactly as printed into a directory outside this repository (beside a
// `sandboxer` that is this checkout), its `sh` block runs there as written — `deno check`, the
// registration by SANDBOXER_EXTENSION_PATH, create / exec / destroy through the CLI against a real
// sshd. The error example runs and prints what the guide shows, the constructor table is
// `errors.ts`'s, the list of programs is the task's --allow-run, and a program an extension
// declares but sandboxer lacks fails with the line the guide prints.
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { parse, stringify } from "../../src/deps/yaml.ts";
import {
  denoDir,
  denoNetworkEnv,
  listDir,
  ROOT,
  runProgram,
  runSandboxer,
  tempDir,
} from "../helpers.ts";
import { DocSession, startBuildVm } from "./build_vm.ts";
import { type Block, commandsOf, fencedBlocks, readDoc, runScript } from "./markdown.ts";

const DOC = "docs/extension-sdk.md";

async function section(heading: string): Promise<Block[]> {
  const blocks = fencedBlocks(await readDoc(DOC)).filter((b) => b.heading === heading);
  assert.ok(blocks.length > 0, `${DOC} has blocks under "${heading}"`);
  return blocks;
}

function named(blocks: readonly Block[]): Map<string, string> {
  const files = new Map<string, string>();
  for (const block of blocks) {
    const name = block.info.find((w) => w.startsWith("name="))?.slice(5);
    if (name !== undefined) files.set(name, block.code);
  }
  return files;
}

Deno.test("docs/extension-sdk.md: an extension outside this repository, as printed, type-checks and runs create, exec, destroy", async () => {
  await using box = await startBuildVm();
  const { vm, home } = box;
  await box.installClientKey();
  const blocks = await section("Outside this repository");
  const files = named(blocks);
  assert.deepEqual(
    [...files.keys()],
    ["ssh_scratch.ts", "ext.ssh-scratch.yaml", "deno.json", "scratch-demo.yaml"],
  );
  const layout = blocks.find((b) => b.lang === "text")!.code;
  assert.match(layout, /^~\/src\/sandboxer\/ .*\n~\/src\/ext\.ssh-scratch\/ /);

  // The layout the guide draws: the checkout (this repository) beside the extension's directory.
  const src = `${home}/src`;
  const dir = `${src}/ext.ssh-scratch`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.symlink(ROOT, `${src}/sandboxer`);
  for (const [name, text] of files) await Deno.writeTextFile(`${dir}/${name}`, text);
  // Only what differs on this machine: the sshd's port (the guide relies on 22), user and root.
  const profile = parse(files.get("scratch-demo.yaml")!);
  assert.equal(profile.target.port, undefined, "the guide relies on the default port 22");
  profile.target.port = vm.sshd.port;
  profile.target.user = vm.sshd.user;
  profile.root = vm.root;
  await Deno.writeTextFile(`${dir}/scratch-demo.yaml`, stringify(profile));

  const [commands] = blocks.filter((b) => b.lang === "sh");
  const env = { ...box.env, PATH: `${box.env.PATH}:${dirname(Deno.execPath())}` };
  const session = new DocSession(DOC, env, home, (text) => text);
  const result = await session.run(commands);
  assert.equal(session.cwd, dir);
  assert.ok(await Deno.stat(`${dir}/deno.lock`), "the lock file was copied");
  assert.match(result.stdout, new RegExp(`^ext\\.ssh-scratch\\s+0\\.1\\.0\\s+${dir}/`, "m"));
  assert.match(result.stdout, /^scratch1$/m, "create printed the id");
  assert.match(result.stdout, new RegExp(`^${vm.root}/sbx-scratch1\nhello\n`, "m"));
  assert.match(result.stderr, /sandboxer: destroyed scratch1/);
  assert.deepEqual(await listDir(vm.root), [], "destroy removed the directory");
  assert.equal(session.env.SANDBOXER_EXTENSION_PATH, dir);

  // The type check is real: the same command fails on code that does not type-check.
  await Deno.writeTextFile(
    `${dir}/ssh_scratch.ts`,
    files.get("ssh_scratch.ts")!.replace("Promise<number>", "Promise<string>"),
  );
  const check = commands.code.split("\n").find((line) => line.startsWith("deno check"))!;
  const broken = await runProgram("bash", ["-c", check], { cwd: dir, env, clearEnv: true });
  assert.notEqual(broken.code, 0, "deno check catches a type error");
  assert.match(broken.stdout + broken.stderr, /TS\d+/);
});

Deno.test("docs/extension-sdk.md: the error example prints what the guide shows", async () => {
  const [code, output] = await section("The errors and their constructors");
  assert.equal(code.lang, "ts");
  assert.equal(output.lang, "text");
  await using dir = await tempDir();
  const file = `${dir.path}/errors.ts`;
  await Deno.writeTextFile(
    file,
    code.code.replaceAll(
      `"@sandboxer/sandboxer/extension"`,
      JSON.stringify(new URL("../../extension.ts", import.meta.url).href),
    ),
  );
  const result = await runProgram(Deno.execPath(), ["run", "--quiet", "--no-config", file], {
    env: { NO_COLOR: "1" },
  });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, output.code);
});

Deno.test("docs/extension-sdk.md: the constructor table is errors.ts's", async () => {
  const doc = await runProgram(Deno.execPath(), ["doc", "--json", `${ROOT}/errors.ts`]);
  assert.equal(doc.code, 0, doc.stderr);
  type Param = { kind: string; name?: string; optional?: boolean; left?: { name: string } };
  type Symbol = {
    name: string;
    declarations: { kind: string; def: { constructors?: { params: Param[] }[] } }[];
  };
  const symbols: Symbol[] = Object.values(
    JSON.parse(doc.stdout).nodes as Record<string, { symbols: Symbol[] }>,
  )[0].symbols;
  const actual = new Map<string, string>();
  for (const symbol of symbols) {
    const declaration = symbol.declarations.find((d) => d.kind === "class");
    if (!declaration) continue;
    const params = declaration.def.constructors?.[0]?.params ?? [];
    actual.set(
      symbol.name,
      `(${
        params.map((p) =>
          p.kind === "assign" ? `${p.left!.name}?` : `${p.name}${p.optional ? "?" : ""}`
        ).join(", ")
      })`,
    );
  }
  assert.ok(actual.size > 30, `errors.ts exports ${actual.size} classes`);

  const text = await readDoc(DOC);
  const start = text.indexOf("## The errors and their constructors");
  const table = text.slice(start, text.indexOf("\n## ", start + 1));
  const documented = new Map<string, string>();
  for (const [, name, ctor] of table.matchAll(/^\| `(\w+)` +\| `(\([^`]*\))` +\|/gm)) {
    documented.set(name, ctor);
  }
  assert.deepEqual(
    [...documented.keys()].sort(),
    [...actual.keys()].sort(),
    "every class errors.ts exports, and no other",
  );
  for (const [name, ctor] of actual) assert.equal(documented.get(name), ctor, name);
});

Deno.test("docs/extension-sdk.md: the programs an extension may run are the task's --allow-run", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const allowRun = (task: string) =>
    /--allow-run=(\S+)/.exec(config.tasks[task])?.[1].split(",") ?? [];
  const [list, error] = await section("Programs an extension may run");
  assert.equal(list.lang, "text");
  assert.deepEqual(list.code.trim().split(", "), allowRun("sandboxer"));
  assert.deepEqual(allowRun("compile"), allowRun("sandboxer"), "deno task compile grants the same");

  // Declared but not granted: the line the guide prints, from an extension that runs `make`.
  assert.equal(error.lang, "text");
  assert.ok(!allowRun("sandboxer").includes("make"));
  await using dir = await tempDir();
  const { ext, profile } = await localMake(dir.path);
  const env = { SANDBOXER_HOME: `${dir.path}/state`, SANDBOXER_EXTENSION_PATH: ext };
  const created = await runSandboxer(["create", "--profile", profile, "--name", "lm"], env);
  assert.equal(created.code, 0, created.stderr);
  const ran = await runSandboxer(["exec", "lm", "--", "all"], env);
  assert.equal(ran.code, 125, ran.stderr);
  assert.equal(ran.stderr, error.code);
  assert.equal((await runSandboxer(["destroy", "lm"], env)).code, 0);
});

Deno.test("docs/extension-sdk.md: the sandboxer of the README's install line resolves the SDK's name for an extension", async () => {
  const [install] = commandsOf(
    fencedBlocks(await readDoc("README.md")).find((b) => b.heading === "Install")!,
  );
  await using dir = await tempDir();
  const env = {
    ...denoNetworkEnv(),
    HOME: dir.path,
    DENO_DIR: await denoDir(),
    DENO_INSTALL_ROOT: `${dir.path}/root`,
    PATH: `${dir.path}/root/bin:${dirname(Deno.execPath())}:/usr/bin:/bin`,
  };
  const installed = await runScript(install.text, { cwd: ROOT, env });
  assert.equal(installed.code, 0, installed.stderr);
  const { ext, profile } = await localMake(dir.path);
  const run = (...args: string[]) =>
    runProgram("sandboxer", args, {
      cwd: dir.path,
      env: { ...env, SANDBOXER_HOME: `${dir.path}/state`, SANDBOXER_EXTENSION_PATH: ext },
    });
  // The extension imports "@sandboxer/sandboxer/extension": loading it is the check.
  const created = await run("create", "--profile", profile, "--name", "lm");
  assert.equal(created.code, 0, created.stderr);
  assert.equal(created.stdout, "lm\n");
  assert.equal((await run("destroy", "lm")).code, 0);
});

/**
 * Write `ext.local-make` (its `exec` runs `make` on this machine; its registration declares
 * `run: [make]`), importing the SDK by name, and a profile for it.
 */
async function localMake(dir: string): Promise<{ ext: string; profile: string }> {
  const ext = `${dir}/ext.local-make`;
  await Deno.mkdir(ext);
  await Deno.writeTextFile(
    `${ext}/local_make.ts`,
    `import { type CreateContext, type ExecIO, SandboxExtension } from "@sandboxer/sandboxer/extension";
type Handle = { workspace: string };
export class LocalMake extends SandboxExtension<Record<string, never>, Handle> {
  readonly id: string = "ext.local-make";
  override async create(ctx: CreateContext<Record<string, never>>): Promise<Handle> {
    const handle = { workspace: ${JSON.stringify(dir)} };
    await ctx.recordHandle(handle);
    return handle;
  }
  override async exec(_handle: Handle, argv: readonly string[], _io: ExecIO): Promise<number> {
    return (await new Deno.Command("make", { args: [...argv] }).output()).code;
  }
  override destroy(_handle: Handle): Promise<void> {
    return Promise.resolve();
  }
}
`,
  );
  await Deno.writeTextFile(
    `${ext}/ext.local-make.yaml`,
    [
      "id: ext.local-make",
      "version: 0.1.0",
      "description: runs make on this machine",
      "module: ./local_make.ts",
      "export: LocalMake",
      "permissions:",
      "  run: [make]",
      "",
    ].join("\n"),
  );
  const profile = `${dir}/lm.yaml`;
  await Deno.writeTextFile(profile, "id: profile.lm\nextension: ext.local-make\n");
  return { ext, profile };
}
