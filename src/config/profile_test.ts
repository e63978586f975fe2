import assert from "node:assert/strict";
import { join } from "node:path";
import { PermissionError, ProfileNotFoundError, UsageError } from "../core/errors.ts";
import { listProfiles, loadProfile, parseProfile, profileSearchPath } from "./profile.ts";
import { validateConfig } from "./schema.ts";
import type { ConfigSchema } from "./types.ts";
import { configError } from "../testing/config_error.ts";

const DEV = [
  "id: profile.dev",
  "description: Remote build box",
  "extension: ext.vm-packer",
  "target:",
  "  host: build1",
  "  port: 2222",
  "sync:",
  "  source: ~/src/app",
  "  exclude: [node_modules, .cache]",
  "setup:",
  "  - make deps",
  "ttl: 8h",
  "",
].join("\n");

const VM_SCHEMA: ConfigSchema = {
  "target.host": { type: "string", required: true },
  "target.port": { type: "port", default: 22 },
};

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "sbx-profile-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

async function write(dir: string, name: string, text: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const file = join(dir, name);
  await Deno.writeTextFile(file, text);
  return file;
}

function profileText(name: string, extra = ""): string {
  return `id: profile.${name}\nextension: ext.vm-packer\ntarget:\n  host: ${name}-host\n${extra}`;
}

Deno.test("parseProfile() splits sandboxer's fields from the extension's", () => {
  const profile = parseProfile("profiles/dev.yaml", DEV, { home: "/home/ana" });
  assert.equal(profile.id, "profile.dev");
  assert.equal(profile.name, "dev");
  assert.equal(profile.file, "profiles/dev.yaml");
  assert.equal(profile.description, "Remote build box");
  assert.equal(profile.extension, "ext.vm-packer");
  assert.deepEqual(profile.config, { target: { host: "build1", port: 2222 } });
  assert.deepEqual(profile.sync, {
    source: "/home/ana/src/app",
    exclude: ["node_modules", ".cache"],
    gitignore: true,
    includeGit: false,
    seed: "source",
    seedMaxMb: 4096,
    seedTtlSeconds: 7 * 86400,
  });
  assert.deepEqual(profile.setup, ["make deps"]);
  assert.equal(profile.ttlSeconds, 28_800);
  assert.equal(profile.source.locate("target.port").line, 6);
});

Deno.test("parseProfile() fills defaults for the optional sections", () => {
  const profile = parseProfile("p/min.yml", "id: profile.min\nextension: ext.compose\n");
  assert.deepEqual(profile.sync, {
    exclude: [],
    gitignore: true,
    includeGit: false,
    seed: "source",
    seedMaxMb: 4096,
    seedTtlSeconds: 7 * 86400,
  });
  assert.deepEqual(profile.setup, []);
  assert.equal(profile.ttlSeconds, undefined);
  assert.equal(profile.description, undefined);
  assert.deepEqual(profile.config, {});
});

Deno.test("parseProfile() requires the id to match the file name", () => {
  const error = configError(() =>
    parseProfile("profiles/dev.yaml", DEV.replace("profile.dev", "profile.prod"))
  );
  assert.equal(error.location.field, "id");
  assert.equal(error.location.line, 1);
  assert.equal(
    error.message,
    `profiles/dev.yaml:1:5: id: must be "profile.dev" to match the file name dev.yaml (got "profile.prod"); change the id or rename the file`,
  );
});

Deno.test("parseProfile() checks the extension id's format and requires it", () => {
  const error = configError(() =>
    parseProfile("dev.yaml", DEV.replace("ext.vm-packer", "vm-packer"))
  );
  assert.equal(error.location.line, 3);
  assert.match(error.problem, /\(got "vm-packer"\); did you mean "ext.vm-packer"\?$/);
  const spaced = configError(() =>
    parseProfile("dev.yaml", DEV.replace("ext.vm-packer", "Ext.VM Packer"))
  );
  assert.match(spaced.problem, /; did you mean "ext\.vm-packer"\?$/);
  const missing = configError(() => parseProfile("dev.yaml", "id: profile.dev\n"));
  assert.equal(missing.location.field, "extension");
  assert.match(missing.problem, /^is required/);
});

Deno.test("parseProfile() type-checks ttl, setup and sync", () => {
  const ttl = configError(() => parseProfile("dev.yaml", DEV.replace("ttl: 8h", "ttl: soon")));
  assert.equal(ttl.location.line, 12);
  assert.match(ttl.problem, /^must be a duration/);
  const setup = configError(() =>
    parseProfile("dev.yaml", DEV.replace("setup:\n  - make deps", "setup: make deps"))
  );
  assert.equal(setup.location.line, 10);
  assert.match(setup.problem, /a single string is not a list/);
  const sync = configError(() => parseProfile("dev.yaml", DEV.replace("exclude:", "exlcude:")));
  assert.equal(sync.location.field, "sync.exlcude");
  assert.match(sync.problem, /did you mean "sync.exclude"\?/);
  const gitignore = configError(() =>
    parseProfile("dev.yaml", DEV.replace("  exclude:", "  gitignore: 0\n  exclude:"))
  );
  assert.equal(gitignore.problem, "must be true or false (got 0)");
});

Deno.test("parseProfile() checks the warm-workspace fields with file, line and field", () => {
  const withSync = (lines: string) => DEV.replace("  exclude:", `${lines}\n  exclude:`);
  const seedLine = DEV.split("\n").findIndex((line) => line.startsWith("  exclude:")) + 1;
  const ok = parseProfile(
    "dev.yaml",
    withSync("  seed: workspace\n  seed_max_mb: 512\n  seed_ttl: 2d"),
  );
  assert.equal(ok.sync.seed, "workspace");
  assert.equal(ok.sync.seedMaxMb, 512);
  assert.equal(ok.sync.seedTtlSeconds, 2 * 86400);
  const mode = configError(() => parseProfile("dev.yaml", withSync("  seed: always")));
  assert.equal(mode.location.field, "sync.seed");
  assert.equal(mode.location.line, seedLine);
  assert.match(mode.message, /^dev\.yaml:\d+:\d+: sync\.seed: .*"source".*"workspace".*"off"/);
  const size = configError(() => parseProfile("dev.yaml", withSync("  seed_max_mb: 0")));
  assert.equal(size.location.field, "sync.seed_max_mb");
  const ttl = configError(() => parseProfile("dev.yaml", withSync("  seed_ttl: later")));
  assert.equal(ttl.location.field, "sync.seed_ttl");
  assert.match(ttl.problem, /^must be a duration/);
  const typo = configError(() => parseProfile("dev.yaml", withSync("  seeds: off")));
  assert.match(typo.problem, /did you mean "sync.seed"\?/);
});

Deno.test("parseProfile() rejects empty files and lists", () => {
  assert.match(configError(() => parseProfile("e.yaml", "")).problem, /^is empty/);
  assert.match(configError(() => parseProfile("e.yaml", "- a\n")).problem, /got a list/);
});

Deno.test("parseProfile() applies --set overrides before validation", () => {
  const profile = parseProfile("dev.yaml", DEV, {
    overrides: ["target.port=12222", "sync.gitignore=false", "setup=[a, b]", "ttl=90"],
  });
  assert.deepEqual(profile.config, { target: { host: "build1", port: 12222 } });
  assert.equal(profile.sync.gitignore, false);
  assert.deepEqual(profile.setup, ["a", "b"]);
  assert.equal(profile.ttlSeconds, 90);
});

Deno.test("a type error in an overridden field names the --set flag", () => {
  const ttl = configError(() => parseProfile("dev.yaml", DEV, { overrides: ["ttl=soon"] }));
  assert.equal(ttl.location.file, "--set ttl=soon");
  assert.match(ttl.message, /^--set ttl=soon: ttl: must be a duration/);
  // the extension's fields: validated later against its schema
  const profile = parseProfile("dev.yaml", DEV, { overrides: ["target.port=abc"] });
  const error = configError(() => validateConfig(profile.config, VM_SCHEMA, profile.source));
  assert.equal(
    error.message,
    `--set target.port=abc: target.port: must be an integer from 1 to 65535 (got "abc")`,
  );
  // fields not overridden are still located in the file
  const host = configError(() =>
    validateConfig({ target: { host: 5 } }, VM_SCHEMA, profile.source)
  );
  assert.equal(host.location.file, "dev.yaml");
  assert.equal(host.location.line, 5);
});

Deno.test("parseProfile() passes bad --set syntax on as a UsageError", () => {
  assert.throws(() => parseProfile("dev.yaml", DEV, { overrides: ["ttl"] }), UsageError);
});

Deno.test("profileSearchPath() puts the built-in directory first", () => {
  assert.deepEqual(profileSearchPath({ builtinDir: "/opt/sbx/profiles" }), ["/opt/sbx/profiles"]);
  assert.deepEqual(
    profileSearchPath({ builtinDir: "/b", env: "/etc/sbx::/home/a/p:/b" }),
    ["/b", "/etc/sbx", "/home/a/p"],
  );
});

Deno.test("loadProfile() finds a name along the search path", async () => {
  await using tmp = await tempDir();
  const first = join(tmp.path, "first");
  const second = join(tmp.path, "second");
  await Deno.mkdir(first);
  const devFile = await write(second, "dev.yaml", profileText("dev"));
  const ymlFile = await write(second, "ci.yml", profileText("ci"));
  await write(first, "shared.yaml", profileText("shared"));
  await write(second, "shared.yaml", profileText("shared", "description: shadowed\n"));
  const searchPath = [join(tmp.path, "missing"), first, second];

  const dev = await loadProfile("dev", { searchPath });
  assert.equal(dev.file, devFile);
  assert.deepEqual(dev.config, { target: { host: "dev-host" } });
  assert.equal((await loadProfile("profile.dev", { searchPath })).file, devFile);
  assert.equal((await loadProfile("ci", { searchPath })).file, ymlFile);
  const shared = await loadProfile("shared", { searchPath });
  assert.equal(shared.file, join(first, "shared.yaml"));
  assert.equal(shared.description, undefined);
  const overridden = await loadProfile("dev", { searchPath, overrides: ["target.port=2"] });
  assert.deepEqual(overridden.config, { target: { host: "dev-host", port: 2 } });
});

Deno.test("loadProfile() reads a file path relative to cwd", async () => {
  await using tmp = await tempDir();
  const file = await write(join(tmp.path, "mine"), "box.yaml", profileText("box"));
  const profile = await loadProfile("mine/box.yaml", { searchPath: [], cwd: tmp.path });
  assert.equal(profile.file, file);
  assert.equal(profile.name, "box");
  assert.equal((await loadProfile(file, { searchPath: [] })).id, "profile.box");
});

Deno.test("loadProfile() throws ProfileNotFoundError naming where it looked", async () => {
  await using tmp = await tempDir();
  await assert.rejects(
    () => loadProfile("nope", { searchPath: [tmp.path] }),
    (error: unknown) => {
      assert.ok(error instanceof ProfileNotFoundError);
      assert.match(error.message, /Cannot find profile "nope": searched /);
      assert.ok(error.message.includes(tmp.path));
      return true;
    },
  );
  await assert.rejects(
    () => loadProfile("./absent.yaml", { searchPath: [], cwd: tmp.path }),
    ProfileNotFoundError,
  );
});

Deno.test({
  name: "loadProfile() explains a missing --allow-read",
  permissions: { read: false },
  async fn() {
    await assert.rejects(
      () => loadProfile("/no/access/dev.yaml", { searchPath: [] }),
      (error: unknown) => {
        assert.ok(error instanceof PermissionError);
        assert.match(error.message, /--allow-read=\/no\/access\/dev\.yaml/);
        return true;
      },
    );
  },
});

Deno.test("listProfiles() reports a broken file without hiding the healthy ones", async () => {
  await using tmp = await tempDir();
  const first = join(tmp.path, "first");
  const second = join(tmp.path, "second");
  await write(first, "dev.yaml", profileText("dev"));
  const broken = await write(first, "broken.yaml", "id: profile.broken\nextension: [\n");
  await write(first, "wrong.yaml", profileText("other"));
  await write(first, "notes.txt", "not a profile");
  await write(second, "dev.yaml", profileText("dev", "description: shadowed\n"));
  await write(second, "ci.yml", profileText("ci"));

  const { profiles, errors } = await listProfiles([first, join(tmp.path, "missing"), second]);
  assert.deepEqual(profiles.map((p) => p.name), ["ci", "dev"]);
  assert.equal(profiles.find((p) => p.name === "dev")?.description, undefined);
  assert.equal(errors.length, 2);
  const [brokenError, wrongError] = errors;
  assert.equal(brokenError.location.file, broken);
  assert.equal(brokenError.location.line, 3);
  assert.equal(wrongError.location.field, "id");
});

Deno.test("the extension's validation suggests a misspelt profile key", () => {
  const profile = parseProfile("dev.yaml", `${DEV}setpu: [make]\n`);
  assert.deepEqual(profile.config.setpu, ["make"]);
  const error = configError(() => validateConfig(profile.config, VM_SCHEMA, profile.source));
  assert.equal(error.location.line, 13);
  assert.match(error.problem, /\(did you mean "setup"\?\)$/);
});

Deno.test("parseProfile() keeps a __proto__ key as a plain field", () => {
  const profile = parseProfile("dev.yaml", `${DEV}__proto__: {polluted: true}\n`);
  assert.ok(Object.hasOwn(profile.config, "__proto__"));
  assert.equal((profile.config as Record<string, unknown>).polluted, undefined);
});
