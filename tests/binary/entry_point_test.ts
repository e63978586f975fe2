// The shipped entry point with the shipped permission flags, run from a copy of the repository in
// another directory (so no path leaks in from the working tree); and the compiled binary itself
// whenever `deno compile` can get its denort runtime here.
import assert from "node:assert/strict";
import { denoDir, ROOT, skipIf, tempDir, workspaceRootEntries } from "../helpers.ts";
import { startTestVm, type TestVm } from "../harness/test_vm.ts";

const decoder = new TextDecoder();

async function run(
  program: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
) {
  const output = await new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: { NO_COLOR: "1", DENO_DIR: await denoDir(), ...options.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Copy the tracked files of the repository to `dir`. */
async function copyRepo(dir: string): Promise<void> {
  const listed = await run("git", [
    "-C",
    ROOT,
    "ls-files",
    "-z",
    "--cached",
    "--others",
    "--exclude-standard",
  ]);
  for (const file of listed.stdout.split("\0").filter(Boolean)) {
    const from = `${ROOT}/${file}`;
    if (!(await Deno.stat(from).then((s) => s.isFile, () => false))) continue;
    await Deno.mkdir(`${dir}/${file}`.replace(/\/[^/]+$/, ""), { recursive: true });
    await Deno.copyFile(from, `${dir}/${file}`);
  }
}

async function lifecycle(vm: TestVm, sandboxer: (args: string[]) => ReturnType<typeof run>) {
  const profile = await vm.profile("entry");
  const version = await sandboxer(["--version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  const extensions = await sandboxer(["extensions", "--json"]);
  assert.equal(extensions.code, 0, extensions.stderr);
  const ids = JSON.parse(extensions.stdout).extensions.map((e: { id: string }) => e.id);
  assert.ok(ids.includes("ext.vm-packer"), ids.join(","));
  const created = await sandboxer(["create", "-p", profile, "--name", "entry", "--json"]);
  assert.equal(created.code, 0, created.stderr);
  assert.equal(JSON.parse(created.stdout).workspace, `${vm.root}/sbx-entry`);
  const exec = await sandboxer(["exec", "entry", "--", "sh", "-c", "pwd; exit 4"]);
  assert.equal(exec.code, 4, exec.stderr);
  assert.equal(exec.stdout, `${vm.root}/sbx-entry\n`);
  const destroyed = await sandboxer(["destroy", "entry"]);
  assert.equal(destroyed.code, 0, destroyed.stderr);
  assert.deepEqual(await workspaceRootEntries(vm.root), []);
}

Deno.test("`deno task sandboxer` from a copy of the repo: --version, extensions, create/exec/destroy", async () => {
  await using copy = await tempDir("sbx-copy-");
  await copyRepo(copy.path);
  await using vm = await startTestVm();
  await lifecycle(
    vm,
    (args) =>
      run(Deno.execPath(), ["task", "-q", "sandboxer", ...args], { cwd: copy.path, env: vm.env }),
  );
});

Deno.test("`deno task compile` and `deno task sandboxer` use exactly the same permission flags", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks;
  const flags = (task: string) =>
    task.split(/\s+/).filter((w: string) => /^--(allow|deny|no-prompt|unstable)/.test(w));
  assert.deepEqual(flags(tasks.compile), flags(tasks.sandboxer));
  assert.doesNotMatch(tasks.sandboxer, /(\s-A\b|--allow-all)/);
  assert.match(tasks.compile, /--include extensions\/ --include profiles\//);
});

/** Build the binary into `dir`, or say why it cannot be built here. */
/** The reason the compiled binary test is skipped where `deno compile` cannot fetch denort. */
const NO_DENORT = "deno compile cannot download its denort runtime here; set DENORT_BIN";

async function compile(
  dir: string,
): Promise<{ binary?: string; reason?: string; failure?: string }> {
  const task: string = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks.compile;
  const args = task.split(/\s+/).slice(1).map((
    w,
  ) => (w === "dist/sandboxer" ? `${dir}/sandboxer` : w));
  const result = await run(Deno.execPath(), args, { cwd: ROOT });
  if (result.code === 0) return { binary: `${dir}/sandboxer` };
  const why = result.stderr.split("\n").find((l) =>
    /denort|dl\.deno\.land|dns error|download/i.test(l)
  );
  // Only the missing runtime is a reason to skip (listed in tests/allowed_skips.json); any other
  // compile failure fails the test with compile's own output.
  return why ? { reason: NO_DENORT } : { failure: result.stderr.trim() };
}

const built = await (async () => {
  const dir = await Deno.makeTempDir({ prefix: "sbx-bin-" });
  const outcome = await compile(dir);
  if (outcome.reason) await Deno.remove(dir, { recursive: true });
  return { dir, ...outcome };
})();

Deno.test({
  ...skipIf(
    built.reason,
    "compiled binary: --version, extensions --json, create/exec/destroy against sshd",
  ),
  async fn() {
    try {
      assert.ok(built.binary, `deno compile failed:\n${built.failure}`);
      await using vm = await startTestVm();
      await lifecycle(vm, (args) => run(built.binary!, args, { env: vm.env }));
    } finally {
      await Deno.remove(built.dir, { recursive: true });
    }
  },
});
