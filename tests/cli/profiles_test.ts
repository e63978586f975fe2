// `sandboxer profiles` validates every profile the way `create` would: an invalid one (a port out
// of range, a misspelt field) is named with file, line and field and makes the exit code 1; a
// well-formed profile whose key file this machine lacks stays listed with a note.
import assert from "node:assert/strict";
import { runSandboxer, tempDir } from "../helpers.ts";

async function profileDir(dir: string, files: Record<string, string>): Promise<string> {
  await Deno.mkdir(`${dir}/p`);
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/p/${name}.yaml`, text);
  }
  return `${dir}/p`;
}

const GOOD = "id: profile.good\nextension: ext.vm-packer\ntarget:\n  host: h\n";

Deno.test("profiles: each invalid profile is one line naming file, line and field; exit 1", async () => {
  await using tmp = await tempDir();
  const path = await profileDir(tmp.path, {
    good: GOOD,
    bad: "id: profile.bad\nextension: ext.vm-packer\ntarget:\n  host: h\n  port: 99999\n",
    typo:
      "id: profile.typo\nextension: ext.vm-packer\ntarget:\n  host: h\nworksapce:\n  root: /b\n",
  });
  const env = { HOME: tmp.path, SANDBOXER_HOME: `${tmp.path}/state`, SANDBOXER_PROFILE_PATH: path };
  const result = await runSandboxer(["profiles"], env);
  assert.equal(result.code, 1, result.stderr);
  assert.deepEqual(result.stderr.trimEnd().split("\n"), [
    `sandboxer: error: ${path}/bad.yaml:5:9: target.port: must be an integer from 1 to 65535 (got 99999)`,
    `sandboxer: error: ${path}/typo.yaml:5:1: worksapce: is not a known field; remove it or fix its name (did you mean "workspace"?)`,
  ]);
  assert.match(result.stdout, /^good\s+ext\.vm-packer\s/m);
  assert.doesNotMatch(result.stdout, /^(bad|typo)\s/m);

  const json = await runSandboxer(["profiles", "--json"], env);
  assert.equal(json.code, 1);
  const parsed = JSON.parse(json.stdout);
  assert.equal(parsed.errors.length, 2);
  assert.ok(parsed.profiles.some((p: { name: string }) => p.name === "good"));
});

Deno.test("profiles: a missing key file is a note on a listed profile, not an error", async () => {
  await using tmp = await tempDir();
  const path = await profileDir(tmp.path, {
    good: GOOD,
    keyed: `${GOOD.replace("good", "keyed")}  identity_file: ${tmp.path}/no-such-key\n`,
  });
  const env = { HOME: tmp.path, SANDBOXER_HOME: `${tmp.path}/state`, SANDBOXER_PROFILE_PATH: path };
  const result = await runSandboxer(["profiles", "--json"], env);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  const { profiles, errors } = JSON.parse(result.stdout);
  assert.deepEqual(errors, []);
  const keyed = profiles.find((p: { name: string }) => p.name === "keyed");
  assert.equal(keyed.ready, false);
  assert.equal(keyed.note, `target.identity_file: no such file ${tmp.path}/no-such-key`);
  assert.equal(profiles.find((p: { name: string }) => p.name === "good").ready, true);
});
