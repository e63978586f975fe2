// A confined extension's code must not read files by importing them: not as text, not as JSON,
// not by a static or literal import, not through a symlink or an encoded URL. Each thief below is
// ext.thief (tests/fixtures/confined/thief) with a loot.ts that imports a secret of the user
// running sandboxer and sends it to the extension's declared SSH target, a real sshd. On code
// that loads the extension with sandboxer's own read permission every one of them succeeds and
// the secret lands on the target; these tests fail then.
import assert from "node:assert/strict";
import { Manager, PermissionError } from "../../mod.ts";
import { SandboxNotFoundError } from "../../errors.ts";
import { ROOT } from "../helpers.ts";
import { startTestVm, type TestVm } from "../harness/test_vm.ts";

const THIEF = `${ROOT}/tests/fixtures/confined/thief`;

/** The secrets a thief goes for, all outside its module directory, each holding `canary`. */
interface Secrets {
  canary: string;
  /** `~/.ssh/id_ed25519` of the user running sandboxer. */
  key: string;
  /** A journal record of another state directory. */
  record: string;
  /** A module outside the extension's directory. */
  module: string;
}

/** A thief installed at `<vm.dir>/extensions/thief`, and a profile for it. */
interface Lair extends Secrets {
  extDir: string;
  profile: string;
}

async function secrets(vm: TestVm): Promise<Secrets> {
  const canary = `canary-${crypto.randomUUID()}`;
  const key = `${vm.dir}/.ssh/id_ed25519`;
  const record = `${vm.dir}/other-state/sandboxes/prod.json`;
  const module = `${vm.dir}/outside/credentials.ts`;
  await Deno.mkdir(`${vm.dir}/.ssh`, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(
    key,
    `-----BEGIN OPENSSH PRIVATE KEY-----\n${canary}\n-----END OPENSSH PRIVATE KEY-----\n`,
    { mode: 0o600 },
  );
  await Deno.mkdir(`${vm.dir}/other-state/sandboxes`, { recursive: true });
  await Deno.writeTextFile(
    record,
    JSON.stringify({ id: "prod", status: "ready", env: [`DEPLOY_TOKEN=${canary}`] }),
  );
  await Deno.mkdir(`${vm.dir}/outside`, { recursive: true });
  await Deno.writeTextFile(module, `export const token = ${JSON.stringify(canary)};\n`);
  return { canary, key, record, module };
}

/** Install ext.thief with `loot` as its loot.ts (and `extra` files), and write its profile. */
async function lair(
  vm: TestVm,
  name: string,
  loot: (s: Secrets) => string,
  extra: (dir: string, s: Secrets) => Promise<void> = async () => {},
): Promise<Lair> {
  const found = await secrets(vm);
  const extensions = `${vm.dir}/extensions-${name}`;
  const extDir = `${extensions}/thief`;
  await Deno.mkdir(extDir, { recursive: true });
  await Deno.copyFile(`${THIEF}/ext.thief.yaml`, `${extDir}/ext.thief.yaml`);
  // Installed away from sandboxer's tree, it imports the SDK by the path sandboxer runs from.
  const code = await Deno.readTextFile(`${THIEF}/thief.ts`);
  assert.ok(code.includes('"../../../../extension.ts"'));
  await Deno.writeTextFile(
    `${extDir}/thief.ts`,
    code.replace('"../../../../extension.ts"', JSON.stringify(`${ROOT}/extension.ts`)),
  );
  await Deno.writeTextFile(`${extDir}/loot.ts`, loot(found));
  await extra(extDir, found);
  // The registration directory goes on the search path; a profile for the sshd target.
  const profile = `${vm.dir}/thief-${name}.yaml`;
  await Deno.writeTextFile(
    profile,
    [
      `id: profile.thief-${name}`,
      "extension: ext.thief",
      "target:",
      `  host: ${JSON.stringify(vm.sshd.host)}`,
      `  port: ${vm.sshd.port}`,
      `  user: ${JSON.stringify(vm.sshd.user)}`,
      `  identity_file: ${JSON.stringify(vm.sshd.identityFile)}`,
      `  known_hosts: ${JSON.stringify(vm.sshd.knownHostsFile)}`,
      `root: ${JSON.stringify(vm.root)}`,
      "",
    ].join("\n"),
  );
  return { ...found, extDir, profile };
}

function cli(vm: TestVm, lair: Lair, args: string[]) {
  return vm.cli(args, { SANDBOXER_EXTENSION_PATH: lair.extDir });
}

/** Nothing of the secret anywhere sandboxer printed or on the target; no sandbox left behind. */
async function assertNothingTaken(vm: TestVm, lair: Lair, output: string): Promise<void> {
  assert.ok(!output.includes(lair.canary), `the secret was printed:\n${output}`);
  assert.deepEqual(await vm.rootEntries(), [], "the target holds nothing (no loot, no workspace)");
  for (const record of await vm.list()) assert.equal(record.status, "destroyed", record.id);
}

function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.includes("error"));
}

const t = (name: string, fn: (vm: TestVm) => Promise<void>) =>
  Deno.test(name, async () => {
    await using vm = await startTestVm();
    await fn(vm);
  });

t(
  "a confined extension that imports only its own files and the SDK works: create, exec, destroy",
  async (vm) => {
    const den = await lair(vm, "benign", () =>
      [
        'import note from "./note.txt" with { type: "text" };',
        'import data from "./data/settings.json" with { type: "json" };',
        "export function steal(): Promise<string> {",
        "  return Promise.resolve(`${note.trim()} ${data.mode}`);",
        "}",
      ].join("\n"), async (dir) => {
      await Deno.writeTextFile(`${dir}/note.txt`, "nothing\n");
      await Deno.mkdir(`${dir}/data`);
      await Deno.writeTextFile(`${dir}/data/settings.json`, '{"mode":"honest"}');
    });
    const created = await cli(vm, den, ["create", "-p", den.profile, "--name", "honest", "--json"]);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(JSON.parse(created.stdout).status, "ready");
    const exec = await cli(vm, den, ["exec", "honest", "--", "cat", "loot.txt"]);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, "nothing honest");
    const destroyed = await cli(vm, den, ["destroy", "honest"]);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.deepEqual(await vm.rootEntries(), []);
  },
);

// Refused when the extension is loaded: nothing is recorded or made.
for (
  const [name, loot, refused] of [
    [
      "a text import of ~/.ssh/id_ed25519",
      (s: Secrets) =>
        `import key from ${
          JSON.stringify(s.key)
        } with { type: "text" };\nexport const steal = () => Promise.resolve(key);\n`,
      (s: Secrets) => s.key,
    ],
    [
      "a JSON import of another state directory's journal record",
      (s: Secrets) =>
        `import record from ${
          JSON.stringify(s.record)
        } with { type: "json" };\nexport const steal = () => Promise.resolve(JSON.stringify(record));\n`,
      (s: Secrets) => s.record,
    ],
    [
      'a static import of a module outside its directory, by a "../" path',
      () =>
        'import { token } from "../../outside/credentials.ts";\nexport const steal = () => Promise.resolve(token);\n',
      (s: Secrets) => s.module,
    ],
    [
      "a text import by a file: URL with encoded characters",
      (s: Secrets) =>
        `import key from ${
          JSON.stringify(`file://${s.key.replace("/.ssh/", "/%2Essh/").replace("id_", "%69d_")}`)
        } with { type: "text" };\nexport const steal = () => Promise.resolve(key);\n`,
      (s: Secrets) => s.key,
    ],
  ] as const
) {
  t(`${name} is refused in one line, and nothing is made or sent`, async (vm) => {
    const den = await lair(vm, "load", loot);
    const result = await cli(vm, den, ["create", "-p", den.profile, "--name", "loot"]);
    assert.equal(result.code, 1, result.stderr);
    const lines = errorLines(result.stderr);
    assert.equal(lines.length, 1, result.stderr);
    assert.equal(
      lines[0],
      `sandboxer: error: Missing permission: read access to "${
        refused(den)
      }" by extension ext.thief, whose code imports it from outside its module directory ${den.extDir}; run again with permissions.read: ["${
        refused(den)
      }"] in ${den.extDir}/ext.thief.yaml (only if the extension really needs it)`,
    );
    await assertNothingTaken(vm, den, result.stdout + result.stderr);
    assert.deepEqual(await vm.list(), [], "refused before anything was recorded");
  });
}

t(
  'a literal import("…") of the key inside create is refused and the half-made sandbox rolled back',
  async (vm) => {
    const den = await lair(vm, "literal", (s) =>
      [
        "export async function steal(): Promise<string> {",
        `  return (await import(${JSON.stringify(s.key)}, { with: { type: "text" } })).default;`,
        "}",
      ].join("\n"));
    const result = await cli(vm, den, ["create", "-p", den.profile, "--name", "literal"]);
    assert.equal(result.code, 1, result.stderr);
    const lines = errorLines(result.stderr);
    assert.equal(lines.length, 1, result.stderr);
    assert.match(
      lines[0],
      new RegExp(
        `^sandboxer: error: Missing permission: read access to "${den.key}" by extension ext\\.thief, whose code imports it from outside its module directory`,
      ),
    );
    assert.match(result.stderr, /rolled back the half-made sandbox literal/);
    assert.equal((await cli(vm, den, ["show", "literal"])).code, 1, "no record left");
    await assertNothingTaken(vm, den, result.stdout + result.stderr);
  },
);

t(
  "a symlink in the module directory to the key is readable neither by import nor by Deno.readFile",
  async (vm) => {
    const link = async (dir: string, s: Secrets) => await Deno.symlink(s.key, `${dir}/key.txt`);
    const byImport = await lair(
      vm,
      "link-import",
      () =>
        'import key from "./key.txt" with { type: "text" };\nexport const steal = () => Promise.resolve(key);\n',
      link,
    );
    const imported = await cli(vm, byImport, ["create", "-p", byImport.profile, "--name", "l1"]);
    assert.equal(imported.code, 1, imported.stderr);
    assert.match(
      errorLines(imported.stderr).join("\n"),
      new RegExp(`read access to "${byImport.extDir}/key\\.txt" by extension ext\\.thief`),
    );
    await assertNothingTaken(vm, byImport, imported.stdout + imported.stderr);

    const byRead = await lair(
      vm,
      "link-read",
      () =>
        'export const steal = () => Deno.readTextFile(new URL("./key.txt", import.meta.url));\n',
      link,
    );
    const read = await cli(vm, byRead, ["create", "-p", byRead.profile, "--name", "l2"]);
    assert.equal(read.code, 1, read.stderr);
    assert.match(
      errorLines(read.stderr).join("\n"),
      new RegExp(`read access to "${byRead.extDir}/key\\.txt" by extension ext\\.thief`),
    );
    assert.equal((await cli(vm, byRead, ["show", "l2"])).code, 1, "no record left");
    await assertNothingTaken(vm, byRead, read.stdout + read.stderr);
  },
);

// More tricks a hostile author might try, through the SDK (the refusal is the same either way).
Deno.test("data:, blob:, import.meta.resolve, nested workers and permission requests take nothing", async (t) => {
  await using vm = await startTestVm();
  const tricks: [string, (s: Secrets) => string, RegExp][] = [
    [
      "a data: module that imports the key",
      (s) =>
        `export async function steal() {\n  const src = ${
          JSON.stringify(`import k from "file://${s.key}" with { type: "text" }; export default k;`)
        };\n  return (await import("data:text/javascript," + encodeURIComponent(src))).default;\n}\n`,
      /read access to .*id_ed25519/,
    ],
    [
      "a blob: module that imports the key",
      (s) =>
        `export async function steal() {\n  const src = ${
          JSON.stringify(`import k from "file://${s.key}" with { type: "text" }; export default k;`)
        };\n  const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));\n  return (await import(url)).default;\n}\n`,
      /read access to .*id_ed25519/,
    ],
    [
      "import.meta.resolve of a relative path out of the directory",
      () =>
        'export async function steal() {\n  const url = import.meta.resolve("../../.ssh/id_ed25519");\n  return (await import(url, { with: { type: "text" } })).default;\n}\n',
      /read access to .*id_ed25519/,
    ],
    [
      "a nested Worker whose entry imports the key",
      (s) =>
        `export function steal(): Promise<string> {\n  return new Promise((resolve, reject) => {\n    const src = ${
          JSON.stringify(
            `import k from "file://${s.key}" with { type: "text" }; postMessage(k);`,
          )
        };\n    const w = new Worker("data:text/javascript," + encodeURIComponent(src), { type: "module" });\n    w.onmessage = (e) => { w.terminate(); resolve(e.data); };\n    w.onerror = (e) => { e.preventDefault(); w.terminate(); reject(new Error(e.message)); };\n  });\n}\n`,
      /read access to .*id_ed25519/,
    ],
    [
      "a node:worker_threads worker that imports the key",
      (s) =>
        `import { Worker } from "node:worker_threads";\nexport function steal(): Promise<string> {\n  return new Promise((resolve, reject) => {\n    const src = ${
          JSON.stringify(
            `const { parentPort } = require("node:worker_threads"); import("file://${s.key}", { with: { type: "text" } }).then((m) => parentPort.postMessage(m.default), (e) => parentPort.postMessage("refused: " + e.message));`,
          )
        };\n    const w = new Worker(src, { eval: true });\n    w.on("message", (m) => { w.terminate(); String(m).startsWith("refused") ? reject(new Error(m)) : resolve(m); });\n    w.on("error", reject);\n  });\n}\n`,
      /read access to .*id_ed25519/,
    ],
  ];
  for (const [name, loot, refusal] of tricks) {
    await t.step(name, async () => {
      const den = await lair(vm, name.replace(/\W+/g, "-"), loot);
      await using manager = await Manager.open({
        stateDir: `${vm.dir}/state`,
        extensionDirs: [den.extDir],
        env: (key) => (key === "HOME" ? vm.dir : undefined),
      });
      const id = `trick-${crypto.randomUUID().slice(0, 8)}`;
      await assert.rejects(manager.create({ profile: den.profile, name: id }), (error: Error) => {
        assert.ok(!error.message.includes(den.canary));
        assert.match(error.message, refusal);
        return true;
      });
      await assert.rejects(manager.show(id), SandboxNotFoundError, "no record left");
      assert.deepEqual(await vm.rootEntries(), []);
    });
  }

  await t.step("Deno.permissions.request is denied (sandboxer never prompts)", async () => {
    const den = await lair(vm, "request", (s) =>
      [
        "export async function steal(): Promise<string> {",
        `  const { state } = await Deno.permissions.request({ name: "read", path: ${
          JSON.stringify(s.key)
        } });`,
        `  return state === "granted" ? await Deno.readTextFile(${JSON.stringify(s.key)}) : state;`,
        "}",
      ].join("\n"));
    const result = await cli(vm, den, ["create", "-p", den.profile, "--name", "asks"]);
    assert.equal(result.code, 0, result.stderr);
    const loot = await Deno.readTextFile(`${vm.root}/sbx-asks/loot.txt`);
    assert.equal(loot, "denied");
    assert.equal((await cli(vm, den, ["destroy", "asks"])).code, 0);
  });
});

Deno.test("a module directory that would expose the home or state directory is refused", async () => {
  await using vm = await startTestVm();
  const den = await lair(vm, "home", () => 'export const steal = () => Promise.resolve("x");\n');
  // The same extension with its module moved straight into $HOME.
  await Deno.copyFile(`${den.extDir}/thief.ts`, `${vm.dir}/thief.ts`);
  await Deno.copyFile(`${den.extDir}/loot.ts`, `${vm.dir}/loot.ts`);
  const yaml = await Deno.readTextFile(`${den.extDir}/ext.thief.yaml`);
  await Deno.writeTextFile(
    `${den.extDir}/ext.thief.yaml`,
    yaml.replace("module: ./thief.ts", `module: ${vm.dir}/thief.ts`),
  );
  const result = await cli(vm, den, ["create", "-p", den.profile, "--name", "home"]);
  assert.equal(result.code, 1, result.stderr);
  assert.deepEqual(errorLines(result.stderr), [
    `sandboxer: error: Extension "ext.thief" has its module in ${vm.dir}, your home directory: its code could read every file there; move the module and its files into a directory of their own`,
  ]);
  assert.deepEqual(await vm.list(), []);
});

Deno.test("an undeclared read through the SDK names the file", async () => {
  // Kept small: the same mapping as the CLI, checked on the typed error.
  await using vm = await startTestVm();
  const den = await lair(
    vm,
    "typed",
    (s) =>
      `import key from ${
        JSON.stringify(s.key)
      } with { type: "text" };\nexport const steal = () => Promise.resolve(key);\n`,
  );
  await using manager = await Manager.open({
    stateDir: `${vm.dir}/state`,
    extensionDirs: [den.extDir],
    env: (key) => (key === "HOME" ? vm.dir : undefined),
  });
  await assert.rejects(manager.create({ profile: den.profile, name: "typed" }), (error) => {
    assert.ok(error instanceof PermissionError, String(error));
    assert.equal(error.permission, "read");
    return true;
  });
});
