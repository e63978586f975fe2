// One owner per record, against a real sshd through the CLI's exact flags. A create is held in
// its setup by a remote command that waits for a file, then stopped (SIGSTOP) or left running;
// heartbeats are aged by setting their mtime. Whatever happens to the sandbox meanwhile (gc,
// a new sandbox with the same id, destroy --force), the old creator must fail cleanly when it
// goes on: no `ready` written over another state, nothing removed.
import assert from "node:assert/strict";
import { exists, listDir, makeHeartbeatsStale, runSandboxer } from "../helpers.ts";
import { startTestVm, type TestVm } from "../harness/test_vm.ts";
import { readRecord, spawnCli } from "../faults/fault_helpers.ts";

/** A directory the login user and the test share, for files the remote commands wait on. */
async function signals(vm: TestVm): Promise<string> {
  const dir = `${vm.dir}/signals`;
  await Deno.mkdir(dir);
  await vm.chown(dir);
  return dir;
}

/** A profile whose setup says it started, then waits until the test creates `release`. */
function heldSetup(dir: string): string[] {
  const command = `touch ${dir}/started; while [ ! -e ${dir}/release ]; do sleep 0.05; done`;
  return ["setup:", `  - ${JSON.stringify(command)}`];
}

async function waitForFile(path: string, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await exists(path))) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Heartbeat files of `id` in the state directory. */
async function heartbeats(state: string, id: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${state}/sandboxes`)) {
    if (entry.name.startsWith(`${id}.`) && entry.name.endsWith(".alive")) names.push(entry.name);
  }
  return names;
}

Deno.test("a create stopped past the heartbeat limit and finished by gc fails cleanly when resumed, even after its id was reused", async () => {
  await using vm = await startTestVm();
  const dir = await signals(vm);
  const held = await vm.profile("held", { extra: heldSetup(dir) });
  const plain = await vm.profile("plain");
  const state = vm.env.SANDBOXER_HOME;

  const creator = await spawnCli(["create", "-p", held, "--name", "own1"], vm.env);
  let resumed = false;
  try {
    await waitForFile(`${dir}/started`, "the setup to start");
    const first = await readRecord(state, "own1");
    assert.equal(first?.status, "creating");
    Deno.kill(creator.child.pid, "SIGSTOP");

    // The stopped creator's heartbeat goes stale; gc takes the sandbox over and finishes it.
    assert.equal(await makeHeartbeatsStale(state, "own1"), 1);
    const gc = await runSandboxer(["gc", "--json"], vm.env);
    assert.equal(gc.code, 0, gc.stderr);
    const report = JSON.parse(gc.stdout);
    assert.deepEqual(report.destroyed.map((d: { id: string }) => d.id), ["own1"]);
    assert.match(report.destroyed[0].reason, /stuck in creating/);
    assert.equal(await exists(`${vm.root}/sbx-own1`), false);

    // Someone else makes a new sandbox with the same id and works in it.
    const again = await runSandboxer(["create", "-p", plain, "--name", "own1", "--json"], vm.env);
    assert.equal(again.code, 0, again.stderr);
    const reused = JSON.parse(again.stdout);
    await Deno.writeTextFile(`${vm.root}/sbx-own1/work.txt`, "the new owner's work\n");

    // The old creator wakes up; its setup command returns 0.
    await Deno.writeTextFile(`${dir}/release`, "");
    Deno.kill(creator.child.pid, "SIGCONT");
    resumed = true;
    const result = await creator.done;
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stderr.trim().split("\n");
    assert.match(
      lines.at(-1) ?? "",
      /Sandbox "own1" was taken over by process \d+ .* is ready now/,
    );
    assert.doesNotMatch(result.stderr, /rolled back/);

    // The new sandbox is untouched: its record, its workspace, its file.
    const now = JSON.parse((await vm.cli(["show", "own1", "--json"])).stdout);
    assert.equal(now.status, "ready");
    assert.equal(now.updated_at, reused.updated_at, "the old creator wrote nothing");
    assert.equal(
      await Deno.readTextFile(`${vm.root}/sbx-own1/work.txt`),
      "the new owner's work\n",
    );
  } finally {
    if (!resumed) {
      await Deno.writeTextFile(`${dir}/release`, "");
      Deno.kill(creator.child.pid, "SIGCONT");
    }
    await creator.done;
  }
  assert.equal((await runSandboxer(["destroy", "own1"], vm.env)).code, 0);
  assert.deepEqual(await vm.rootEntries(), []);
  assert.deepEqual(await listDir(`${state}/sandboxes`), ["own1.json"], "no lock or heartbeat left");
});

Deno.test("destroy --force leaves a live creator's heartbeat alone; the creator then fails cleanly", async () => {
  await using vm = await startTestVm();
  const dir = await signals(vm);
  const held = await vm.profile("held", { extra: heldSetup(dir) });
  const state = vm.env.SANDBOXER_HOME;

  const creator = await spawnCli(["create", "-p", held, "--name", "own2"], vm.env);
  try {
    await waitForFile(`${dir}/started`, "the setup to start");
    const beats = await heartbeats(state, "own2");
    assert.equal(beats.length, 1, "the creator's own heartbeat");

    const refused = await runSandboxer(["destroy", "own2"], vm.env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is still creating in process \d+/);
    assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);

    // destroy --force ends the setup command on the host, and the creator would then finish
    // (and drop its own heartbeat) at once: hold it stopped, its heartbeat kept fresh, so what
    // is checked is that the destroyer leaves another owner's heartbeat alone.
    Deno.kill(creator.child.pid, "SIGSTOP");
    const keepFresh = setInterval(() => {
      const now = new Date();
      for (const name of beats) Deno.utime(`${state}/sandboxes/${name}`, now, now).catch(() => {});
    }, 200);
    try {
      const forced = await runSandboxer(["destroy", "--force", "own2"], vm.env);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(await exists(`${vm.root}/sbx-own2`), false);
      assert.deepEqual(
        await heartbeats(state, "own2"),
        beats,
        "the creator's heartbeat is its own",
      );
    } finally {
      clearInterval(keepFresh);
      Deno.kill(creator.child.pid, "SIGCONT");
    }
  } finally {
    await Deno.writeTextFile(`${dir}/release`, "");
  }
  const result = await creator.done;
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /Sandbox "own2" was taken over .* is destroyed now/);
  const record = await vm.show("own2");
  assert.equal(record.status, "destroyed", "no ready written over destroyed");
  assert.deepEqual(await vm.rootEntries(), [], "nothing made again");
  assert.deepEqual(await heartbeats(state, "own2"), []);
});
