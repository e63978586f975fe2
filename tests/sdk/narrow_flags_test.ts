// docs/sdk.md's flag lists, run as written against a real sshd: the "Narrow flags" script and
// command (one host:port, the files it reads, rsync), the "Running it" flags with USER unset,
// and a missing --allow-net that must fail in one line naming the flag and leave no record.
import assert from "node:assert/strict";
import { denoNetworkEnv, listDir, ROOT, tempDir, workspaceRootEntries } from "../helpers.ts";
import { startTestVm, type TestVm } from "../harness/test_vm.ts";
import { commandsOf, fencedBlocks, readDoc, runScript } from "../docs/markdown.ts";

const DOC = "docs/sdk.md";

/** A project like the guide's: its deno.json (pointing at this checkout) and sandboxer's lock. */
async function project(dir: string): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/deno.json`,
    JSON.stringify({ imports: { "@sandboxer/sandboxer": `${ROOT}/mod.ts` } }),
  );
  await Deno.copyFile(`${ROOT}/deno.lock`, `${dir}/deno.lock`);
  await Deno.writeTextFile(`${dir}/hello.txt`, "hello from the repo\n");
}

/** A HOME whose ~/.ssh holds the key, known_hosts and a config file, as on a user's machine. */
async function home(vm: TestVm, dir: string): Promise<{ identity: string; knownHosts: string }> {
  await Deno.mkdir(`${dir}/.ssh`, { recursive: true, mode: 0o700 });
  const identity = `${dir}/.ssh/id_build`;
  const knownHosts = `${dir}/.ssh/known_hosts`;
  await Deno.copyFile(vm.sshd.identityFile, identity);
  await Deno.chmod(identity, 0o600);
  await Deno.copyFile(vm.sshd.knownHostsFile, knownHosts);
  await Deno.writeTextFile(`${dir}/.ssh/config`, "Host other\n  User someone\n");
  return { identity, knownHosts };
}

function baseEnv(homeDir: string): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: homeDir,
    DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
    NO_COLOR: "1",
    ...denoNetworkEnv(),
  };
}

Deno.test("docs/sdk.md: the narrow-flags script runs exactly as documented", async () => {
  await using vm = await startTestVm();
  await using work = await tempDir();
  const dir = `${work.path}/project`;
  await Deno.mkdir(`${dir}/profiles`, { recursive: true });
  await project(dir);
  const keys = await home(vm, work.path);
  await vm.profile("build", {
    target: { identity_file: keys.identity, known_hosts: keys.knownHosts },
  })
    .then((file) => Deno.copyFile(file, `${dir}/profiles/build.yaml`));

  const blocks = fencedBlocks(await readDoc(DOC));
  const script = blocks.find((b) => b.info.includes("narrow=narrow.ts"));
  assert.ok(script, "docs/sdk.md has the narrow.ts block");
  await Deno.writeTextFile(`${dir}/narrow.ts`, script.code);
  const [command] = blocks.filter((b) => b.lang === "sh")
    .flatMap(commandsOf).filter((c) => c.text.endsWith(" narrow.ts"));
  assert.ok(command, "docs/sdk.md has the command running narrow.ts");
  const text = command.text
    .replace("build-vm.example:22", `${vm.sshd.host}:${vm.sshd.port}`)
    .replace("../sandboxer", ROOT);
  assert.notEqual(text, command.text);

  const result = await runScript(text, { cwd: dir, env: baseEnv(work.path) });
  assert.equal(result.code, 0, result.stderr);
  const out = JSON.parse(result.stdout);
  assert.equal(out.code, 0);
  assert.equal(out.stdout, "hello from the repo\n");
  assert.deepEqual(await workspaceRootEntries(vm.root), [], "await using destroyed the sandbox");
});

Deno.test("docs/sdk.md: the documented flags work with USER unset", async () => {
  await using vm = await startTestVm();
  await using work = await tempDir();
  const dir = `${work.path}/project`;
  await Deno.mkdir(dir);
  await project(dir);
  const profile = await vm.profile("build");
  await home(vm, work.path);
  await Deno.writeTextFile(
    `${dir}/check.ts`,
    `import { Sandbox } from "@sandboxer/sandboxer";
await using box = await Sandbox.create({ profile: ${JSON.stringify(profile)}, repo: "." });
const { code, stdout } = await box.exec(["cat", "hello.txt"]);
console.log(JSON.stringify({ code, stdout }));
`,
  );
  const [run] = fencedBlocks(await readDoc(DOC)).filter((b) => b.lang === "sh");
  const command = commandsOf(run).find((c) => c.text.endsWith(" check.ts"));
  assert.ok(command);
  const env = { ...baseEnv(work.path), SANDBOXER_HOME: `${work.path}/state` };
  assert.equal("USER" in env, false);
  const result = await runScript(command.text, { cwd: dir, env });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), { code: 0, stdout: "hello from the repo\n" });
  assert.deepEqual(await workspaceRootEntries(vm.root), []);
});

Deno.test("an SDK script missing --allow-net gets one line naming it and leaves no record", async () => {
  await using vm = await startTestVm();
  await using work = await tempDir();
  const profile = await vm.profile("narrow");
  const state = `${work.path}/state`;
  const script = `${work.path}/script.ts`;
  await Deno.writeTextFile(
    script,
    `import { Sandbox, SandboxerError } from ${JSON.stringify(`file://${ROOT}/mod.ts`)};
try {
  await Sandbox.create({ profile: ${JSON.stringify(profile)}, stateDir: ${JSON.stringify(state)} });
} catch (error) {
  console.log(error instanceof SandboxerError ? error.message : "untyped: " + error);
}
`,
  );
  const sshd = vm.sshd;
  const result = await runScript(
    [
      Deno.execPath(),
      "run",
      "--no-prompt",
      "--no-config",
      `--allow-read=${work.path},${profile},${sshd.identityFile},${sshd.knownHostsFile},${ROOT}`,
      `--allow-write=${state}`,
      "--allow-env=LOG_TOKENS,LOG_STREAM",
      script,
    ].map((word) => `'${word}'`).join(" "),
    { cwd: work.path, env: baseEnv(work.path) },
  );
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split("\n");
  assert.equal(lines.length, 1, result.stdout);
  assert.match(lines[0], new RegExp(`--allow-net=${sshd.host}:${sshd.port}`));
  const records = (await listDir(`${state}/sandboxes`).catch(() => [])).filter((name) =>
    name.endsWith(".json")
  );
  assert.deepEqual(records, [], "no record of a sandbox that was never made");
});
