import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { BUILTIN_EXTENSIONS_DIR, BUILTIN_PROFILES_DIR } from "./builtin_files.ts";
import { listProfiles, loadProfile } from "./profile.ts";
import { loadRegistrations } from "./registration.ts";
import type { EmbeddedDir } from "./files.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

async function yamlFiles(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && /\.ya?ml$/.test(entry.name)) {
      files[entry.name] = await Deno.readTextFile(`${dir}/${entry.name}`);
    }
  }
  return files;
}

for (
  const [name, embedded] of [["extensions", BUILTIN_EXTENSIONS_DIR], [
    "profiles",
    BUILTIN_PROFILES_DIR,
  ]] as const
) {
  Deno.test(`builtin_files.ts embeds every YAML file of ${name}/, as it is on disk`, async () => {
    // A file added to the directory but not imported in builtin_files.ts would be invisible to
    // every sandboxer that is not this checkout: list it there.
    assert.deepEqual(
      Object.keys(embedded.files).sort(),
      Object.keys(await yamlFiles(`${ROOT}${name}`)).sort(),
    );
    assert.deepEqual(embedded.files, await yamlFiles(`${ROOT}${name}`));
    assert.equal(embedded.path, `${ROOT}${name}`);
  });
}

// What a sandboxer imported from http://host/… sees: its built-in directories are URLs.
const REMOTE_PROFILES: EmbeddedDir = {
  path: "http://127.0.0.1:9/sbx/profiles",
  files: {
    "box.yaml": "id: profile.box\nextension: ext.vm-packer\nttl: [8h\n",
    "ok.yaml": "id: profile.ok\nextension: ext.vm-packer\n",
  },
};

Deno.test("a built-in profile at a URL loads, and its errors name the URL with line and column", async () => {
  const searchPath = [REMOTE_PROFILES.path];
  const ok = await loadProfile("ok", { searchPath, embedded: [REMOTE_PROFILES] });
  assert.equal(ok.file, "http://127.0.0.1:9/sbx/profiles/ok.yaml");
  const { profiles, errors } = await listProfiles(searchPath, [REMOTE_PROFILES]);
  assert.deepEqual(profiles.map((p) => p.id), ["profile.ok"]);
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /^http:\/\/127\.0\.0\.1:9\/sbx\/profiles\/box\.yaml:4:1: /);
});

Deno.test("built-in registrations at a URL load as built-in, and resolve their module against it", async () => {
  const dir: EmbeddedDir = {
    path: "http://127.0.0.1:9/sbx/extensions",
    files: {
      "ext.demo.yaml": [
        "id: ext.demo",
        "version: 1.0.0",
        "description: Demo",
        "module: ../src/demo.ts",
        "export: DemoExtension",
      ].join("\n"),
    },
  };
  const { registrations, errors } = await loadRegistrations([dir.path], {
    builtinDir: dir.path,
    embedded: [dir],
  });
  assert.deepEqual(errors, []);
  assert.equal(registrations[0].builtin, true);
  assert.equal(registrations[0].file, "http://127.0.0.1:9/sbx/extensions/ext.demo.yaml");
  assert.equal(registrations[0].moduleUrl, "http://127.0.0.1:9/sbx/src/demo.ts");
});
