// The worked example of docs/extension-sdk.md, examples/ext.ssh-dir, loaded from its path as a
// third party's extension would be, and driven create → exec → destroy against a real sshd:
// (1) through the real CLI, by running the guide's own commands; (2) through the SDK's Manager,
// including failures; (3) as a bare class in a Deno process holding only the permissions its
// registration declares, placeholders filled from the validated profile.
import assert from "node:assert/strict";
import { parse, stringify } from "../../src/deps/yaml.ts";
import { type ConfigSource, Manager, SandboxerError } from "../../mod.ts";
import { SandboxNotFoundError, SandboxStateError } from "../../errors.ts";
import { parseRegistration } from "../../src/config/registration.ts";
import { validateConfig } from "../../src/config/schema.ts";
import { listDir, ROOT, tempDir } from "../helpers.ts";
import { startTestVm } from "../harness/test_vm.ts";
import { DocSession, startBuildVm } from "./build_vm.ts";
import { fencedBlocks, readDoc, runScript } from "./markdown.ts";

const DOC = "docs/extension-sdk.md";

/** By code: an error thrown in a confined extension's worker may arrive as its base class. */
function isWorkspaceError(error: unknown): error is SandboxerError {
  return error instanceof SandboxerError && error.code === "WORKSPACE";
}
const EXAMPLE_DIR = `${ROOT}/examples/ext.ssh-dir`;

Deno.test("ext.ssh-dir through the CLI: the guide's commands, from SANDBOXER_EXTENSION_PATH", async () => {
  await using box = await startBuildVm();
  const { vm, home } = box;
  await box.installClientKey();
  const blocks = fencedBlocks(await readDoc(DOC)).filter((b) => b.heading === "Trying it");
  assert.deepEqual(blocks.map((b) => b.lang), ["yaml", "sh", "text"]);
  const [profileBlock, commands, errorText] = blocks;

  // The profile as the guide writes it, with this sshd's port, user and a root it owns.
  const file = /^# (~\/\S+)$/m.exec(profileBlock.code)?.[1]?.replace(/^~/, home);
  assert.ok(file, "the profile block names its file");
  const profile = parse(profileBlock.code);
  assert.equal(profile.target.port, undefined, "the guide relies on the default port 22");
  profile.target.port = vm.sshd.port;
  profile.target.user = vm.sshd.user;
  profile.root = vm.root;
  await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(file, stringify(profile));

  const session = new DocSession(DOC, box.env, ROOT, (text) => text);
  const result = await session.run(commands);
  const ws = `${vm.root}/sbx-demo`;
  assert.match(
    result.stdout,
    /^ext\.ssh-dir\s+1\.0\.0\s+\S+examples\/ext\.ssh-dir\/ext\.ssh-dir\.yaml/m,
  );
  assert.match(result.stdout, /^ssh-dir-demo\s+ext\.ssh-dir\s+2h\s/m);
  assert.match(result.stdout, new RegExp(`^${ws}\nhello\n`, "m"), "pwd, then cat greeting.txt");
  assert.match(result.stdout, new RegExp(`^demo\\s+ready\\s+.*${ws}`, "m"), "list shows it");
  assert.deepEqual(await listDir(vm.root), [], "the directory was removed");
  const stderr = result.stderr.trimEnd().split("\n");
  assert.equal(stderr.at(-1), errorText.code.trimEnd(), "the error text in the guide is exact");

  // The journal says destroyed; a second destroy above changed nothing.
  const show = await runScript("sandboxer show demo --json", { cwd: ROOT, env: session.env });
  assert.equal(JSON.parse(show.stdout).status, "destroyed", show.stderr);
});

Deno.test("ext.ssh-dir through the SDK: Manager.open({ extensionDirs })", async (t) => {
  await using vm = await startTestVm();
  await using state = await tempDir();
  await using manager = await Manager.open({
    stateDir: state.path,
    extensionDirs: [EXAMPLE_DIR],
    env: () => undefined,
  });
  const writeProfile = async (name: string, root: string) => {
    const file = `${vm.dir}/${name}.yaml`;
    await Deno.writeTextFile(
      file,
      stringify({
        id: `profile.${name}`,
        extension: "ext.ssh-dir",
        target: {
          host: vm.sshd.host,
          port: vm.sshd.port,
          user: vm.sshd.user,
          identity_file: vm.sshd.identityFile,
          known_hosts: vm.sshd.knownHostsFile,
        },
        root,
        env: ["GREETING=hi there"],
      }),
    );
    return file;
  };
  const profile = await writeProfile("sshdir", vm.root);

  await t.step("create, exec with output and exit codes, destroy", async () => {
    const box = await manager.create({ profile, name: "sdk1" });
    assert.equal(box.status, "ready");
    assert.equal(box.workspace, `${vm.root}/sbx-sdk1`);
    assert.deepEqual(await listDir(vm.root), ["sbx-sdk1"]);
    let out = "";
    let err = "";
    const code = await manager.exec(
      box.id,
      ["sh", "-c", 'pwd; echo "$GREETING" "$1"; echo oops >&2; exit 7', "sh", "it's literal"],
      {
        stdout: (c) => out += new TextDecoder().decode(c),
        stderr: (c) => err += new TextDecoder().decode(c),
      },
    );
    assert.equal(code, 7);
    assert.equal(out, `${vm.root}/sbx-sdk1\nhi there it's literal\n`);
    assert.equal(err, "oops\n");
    assert.equal((await manager.destroy(box.id)).status, "destroyed");
    assert.deepEqual(await listDir(vm.root), []);
    assert.equal((await manager.destroy(box.id)).status, "destroyed", "idempotent");
    await assert.rejects(manager.exec(box.id, ["true"]), SandboxStateError);
  });

  await t.step("a create that fails after recording its handle is rolled back", async () => {
    const missing = await writeProfile("sshdir-missing", `${vm.root}/does-not-exist`);
    await assert.rejects(
      manager.create({ profile: missing, name: "sdk2" }),
      (error: unknown) => isWorkspaceError(error) && /could not be created/.test(error.message),
    );
    // Nothing is left of it, its record included: the name is free again.
    await assert.rejects(manager.show("sdk2"), SandboxNotFoundError);
    assert.ok(!(await manager.list({ all: true })).some((r) => r.id === "sdk2"), "not listed");
  });

  await t.step("destroy never removes a directory this sandbox did not make", async () => {
    await Deno.mkdir(`${vm.root}/sbx-sdk3`);
    await Deno.writeTextFile(`${vm.root}/sbx-sdk3/precious.txt`, "keep me");
    await assert.rejects(manager.create({ profile, name: "sdk3" }), isWorkspaceError);
    assert.equal((await manager.show("sdk3")).status, "failed", "the roll-back refused too");
    await assert.rejects(
      manager.destroy("sdk3"),
      (error: unknown) =>
        isWorkspaceError(error) && /does not belong to sandbox sdk3/.test(error.message),
    );
    assert.equal(await Deno.readTextFile(`${vm.root}/sbx-sdk3/precious.txt`), "keep me");
  });

  await t.step("a bad root is refused by parseConfig with its place, before anything", async () => {
    const bad = await writeProfile("sshdir-bad", "relative/dir");
    await assert.rejects(
      manager.create({ profile: bad, name: "sdk4" }),
      /sshdir-bad\.yaml:\d+:\d+: root: must be an absolute directory/,
    );
    await assert.rejects(manager.show("sdk4"), /Cannot find sandbox "sdk4"/);
  });
});

Deno.test("ext.ssh-dir needs nothing beyond its declared permissions", async () => {
  await using vm = await startTestVm();
  // The registration and a profile's config, validated as sandboxer does.
  const yamlFile = `${EXAMPLE_DIR}/ext.ssh-dir.yaml`;
  const registration = parseRegistration(yamlFile, await Deno.readTextFile(yamlFile), {
    builtin: false,
  });
  const source: ConfigSource = { file: "test", locate: (field) => ({ file: "test", field }) };
  const config = validateConfig(
    {
      target: {
        host: vm.sshd.host,
        port: vm.sshd.port,
        user: vm.sshd.user,
        identity_file: vm.sshd.identityFile,
        known_hosts: vm.sshd.knownHostsFile,
      },
      root: vm.root,
    },
    registration.config,
    source,
  );
  // Fill the placeholders from the config.
  const fill = (entry: string) =>
    entry.replace(/\{([^{}]+)\}/g, (_, path: string) => {
      const value = path.split(".").reduce<unknown>(
        (node, key) => (node as Record<string, unknown>)[key],
        config,
      );
      assert.ok(value !== undefined, `placeholder {${path}} has a value`);
      return String(value);
    });
  const flags = Object.entries(registration.permissions).map(([kind, entries]) =>
    `--allow-${kind}=${entries.map(fill).join(",")}`
  );
  assert.deepEqual(flags, [
    `--allow-net=${vm.sshd.host}:${vm.sshd.port}`,
    `--allow-read=${vm.sshd.identityFile},${vm.sshd.knownHostsFile}`,
  ]);

  await using dir = await tempDir();
  const driver = `${dir.path}/driver.ts`;
  await Deno.writeTextFile(
    driver,
    `
import { SshDirExtension } from ${JSON.stringify(`${EXAMPLE_DIR}/ssh_dir.ts`)};
const config = JSON.parse(Deno.args[0]);
const extension = new SshDirExtension();
const steps: string[] = [];
const handle = await extension.create({
  id: "confined1",
  profileId: "profile.confined",
  config,
  recordHandle: async () => { steps.push("recorded"); },
  step: async (name) => { steps.push(name); },
});
let stdout = "";
const code = await extension.exec(handle, ["sh", "-c", "pwd; exit 5"], {
  stdout: (chunk) => stdout += new TextDecoder().decode(chunk),
});
await extension.destroy(handle);
await extension.destroy(handle);
await extension.close();
console.log(JSON.stringify({ steps, code, stdout }));
`,
  );
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--config",
      `${ROOT}/deno.json`,
      ...flags,
      driver,
      JSON.stringify(config),
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), {
    steps: ["connect", "recorded", "mkdir"],
    code: 5,
    stdout: `${vm.root}/sbx-confined1\n`,
  });
  assert.deepEqual(await listDir(vm.root), []);
});
