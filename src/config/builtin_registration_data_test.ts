// The registrations parsed ahead of time are exactly what parsing the built-in files gives now,
// and a registration loaded from them equals one parsed from the YAML: a changed file fails here
// until `deno task gen:builtin-data` is run.
import assert from "node:assert/strict";
import { BUILTIN_EXTENSIONS_DIR } from "./builtin_files.ts";
import { BUILTIN_REGISTRATION_DATA } from "./builtin_registration_data.ts";
import { loadRegistrations, parseRegistration } from "./registration.ts";
import { parseYamlDocument } from "./yaml_source.ts";

Deno.test("the built-in registration data matches the files; else run deno task gen:builtin-data", () => {
  assert.deepEqual(
    Object.keys(BUILTIN_REGISTRATION_DATA).sort(),
    Object.keys(BUILTIN_EXTENSIONS_DIR.files).sort(),
  );
  for (const [name, text] of Object.entries(BUILTIN_EXTENSIONS_DIR.files)) {
    const entry = BUILTIN_REGISTRATION_DATA[name];
    assert.equal(entry.text, text, `${name} changed: run deno task gen:builtin-data`);
    assert.deepEqual(entry.data, parseYamlDocument(name, text).data, name);
  }
});

Deno.test("built-in registrations load from the data as from their YAML, and a changed text is parsed", async () => {
  const dir = BUILTIN_EXTENSIONS_DIR;
  const { registrations, errors } = await loadRegistrations([dir.path], {
    builtinDir: dir.path,
    embedded: [dir],
  });
  assert.deepEqual(errors, []);
  for (const registration of registrations) {
    const name = `${registration.id}.yaml`;
    const fromYaml = parseRegistration(`${dir.path}/${name}`, dir.files[name], { builtin: true });
    assert.deepEqual(registration, fromYaml);
  }
  // An edited built-in file (a checkout) is parsed, not taken from stale data.
  const name = "ext.vm-packer.yaml";
  const edited = {
    ...dir,
    files: { ...dir.files, [name]: dir.files[name].replace(/^version: .*$/m, "version: 9.9.9") },
  };
  const loaded = await loadRegistrations([dir.path], { builtinDir: dir.path, embedded: [edited] });
  assert.equal(loaded.registrations.find((r) => r.id === "ext.vm-packer")?.version, "9.9.9");
});
