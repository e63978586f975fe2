import assert from "node:assert/strict";
import { Manager } from "../../mod.ts";
import {
  ConfigError,
  SandboxNotFoundError,
  SandboxStateError,
  SetupFailedError,
} from "../../src/core/errors.ts";
import { exists, FIXTURE_EXTENSIONS, listDir, tempDir, writeProfile } from "../helpers.ts";

async function openManager(stateDir: string, profileDir: string): Promise<Manager> {
  return await Manager.open({
    stateDir,
    extensionDirs: [FIXTURE_EXTENSIONS],
    profileDirs: [profileDir],
    env: () => undefined,
  });
}

Deno.test("Manager.create() records, creates, runs setup and reaches ready", async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/ws`);
  await writeProfile(
    tmp.path,
    "local",
    `extension: ext.local-dir\nroot: ${tmp.path}/ws\nsetup:\n  - echo built > setup.txt\nttl: 1h\n`,
  );
  await using manager = await openManager(`${tmp.path}/state`, tmp.path);
  const record = await manager.create({ profile: "local", name: "box-1" });
  assert.equal(record.status, "ready");
  assert.equal(record.workspace, `${tmp.path}/ws/sbx-box-1`);
  assert.deepEqual(record.handle, { workspace: `${tmp.path}/ws/sbx-box-1` });
  assert.equal(await Deno.readTextFile(`${tmp.path}/ws/sbx-box-1/setup.txt`), "built\n");
  assert.ok(record.expires_at && Date.parse(record.expires_at) > Date.now() + 3500_000);

  const out: Uint8Array[] = [];
  const code = await manager.exec("box-1", ["sh", "-c", "pwd; exit 3"], {
    stdout: (c) => out.push(c),
  });
  assert.equal(code, 3);
  assert.equal(new TextDecoder().decode(out[0]).trim(), `${tmp.path}/ws/sbx-box-1`);

  const destroyed = await manager.destroy("box-1");
  assert.equal(destroyed.status, "destroyed");
  assert.equal(await exists(`${tmp.path}/ws/sbx-box-1`), false);
  // Idempotent: a second destroy succeeds and changes nothing.
  const again = await manager.destroy("box-1");
  assert.equal(again.updated_at, destroyed.updated_at);
});

Deno.test("Manager.create() with a bad profile leaves no record and no workspace", async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/ws`);
  await writeProfile(tmp.path, "bad", `extension: ext.local-dir\nroot: ${tmp.path}/ws\nrooot: x\n`);
  await using manager = await openManager(`${tmp.path}/state`, tmp.path);
  await assert.rejects(
    manager.create({ profile: "bad", name: "box-2" }),
    (error: unknown) =>
      error instanceof ConfigError && /bad\.yaml:4:/.test(error.message) &&
      /rooot/.test(error.message),
  );
  assert.deepEqual(await manager.list({ all: true }), []);
  assert.deepEqual(await listDir(`${tmp.path}/ws`), []);
});

Deno.test("Manager.create() refuses an invalid --name before recording anything", async () => {
  await using tmp = await tempDir();
  await writeProfile(tmp.path, "local", `extension: ext.local-dir\nroot: ${tmp.path}\n`);
  await using manager = await openManager(`${tmp.path}/state`, tmp.path);
  for (const name of ["../etc", "Upper", "-lead", "a".repeat(64), ""]) {
    await assert.rejects(manager.create({ profile: "local", name }), /Cannot use sandbox id/);
  }
  assert.deepEqual(await manager.list({ all: true }), []);
});

Deno.test("a failing setup leaves the sandbox failed with its handle, and destroy cleans it", async () => {
  await using tmp = await tempDir();
  await writeProfile(
    tmp.path,
    "setupfail",
    `extension: ext.local-dir\nroot: ${tmp.path}\nsetup:\n  - echo no ghc here >&2; exit 9\n`,
  );
  await using manager = await openManager(`${tmp.path}/state`, tmp.path);
  await assert.rejects(
    manager.create({ profile: "setupfail", name: "box-3", setupIO: {} }),
    (error: unknown) =>
      error instanceof SetupFailedError && error.exitCode === 9 &&
      /no ghc here/.test(error.message),
  );
  const record = await manager.show("box-3");
  assert.equal(record.status, "failed");
  assert.equal(record.step, "setup");
  assert.deepEqual(record.handle, { workspace: `${tmp.path}/sbx-box-3` });
  await assert.rejects(manager.exec("box-3", ["true"]), SandboxStateError);
  await manager.destroy("box-3");
  assert.equal(await exists(`${tmp.path}/sbx-box-3`), false);
});

Deno.test("a create that fails after its side effect is rolled back at once", async () => {
  await using tmp = await tempDir();
  await writeProfile(
    tmp.path,
    "crash",
    `extension: ext.local-dir\nroot: ${tmp.path}\nfail_create: true\n`,
  );
  await using manager = await openManager(`${tmp.path}/state`, tmp.path);
  await assert.rejects(manager.create({ profile: "crash", name: "box-4" }), /fail_create/);
  // Nothing is left of it, its record included, so the name is free again.
  await assert.rejects(manager.show("box-4"), SandboxNotFoundError);
  assert.equal(await exists(`${tmp.path}/sbx-box-4`), false);
  assert.deepEqual(await manager.list({ all: true }), []);
  await writeProfile(tmp.path, "crash", `extension: ext.local-dir\nroot: ${tmp.path}\n`);
  assert.equal((await manager.create({ profile: "crash", name: "box-4" })).status, "ready");
});

Deno.test("Manager.gc() destroys expired sandboxes only", async () => {
  await using tmp = await tempDir();
  await writeProfile(tmp.path, "local", `extension: ext.local-dir\nroot: ${tmp.path}\nttl: 1h\n`);
  await using manager = await openManager(`${tmp.path}/state`, tmp.path);
  await manager.create({ profile: "local", name: "old" });
  await manager.create({ profile: "local", name: "young", ttlSeconds: 3 * 3600 });
  const report = await manager.gc({ now: new Date(Date.now() + 2 * 3600_000) });
  assert.deepEqual(report.destroyed.map((d) => d.id), ["old"]);
  assert.equal((await manager.show("old")).status, "destroyed");
  assert.equal((await manager.show("young")).status, "ready");
  assert.equal(await exists(`${tmp.path}/sbx-young`), true);
});

Deno.test("two creates with the same --name: the second is refused and the first untouched", async () => {
  await using tmp = await tempDir();
  await writeProfile(tmp.path, "local", `extension: ext.local-dir\nroot: ${tmp.path}\n`);
  await using manager = await openManager(`${tmp.path}/state`, tmp.path);
  await manager.create({ profile: "local", name: "same" });
  await assert.rejects(manager.create({ profile: "local", name: "same" }), /already in use/);
  assert.equal((await manager.show("same")).status, "ready");
});

Deno.test("a create rolled back frees its name; one failed in setup stays for gc", async () => {
  await using tmp = await tempDir();
  await writeProfile(tmp.path, "norootdir", `extension: ext.local-dir\nroot: ${tmp.path}/nope\n`);
  await writeProfile(
    tmp.path,
    "setupfail",
    `extension: ext.local-dir\nroot: ${tmp.path}\nttl: 1h\nsetup:\n  - exit 3\n`,
  );
  await using manager = await openManager(`${tmp.path}/state`, tmp.path);
  await assert.rejects(manager.create({ profile: "norootdir", name: "gone" }));
  assert.deepEqual(await manager.list(), [], "rolled back: not listed");
  await Deno.mkdir(`${tmp.path}/nope`);
  assert.equal((await manager.create({ profile: "norootdir", name: "gone" })).status, "ready");
  await manager.destroy("gone");

  await assert.rejects(manager.create({ profile: "setupfail", name: "kept", setupIO: {} }));
  assert.equal((await manager.show("kept")).status, "failed");
  assert.deepEqual((await manager.gc()).destroyed, [], "not expired yet: kept to look at");
  const report = await manager.gc({ now: new Date(Date.now() + 2 * 3600_000) });
  assert.deepEqual(report.destroyed.map((d) => d.id), ["kept"]);
  assert.equal(await exists(`${tmp.path}/sbx-kept`), false);
});
