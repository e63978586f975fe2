// The SDK's Sandbox object against a real sshd: create, exec (text result and streaming), sync,
// fetch and `await using` destroy; its errors name SDK options, never CLI flags.
import assert from "node:assert/strict";
import { Manager, Sandbox, SandboxerError } from "../../mod.ts";
import { HostKeyError, UsageError } from "../../src/core/errors.ts";
import { tempDir, workspaceRootEntries } from "../helpers.ts";
import { startTestVm, type TestVm } from "../harness/test_vm.ts";

/** A CLI option such as --name or --accept-new-host-key (Deno's own --allow-* flags aside). */
const CLI_FLAG = /(^|[\s("])--(?!allow-)[a-z]/;

function managerOptions(vm: TestVm) {
  return { stateDir: vm.env.SANDBOXER_HOME, env: (name: string) => vm.env[name] };
}

Deno.test("Sandbox: create, exec, sync, fetch, and await using destroys it", async () => {
  await using vm = await startTestVm();
  await using work = await tempDir();
  const repo = `${work.path}/repo`;
  await Deno.mkdir(repo);
  await Deno.writeTextFile(`${repo}/hello.txt`, "hello from the repo\n");
  const profile = await vm.profile("sdk");
  let id: string;
  {
    await using box = await Sandbox.create({ profile, repo, ...managerOptions(vm) });
    id = box.id;
    assert.equal(box.record.status, "ready");

    assert.deepEqual(await box.exec(["cat", "hello.txt"]), {
      code: 0,
      stdout: "hello from the repo\n",
      stderr: "",
    });

    // Streaming callbacks still see every chunk; the result has it all as text too.
    const streamed: Uint8Array[] = [];
    const result = await box.exec(["sh", "-c", "printf 'out\\n'; printf 'é err\\n' >&2; exit 3"], {
      stderr: (chunk) => streamed.push(chunk),
    });
    assert.deepEqual(result, { code: 3, stdout: "out\n", stderr: "é err\n" });
    assert.equal(new TextDecoder().decode(streamed[0]), "é err\n");

    // sync() defaults to the repo given to create().
    await Deno.writeTextFile(`${repo}/hello.txt`, "changed\n");
    const report = await box.sync();
    assert.ok(report.files >= 1, JSON.stringify(report));
    assert.equal((await box.exec(["cat", "hello.txt"])).stdout, "changed\n");

    await box.exec(["sh", "-c", "mkdir -p dist && echo built > dist/out.txt"]);
    await box.fetch("dist/out.txt", `${work.path}/artifacts`);
    assert.equal(await Deno.readTextFile(`${work.path}/artifacts/out.txt`), "built\n");
    assert.deepEqual(await vm.rootEntries(), [`sbx-${id}`]);
  }
  // Leaving the block destroyed the sandbox and closed the manager Sandbox.create opened.
  assert.deepEqual(await workspaceRootEntries(vm.root), []);
  await using manager = await Manager.open(managerOptions(vm));
  assert.equal((await manager.show(id)).status, "destroyed");
});

Deno.test("Sandbox: destroy() is idempotent and a shared manager stays open", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("sdk");
  await using manager = await Manager.open(managerOptions(vm));
  const box = await Sandbox.create({ profile, name: "shared-1", manager });
  await box.destroy();
  await box.destroy();
  await box[Symbol.asyncDispose]();
  assert.equal(box.record.status, "destroyed");
  // The manager the caller passed in is still usable.
  assert.equal((await manager.show("shared-1")).status, "destroyed");
  assert.deepEqual(await workspaceRootEntries(vm.root), []);
});

Deno.test("Sandbox errors name SDK options, not CLI flags", async () => {
  await using vm = await startTestVm();
  await using work = await tempDir();
  const empty = `${work.path}/empty_known_hosts`;
  await Deno.writeTextFile(empty, "");
  const unknownKey = await vm.profile("unknown-key", { target: { known_hosts: empty } });
  const error = await Sandbox.create({ profile: unknownKey, ...managerOptions(vm) }).then(
    () => assert.fail("created with an unknown host key"),
    (error) => error,
  );
  assert.ok(error instanceof HostKeyError, String(error));
  assert.match(error.message, /pass acceptNewHostKey: true/);
  assert.doesNotMatch(error.message, CLI_FLAG, error.message);

  const profile = await vm.profile("sdk");
  await assert.rejects(
    Sandbox.create({ profile, repo: `${work.path}/missing`, ...managerOptions(vm) }),
    (error: unknown) => error instanceof UsageError && !CLI_FLAG.test(error.message),
  );

  await using manager = await Manager.open(managerOptions(vm));
  await using box = await Sandbox.create({ profile, name: "taken", manager });
  const taken = await Sandbox.create({ profile, name: "taken", manager }).catch((e) => e);
  assert.ok(taken instanceof SandboxerError, String(taken));
  assert.equal(taken.code, "SANDBOX_EXISTS");
  assert.match(taken.message, /pick another name/);
  assert.doesNotMatch(taken.message, CLI_FLAG, taken.message);
  await assert.rejects(
    box.exec([]),
    (error: unknown) => error instanceof UsageError && !CLI_FLAG.test(error.message),
  );
});
