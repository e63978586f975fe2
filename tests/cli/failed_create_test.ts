// What a failed create leaves, against a real sshd: nothing made, or made and rolled back → no
// record and the name free again; made and kept (setup failed) → a `failed` record that `ssh`,
// `logs`, `destroy` and `gc` all handle.
import assert from "node:assert/strict";
import { freePort } from "../harness/sshd.ts";
import { startNetnsHost } from "../harness/netns.ts";
import { createOk, startTestVm } from "../harness/test_vm.ts";
import { runSandboxer } from "../helpers.ts";
import { FAST, faultTest, readRecord } from "../faults/fault_helpers.ts";

/** The one `sandboxer: error:` line, after checking there is exactly one. */
function errorLine(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l.startsWith("sandboxer: error:"));
  assert.equal(lines.length, 1, stderr);
  assert.doesNotMatch(stderr, /internal error|^\s+at /m);
  return lines[0];
}

Deno.test("failed create: an unreachable host leaves no record and the name free", async () => {
  await using vm = await startTestVm();
  const dead = await vm.profile("dead", { target: { port: await freePort() } });
  const result = await vm.cli(["create", "-p", dead, "--name", "u1", ...FAST]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(errorLine(result.stderr), /Cannot connect .*connection refused/);
  assert.doesNotMatch(result.stderr, /kept the failed sandbox/);
  assert.equal(await readRecord(vm.env.SANDBOXER_HOME, "u1"), undefined);
  assert.deepEqual(await vm.list(), []);
  const show = await vm.cli(["show", "u1"]);
  assert.equal(show.code, 1);
  assert.match(show.stderr, /Cannot find sandbox "u1"/);
  // The name is free: the same name on a reachable host works.
  await createOk(vm, ["-p", await vm.profile("live"), "--name", "u1"]);
  assert.equal((await vm.cli(["destroy", "u1"])).code, 0);
});

faultTest(
  "failed create: a workspace made on a full disk is rolled back: no record, nothing left, name free",
  async () => {
    await using host = await startNetnsHost({ tmpfsSize: "256k" });
    const profile = await host.profile("p");
    const state = host.env.SANDBOXER_HOME;
    // Fill the disk: mkdir still succeeds (a tmpfs directory takes no pages), the marker cannot
    // be written, so the workspace is made and then fails before create finishes.
    const fill = await Deno.open(`${host.root}/FILL`, { write: true, create: true });
    try {
      const chunk = new Uint8Array(64 * 1024);
      for (;;) await fill.write(chunk);
    } catch (error) {
      if (!(error instanceof Error) || !/space|ENOSPC|No space/i.test(String(error))) throw error;
    } finally {
      fill.close();
    }
    const result = await runSandboxer(
      ["create", "-p", profile, "--name", "full", ...FAST],
      host.env,
    );
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      errorLine(result.stderr),
      /sbx-full could not be created .*cannot write the marker .*disk full/,
    );
    assert.match(result.stderr, /rolled back the half-made sandbox full: nothing is left/);
    assert.equal(await readRecord(state, "full"), undefined, "no record left");
    assert.deepEqual(await host.rootEntries(), ["FILL"], "nothing left on the host");
    const list = await runSandboxer(["list", "--all", "--json"], host.env);
    assert.deepEqual(JSON.parse(list.stdout), []);
    // Free the disk: the same name works at once.
    await Deno.remove(`${host.root}/FILL`);
    const again = await runSandboxer(
      ["create", "-p", profile, "--name", "full", ...FAST],
      host.env,
    );
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await runSandboxer(["destroy", "full"], host.env)).code, 0);
    assert.deepEqual(await host.rootEntries(), []);
  },
);

Deno.test("failed create: setup fails → a failed record for ssh, logs, destroy and gc", async (t) => {
  await using vm = await startTestVm();
  const failing = await vm.profile("failing", {
    extra: ["setup:", "  - touch left-behind; echo setup says why >&2; exit 3"],
  });

  await t.step("kept failed, and the CLI says how to look and how to remove it", async () => {
    const result = await vm.cli(["create", "-p", failing, "--name", "f1", "--ttl", "1h"]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(errorLine(result.stderr), /Setup command .* failed with exit code 3/);
    assert.match(
      result.stderr,
      /kept the failed sandbox f1 to look at \("sandboxer ssh f1", "sandboxer logs f1"\); remove it with "sandboxer destroy f1"/,
    );
    const record = await vm.show("f1");
    assert.equal(record.status, "failed");
    assert.equal(record.step, "setup");
    assert.equal(record.workspace, `${vm.root}/sbx-f1`);
    const listed = await vm.cli(["list", "--json"]);
    assert.deepEqual(JSON.parse(listed.stdout).map((r: { id: string }) => r.id), ["f1"]);
  });
  await t.step("ssh ID -- CMD runs in its workspace", async () => {
    const result = await vm.cli(["ssh", "f1", "--", "true"]);
    assert.equal(result.code, 0, result.stderr);
    const look = await vm.cli(["ssh", "f1", "--", "sh", "-c", "pwd -P; ls"]);
    assert.equal(look.code, 0, look.stderr);
    assert.equal(look.stdout, `${vm.root}/sbx-f1\nleft-behind\n`);
  });
  await t.step("logs shows what its setup printed", async () => {
    const logs = await vm.cli(["logs", "f1"]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /setup\| setup says why\n/);
    assert.match(logs.stdout, /create failed: Setup command/);
  });
  await t.step("destroy removes it, and the name is free", async () => {
    const destroyed = await vm.cli(["destroy", "f1"]);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.equal((await vm.show("f1")).status, "destroyed");
    assert.deepEqual(await vm.rootEntries(), []);
    await createOk(vm, ["-p", await vm.profile("fine"), "--name", "f1"]);
    assert.equal((await vm.cli(["destroy", "f1"])).code, 0);
  });
  await t.step("gc keeps it until its ttl has passed, then removes it", async () => {
    const result = await vm.cli(["create", "-p", failing, "--name", "f2", "--ttl", "3s"]);
    assert.equal(result.code, 1, result.stderr);
    const expiresAt = Date.parse((await vm.show("f2")).expires_at ?? "");
    const early = await vm.cli(["gc", "--json"]);
    assert.equal(early.code, 0, early.stderr);
    if (Date.now() < expiresAt) {
      assert.deepEqual(JSON.parse(early.stdout).destroyed, [], "not expired yet: kept to look at");
      assert.equal((await vm.show("f2")).status, "failed");
      await new Promise((resolve) => setTimeout(resolve, expiresAt - Date.now() + 200));
    }
    const gc = await vm.cli(["gc", "--json"]);
    assert.equal(gc.code, 0, gc.stderr);
    const destroyed = [...JSON.parse(early.stdout).destroyed, ...JSON.parse(gc.stdout).destroyed];
    assert.deepEqual(destroyed.map((d: { id: string }) => d.id), ["f2"]);
    assert.equal((await vm.show("f2")).status, "destroyed");
    assert.deepEqual(await vm.rootEntries(), []);
  });
});
