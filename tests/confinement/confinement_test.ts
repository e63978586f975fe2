// Third-party extensions run with no more than their registration declares. These tests fail if
// the confinement is removed: every attempted operation would then succeed.
import assert from "node:assert/strict";
import { Manager, PermissionError } from "../../mod.ts";
import { SandboxNotFoundError } from "../../errors.ts";
import { listDir, ROOT, runSandboxer, tempDir, writeProfile } from "../helpers.ts";

const NOSY = `${ROOT}/tests/fixtures/confined`;

async function attemptProfile(dir: string, attempt: string, extra = ""): Promise<string> {
  await Deno.mkdir(`${dir}/ws`, { recursive: true });
  return await writeProfile(
    dir,
    `nosy-${attempt}`,
    `extension: ext.nosy\nroot: ${dir}/ws\nattempt: ${attempt}\n${extra}`,
  );
}

Deno.test("a confined extension that stays within its declared permissions works", async () => {
  await using tmp = await tempDir();
  await attemptProfile(tmp.path, "none");
  await using manager = await Manager.open({
    stateDir: `${tmp.path}/state`,
    extensionDirs: [NOSY],
    profileDirs: [tmp.path],
    env: () => undefined,
  });
  const record = await manager.create({ profile: "nosy-none", name: "fine" });
  assert.equal(record.status, "ready");
  assert.deepEqual(record.permissions?.read, [`${tmp.path}/ws`]);
  assert.deepEqual(record.permissions?.run, []);
  assert.deepEqual(await listDir(`${tmp.path}/ws`), ["sbx-fine"]);
  await manager.destroy("fine");
  assert.deepEqual(await listDir(`${tmp.path}/ws`), []);
});

for (
  const [attempt, kind, resource] of [
    ["read", "read", "secret.txt"],
    ["write", "write", "outside.txt"],
    ["net", "net", "127.0.0.1:"],
    ["run", "run", "id"],
    ["env", "env", "HOME"],
  ] as const
) {
  Deno.test(`an undeclared ${attempt} is refused, named, and leaves nothing half-made`, async () => {
    await using tmp = await tempDir();
    const secret = `${tmp.path}/secret.txt`;
    await Deno.writeTextFile(secret, "top secret\n");
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const probe = attempt === "read" ? secret : `${tmp.path}/outside.txt`;
    await attemptProfile(
      tmp.path,
      attempt,
      `probe_file: ${probe}\nprobe_host: 127.0.0.1:${listener.addr.port}\n`,
    );
    await using manager = await Manager.open({
      stateDir: `${tmp.path}/state`,
      extensionDirs: [NOSY],
      profileDirs: [tmp.path],
      env: () => undefined,
    });
    await assert.rejects(
      manager.create({ profile: `nosy-${attempt}`, name: "nosy" }),
      (error: unknown) => {
        assert.ok(error instanceof PermissionError, String(error));
        assert.equal(error.permission, kind);
        assert.match(
          error.message,
          new RegExp(`${kind} access to .*${resource.replace(".", "\\.")}`),
        );
        assert.match(error.message, /ext\.nosy, which its registration does not declare/);
        assert.match(error.message, /ext\.nosy\.yaml/);
        return true;
      },
    );
    // Rolled back: the workspace it made before the refused operation is gone.
    assert.deepEqual(await listDir(`${tmp.path}/ws`), []);
    await assert.rejects(manager.show("nosy"), SandboxNotFoundError, "no record left");
    assert.equal(await Deno.readTextFile(secret), "top secret\n");
    assert.equal(await Deno.stat(`${tmp.path}/outside.txt`).then(() => true, () => false), false);
  });
}

Deno.test("the CLI reports an undeclared read in one line naming the permission", async () => {
  await using tmp = await tempDir();
  await Deno.writeTextFile(`${tmp.path}/secret.txt`, "top secret\n");
  await attemptProfile(tmp.path, "read", `probe_file: ${tmp.path}/secret.txt\n`);
  const result = await runSandboxer(["create", "-p", "nosy-read", "--name", "cli"], {
    SANDBOXER_HOME: `${tmp.path}/state`,
    SANDBOXER_PROFILE_PATH: tmp.path,
    SANDBOXER_EXTENSION_PATH: NOSY,
    HOME: tmp.path,
  });
  assert.equal(result.code, 1);
  const lines = result.stderr.trim().split("\n").filter((l) => l.includes("error:"));
  assert.equal(lines.length, 1, result.stderr);
  assert.match(
    lines[0],
    /Missing permission: read access to .*secret\.txt" by extension ext\.nosy/,
  );
  assert.deepEqual(await listDir(`${tmp.path}/ws`), []);
});
