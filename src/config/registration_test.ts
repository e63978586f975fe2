import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../core/errors.ts";
import { loadRegistrations, parseRegistration } from "./registration.ts";

const VM = [
  "id: ext.vm-packer", // 1
  "version: 1.2.0", // 2
  "description: Remote workspace on a build machine over SSH", // 3
  "module: ../src/extensions/vm_packer.ts", // 4
  "export: VmPackerExtension", // 5
  "permissions:", // 6
  "  net: ['{target.host}:{target.port}']", // 7
  "  run: [ssh, rsync]", // 8
  "config:", // 9
  "  target.host: {type: string, required: true}", // 10
  "  target.port: {type: port, default: 22}", // 11
  "",
].join("\n");

const FILE = "/opt/sandboxer/extensions/ext.vm-packer.yaml";

function parseError(text: string, file = FILE): ConfigError {
  try {
    parseRegistration(file, text, { builtin: false });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "sbx-registration-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

async function write(dir: string, name: string, text: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const file = join(dir, name);
  await Deno.writeTextFile(file, text);
  return file;
}

function registrationText(id: string, description = "A backend"): string {
  return `id: ${id}\nversion: 0.1.0\ndescription: ${description}\nmodule: ./x.ts\nexport: X\n`;
}

Deno.test("parseRegistration() reads a valid registration", () => {
  const registration = parseRegistration(FILE, VM, { builtin: true });
  assert.deepEqual(registration, {
    id: "ext.vm-packer",
    version: "1.2.0",
    description: "Remote workspace on a build machine over SSH",
    module: "../src/extensions/vm_packer.ts",
    moduleUrl: "file:///opt/sandboxer/src/extensions/vm_packer.ts",
    export: "VmPackerExtension",
    permissions: { net: ["{target.host}:{target.port}"], run: ["ssh", "rsync"] },
    config: {
      "target.host": { type: "string", required: true },
      "target.port": { type: "port", default: 22 },
    },
    file: FILE,
    builtin: true,
  });
});

Deno.test("parseRegistration() accepts https and file module URLs", () => {
  const https = parseRegistration(
    FILE,
    VM.replace(/^module: .*$/m, "module: https://example.com/ext/vm.ts"),
    { builtin: false },
  );
  assert.equal(https.moduleUrl, "https://example.com/ext/vm.ts");
  assert.deepEqual(https.permissions.read, undefined);
  const file = parseRegistration(FILE, VM.replace(/^module: .*$/m, "module: file:///srv/vm.ts"), {
    builtin: false,
  });
  assert.equal(file.moduleUrl, "file:///srv/vm.ts");
});

Deno.test("parseRegistration() rejects each broken field at its line", () => {
  const cases: { edit: [RegExp, string]; field: string; line?: number; problem: RegExp }[] = [
    {
      edit: [/^id: .*$/m, "id: vm-packer"],
      field: "id",
      line: 1,
      problem: /^must be "ext\." then lower-case/,
    },
    {
      edit: [/^id: .*$/m, "id: ext.other"],
      field: "id",
      line: 1,
      problem: /must match the file name ext\.vm-packer\.yaml.*\(got "ext\.other"\)/,
    },
    {
      edit: [/^version: .*$/m, "version: 1.2"],
      field: "version",
      line: 2,
      problem: /^must be a semantic version x\.y\.z .*\(got 1\.2\); write all three parts$/,
    },
    {
      edit: [/^version: .*$/m, "version: v1"],
      field: "version",
      line: 2,
      problem: /\(got "v1"\)/,
    },
    { edit: [/^version: .*\n/m, ""], field: "version", problem: /^is required/ },
    {
      edit: [/^description: .*$/m, "description: ''"],
      field: "description",
      line: 3,
      problem: /^must not be empty$/,
    },
    { edit: [/^description: .*\n/m, ""], field: "description", problem: /^is required/ },
    {
      edit: [/^module: .*$/m, "module: jsr:@x/vm"],
      field: "module",
      line: 4,
      problem: /https:, http: or file: URL \(got "jsr:@x\/vm"\)/,
    },
    { edit: [/^module: .*\n/m, ""], field: "module", problem: /^is required/ },
    {
      edit: [/^export: .*$/m, "export: vm-packer"],
      field: "export",
      line: 5,
      problem: /JavaScript identifier \(got "vm-packer"\)/,
    },
    {
      edit: [/^ {2}run: .*$/m, "  runn: [ssh]"],
      field: "permissions.runn",
      line: 8,
      problem: /did you mean "permissions\.run"\?/,
    },
    {
      edit: [/^ {2}run: .*$/m, "  run: ssh"],
      field: "permissions.run",
      line: 8,
      problem: /a single string is not a list/,
    },
    {
      edit: [/^permissions:/m, "permisions:"],
      field: "permisions",
      line: 6,
      problem: /did you mean "permissions"\?/,
    },
    {
      edit: [/^export: .*$/m, "exports: VmPackerExtension"],
      field: "exports",
      line: 5,
      problem: /did you mean "export"\?/,
    },
    {
      edit: [/type: port/, "type: prot"],
      field: "config.target.port.type",
      line: 11,
      problem: /did you mean "port"\?/,
    },
  ];
  for (const { edit, field, line, problem } of cases) {
    const error = parseError(VM.replace(edit[0], edit[1]));
    assert.equal(error.location.field, field, `${edit[1]}: ${error.message}`);
    if (line !== undefined) assert.equal(error.location.line, line, error.message);
    assert.match(error.problem, problem);
  }
});

Deno.test("parseRegistration() rejects an empty file and a syntax error", () => {
  assert.match(parseError("").problem, /^is empty/);
  assert.equal(parseError("id: ext.vm-packer\nversion: [1\n").location.line, 3);
});

Deno.test("loadRegistrations() reads directories, first id wins, duplicates reported", async () => {
  await using tmp = await tempDir();
  const builtin = join(tmp.path, "builtin");
  const user = join(tmp.path, "user");
  const vm = await write(builtin, "ext.vm.yaml", registrationText("ext.vm"));
  await write(builtin, "ext.compose.yaml", registrationText("ext.compose"));
  await write(builtin, "README.md", "not a registration");
  const duplicate = await write(user, "ext.vm.yaml", registrationText("ext.vm", "Other"));
  await write(user, "ext.extra.yml", registrationText("ext.extra"));
  const broken = await write(user, "ext.broken.yaml", registrationText("ext.broken") + "port: 1\n");

  const { registrations, errors } = await loadRegistrations(
    [builtin, join(tmp.path, "missing"), user],
    { builtinDir: builtin + "/" },
  );
  assert.deepEqual(
    registrations.map((r) => [r.id, r.builtin]),
    [["ext.compose", true], ["ext.vm", true], ["ext.extra", false]],
  );
  assert.equal(registrations.find((r) => r.id === "ext.vm")?.description, "A backend");
  assert.equal(
    registrations.find((r) => r.id === "ext.extra")?.moduleUrl,
    new URL(`file://${user}/x.ts`).href,
  );
  assert.equal(errors.length, 2);
  const brokenError = errors.find((e) => e.location.file === broken);
  assert.equal(brokenError?.location.field, "port");
  assert.equal(brokenError?.location.line, 6);
  const duplicateError = errors.find((e) => e.location.file === duplicate);
  assert.ok(duplicateError, errors.map((e) => e.message).join("\n"));
  assert.equal(duplicateError.location.field, "id");
  assert.equal(duplicateError.location.line, 1);
  assert.ok(duplicateError.message.includes(vm), duplicateError.message);
  assert.match(duplicateError.problem, /^duplicates "ext\.vm", already registered by /);
});
