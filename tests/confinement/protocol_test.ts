// A confined extension's worker can post anything. A forged or malformed message must end that
// extension with a one-line error, roll the half-made sandbox back and never leave its record in
// `creating`; before every message was checked, the first one below crashed sandboxer with a
// stack trace (exit 1) and left the record `creating`.
import assert from "node:assert/strict";
import { Manager } from "../../mod.ts";
import { ExtensionError, SandboxNotFoundError } from "../../errors.ts";
import { listDir, ROOT, runSandboxer, tempDir, writeProfile } from "../helpers.ts";

const FIXTURES = `${ROOT}/tests/fixtures/confined`;

async function forgerProfile(dir: string, forge: string): Promise<string> {
  await Deno.mkdir(`${dir}/ws`, { recursive: true });
  return await writeProfile(
    dir,
    `forge-${forge}`,
    `extension: ext.forger\nroot: ${dir}/ws\nforge: ${forge}\n`,
  );
}

Deno.test('the CLI survives {type: "log", level: "nope"}: one line, exit 1, rolled back', async () => {
  await using tmp = await tempDir();
  await forgerProfile(tmp.path, "bad-level");
  const env = {
    SANDBOXER_HOME: `${tmp.path}/state`,
    SANDBOXER_PROFILE_PATH: tmp.path,
    SANDBOXER_EXTENSION_PATH: FIXTURES,
    HOME: tmp.path,
  };
  const result = await runSandboxer(["create", "-p", "forge-bad-level", "--name", "forged"], env);
  assert.equal(result.code, 1, result.stderr);
  assert.doesNotMatch(result.stderr, /internal error|^\s+at /m);
  const errors = result.stderr.split("\n").filter((line) => line.includes("error"));
  assert.deepEqual(errors, [
    'sandboxer: error: Extension "ext.forger" sent a malformed message (log level is "nope", not one of debug, info, warn, error) and was stopped; report this to its author',
  ]);
  assert.deepEqual(await listDir(`${tmp.path}/ws`), [], "the half-made workspace was removed");
  // Rolled back: no record is left and the name is free again.
  const show = await runSandboxer(["show", "forged", "--json"], env);
  assert.equal(show.code, 1, show.stderr);
  assert.match(show.stderr, /Cannot find sandbox "forged"/);
});

const CASES: [string, RegExp][] = [
  ["unknown-type", /sent a malformed message \(unknown message type "pwn"\)/],
  ["wrong-id", /sent a malformed message \("result" for call 9999, which is not running\)/],
  ["huge-log", /sent a malformed message \(log message is 8388608 characters, more than 65536\)/],
  ["not-an-object", /sent a malformed message \(a message is a string, not an object\)/],
  ["null-message", /sent a malformed message \(a message is null, not an object\)/],
  ["bad-handle", /sent a malformed message \(handle is a string, not an object\)/],
  ["bad-step", /sent a malformed message \(step name is empty or has control characters\)/],
  ["output-in-create", /sent a malformed message \("stdout" during create\(\)\)/],
  ["forged-ready", /sent a malformed message \("ready" after the extension was loaded\)/],
  ["bad-result", /sent a malformed message \(create's result is not a handle\)/],
  ["deno-exit", /failed: Deno\.exit\(\) is not available to a confined extension/],
  ["close", /failed: close\(\) is not available to a confined extension/],
  ["throw-later", /crashed: thrown from a timer/],
  ["reject-later", /crashed: rejected with nobody listening/],
];

Deno.test("every malformed message ends the extension, and the sandbox is rolled back", async (t) => {
  await using tmp = await tempDir();
  // A manager per case: the forger guesses that its create() is the worker's call 1.
  const open = () =>
    Manager.open({
      stateDir: `${tmp.path}/state`,
      extensionDirs: [FIXTURES],
      profileDirs: [tmp.path],
      env: () => undefined,
    });
  for (const [forge, expected] of CASES) {
    await t.step(forge, async () => {
      await using manager = await open();
      await forgerProfile(tmp.path, forge);
      const id = forge.replace(/[^a-z0-9-]/g, "");
      await assert.rejects(manager.create({ profile: `forge-${forge}`, name: id }), (error) => {
        assert.ok(error instanceof ExtensionError, String(error));
        assert.match(error.message, expected);
        assert.ok(!error.message.includes("\n"), "one line");
        return true;
      });
      // Rolled back: no record is left.
      await assert.rejects(manager.show(id), SandboxNotFoundError);
      assert.deepEqual(await listDir(`${tmp.path}/ws`), []);
    });
  }
  await t.step("the same extension, behaving, still works afterwards", async () => {
    await using manager = await open();
    await forgerProfile(tmp.path, "none");
    const record = await manager.create({ profile: "forge-none", name: "honest" });
    assert.equal(record.status, "ready");
    assert.equal(await manager.exec("honest", ["true"]), 0);
    await manager.destroy("honest");
    assert.deepEqual(await listDir(`${tmp.path}/ws`), []);
  });
});
