// A sandbox in use is not pulled from under its command: while `exec` runs (a remote command
// that waits for a file the test creates), `destroy` refuses with one line, `destroy --wait`
// waits for the command to end, and only `destroy --force` and `gc` of an expired sandbox go
// ahead. Real sshd, the CLI's exact flags.
import assert from "node:assert/strict";
import { exists, listDir, runSandboxer } from "../helpers.ts";
import { createOk, startTestVm, type TestVm } from "../harness/test_vm.ts";
import { type CliChild, processesMentioning, spawnCli } from "../faults/fault_helpers.ts";

async function signals(vm: TestVm): Promise<string> {
  const dir = `${vm.dir}/signals`;
  await Deno.mkdir(dir);
  await vm.chown(dir);
  return dir;
}

/**
 * `exec ID -- sh -c …`: prints "started", waits for `release`, then writes and prints a file in
 * its workspace (which fails if the workspace was pulled from under it).
 */
async function heldExec(vm: TestVm, id: string, release: string): Promise<CliChild> {
  const script =
    `echo started; while [ ! -e ${release} ]; do sleep 0.05; done; echo done > out.txt; cat out.txt`;
  const child = await spawnCli(["exec", id, "--", "sh", "-c", script], vm.env);
  await child.waitFor("stdout", /started\n/);
  return child;
}

/** Wait until no process mentions `needle` any more (the released remote loop has ended). */
async function noProcess(needle: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await processesMentioning(needle)).length) {
    assert.ok(Date.now() < deadline, `a process still mentions ${needle}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test("destroy refuses a sandbox an exec runs in; --wait waits for the command to end", async () => {
  await using vm = await startTestVm();
  const dir = await signals(vm);
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "busy"]);
  const release = `${dir}/release-busy`;
  const exec = await heldExec(vm, "busy", release);

  const refused = await runSandboxer(["destroy", "busy"], vm.env);
  assert.equal(refused.code, 1, refused.stderr);
  assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
  assert.match(
    refused.stderr,
    /^sandboxer: error: Sandbox "busy" is in use by exec \(process \d+ on .*\); wait for it \(destroy --wait\), or pass --force/,
  );
  assert.equal(await exists(`${vm.root}/sbx-busy`), true);
  assert.equal((await vm.show("busy")).status, "ready");

  // A wait far longer than the test: on a loaded machine the steps up to the release can take
  // a minute, and the wait must not run out before the command is released.
  const waiting = await spawnCli(["destroy", "busy", "--wait", "30m"], vm.env);
  await waiting.waitFor("stderr", /is in use by exec .*; waiting up to 30m for it to be free/);
  // It waits while the command holds the sandbox, however long that takes.
  assert.equal(await exists(`${vm.root}/sbx-busy`), true);
  assert.equal((await vm.show("busy")).status, "ready");

  await Deno.writeTextFile(release, "");
  const ran = await exec.done;
  assert.equal(ran.code, 0, ran.stderr);
  assert.equal(ran.stdout, "started\ndone\n", "the command ran to its end in its workspace");
  const destroyed = await waiting.done;
  assert.equal(destroyed.code, 0, destroyed.stderr);
  assert.match(destroyed.stderr, /destroyed busy/);
  assert.equal((await vm.show("busy")).status, "destroyed");
  assert.deepEqual(await vm.rootEntries(), []);
  assert.deepEqual(await listDir(`${vm.env.SANDBOXER_HOME}/sandboxes`), ["busy.json"]);
});

Deno.test("destroy --wait gives up with one line when the sandbox stays in use", async () => {
  await using vm = await startTestVm();
  const dir = await signals(vm);
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "stuck"]);
  const release = `${dir}/release-stuck`;
  const exec = await heldExec(vm, "stuck", release);
  try {
    const result = await runSandboxer(["destroy", "stuck", "--wait", "1s"], vm.env);
    assert.equal(result.code, 1, result.stderr);
    const [notice, error, ...more] = result.stderr.trim().split("\n");
    assert.deepEqual(more, [], result.stderr);
    assert.match(notice, /is in use by exec .*; waiting up to 1s for it to be free$/);
    assert.match(
      error,
      /^sandboxer: error: .*in use by exec .*still after waiting 1s; wait longer/,
    );
    assert.equal(await exists(`${vm.root}/sbx-stuck`), true);
  } finally {
    await Deno.writeTextFile(release, "");
  }
  assert.equal((await exec.done).code, 0);
  assert.equal((await runSandboxer(["destroy", "stuck"], vm.env)).code, 0);
});

Deno.test("destroy --force and gc of an expired sandbox go ahead while an exec runs", async () => {
  await using vm = await startTestVm();
  const dir = await signals(vm);
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "forced"]);
  const expiring = await createOk(vm, ["-p", profile, "--name", "expired", "--ttl", "1s"]);

  const release = `${dir}/release`;
  const forcedExec = await heldExec(vm, "forced", release);
  const expiredExec = await heldExec(vm, "expired", release);

  const forced = await runSandboxer(["destroy", "--force", "forced"], vm.env);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(await exists(`${vm.root}/sbx-forced`), false);

  // Past its expiry (a known instant, not a hopeful sleep), gc takes it although it is in use.
  const expiresAt = Date.parse(expiring.expires_at ?? "");
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - Date.now() + 50)));
  const gc = await runSandboxer(["gc", "--json"], vm.env);
  assert.equal(gc.code, 0, gc.stderr);
  const report = JSON.parse(gc.stdout);
  assert.deepEqual(report.destroyed.map((d: { id: string }) => d.id), ["expired"]);
  assert.match(report.destroyed[0].reason, /^expired at /);
  assert.deepEqual(await vm.rootEntries(), []);

  await Deno.writeTextFile(release, "");
  await forcedExec.done;
  await expiredExec.done;
  await noProcess(release);
  assert.equal((await vm.show("forced")).status, "destroyed");
  assert.equal((await vm.show("expired")).status, "destroyed");
  assert.deepEqual(await listDir(`${vm.env.SANDBOXER_HOME}/sandboxes`), [
    "expired.json",
    "forced.json",
  ]);
});

Deno.test("sync marks the sandbox in use while it transfers (SDK)", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  const { Manager } = await import("../../mod.ts");
  const { managerInternals } = await import("../../src/sandbox/manager.ts");
  await using manager = await Manager.open({
    stateDir: vm.env.SANDBOXER_HOME,
    env: () => undefined,
  });
  await manager.create({ profile, name: "syncing" });
  const repo = `${vm.dir}/repo`;
  await Deno.mkdir(repo);
  await Deno.writeFile(`${repo}/blob.bin`, new Uint8Array(4 * 1024 * 1024));
  const during: string[][] = [];
  const records = `${vm.env.SANDBOXER_HOME}/sandboxes`;
  await manager.sync("syncing", {
    repo,
    // Called while rsync runs: who uses the sandbox at that moment? Read synchronously, so the
    // answer is about that moment and not about a later one, after the sync ended.
    onProgress: () => {
      during.push(
        [...Deno.readDirSync(records)]
          .filter((entry) => /^syncing\.[0-9a-f]+\.inuse$/.test(entry.name))
          .map((entry) => JSON.parse(Deno.readTextFileSync(`${records}/${entry.name}`)).what),
      );
    },
  });
  assert.ok(during.length > 0, "no progress reported");
  assert.ok(during.some((users) => users.includes("sync")), JSON.stringify(during));
  assert.deepEqual(
    await managerInternals(manager).journal.users("syncing"),
    [],
    "the mark ends with the sync",
  );
  await manager.destroy("syncing");
});
