// ext.vm-packer when things go wrong, through the real CLI against a real sshd: a CLI killed
// mid-create leaves a record that destroy and gc finish; unreachable and silent hosts fail fast
// with a record that says where it stopped.
import assert from "node:assert/strict";
import { freePort } from "../harness/sshd.ts";
import { type RecordJson, startTestVm } from "../harness/test_vm.ts";
import { exists, makeHeartbeatsFresh, makeHeartbeatsStale, spawnSandboxer } from "../helpers.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function readRecord(stateDir: string, id: string): Promise<RecordJson | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(`${stateDir}/sandboxes/${id}.json`));
  } catch {
    return undefined; // not written yet, or between the atomic rename's steps
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

Deno.test("vm-packer: destroy and gc finish sandboxes whose creator was SIGKILLed", async (t) => {
  await using vm = await startTestVm();
  // The pid file lets the test end exactly this process: sshd does not when the client dies.
  const profile = await vm.profile("slow", {
    extra: ["setup:", "  - echo $$ > setup.pid && exec sleep 30"],
  });
  const state = vm.env.SANDBOXER_HOME;
  const ids = ["killed1", "killed2"];
  const children = await Promise.all(
    ids.map((id) =>
      spawnSandboxer(["create", "--profile", profile, "--name", id], vm.env, {
        stdout: "null",
        stderr: "null",
      })
    ),
  );
  try {
    // setup runs after the handle is recorded and the workspace made: the worst moment to die.
    for (const id of ids) {
      await waitFor(`${id} to reach setup`, async () => {
        const record = await readRecord(state, id);
        return record?.status === "creating" && record.step === "setup" ? record : undefined;
      });
      await waitFor(`${id}'s setup command`, async () => {
        const pid = await Deno.readTextFile(`${vm.root}/sbx-${id}/setup.pid`).catch(() => "");
        return /^\d+\n$/.test(pid) ? pid : undefined;
      });
    }
  } finally {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const child of children) await child.status;
  }
  const sleepers = await Promise.all(
    ids.map(async (id) => Number(await Deno.readTextFile(`${vm.root}/sbx-${id}/setup.pid`))),
  );
  for (const pid of sleepers) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  await t.step("the record shows creating with the handle; the workspace exists", async () => {
    for (const id of ids) {
      const record = await vm.show(id);
      assert.equal(record.status, "creating");
      assert.equal(record.step, "setup");
      assert.equal(record.handle?.workspace, `${vm.root}/sbx-${id}`);
      assert.equal(await exists(`${vm.root}/sbx-${id}`), true);
    }
  });

  await t.step("while the heartbeat is fresh, destroy refuses", async () => {
    // However long the kill took on a loaded machine: the dead creator's heartbeat reads as fresh.
    assert.ok(await makeHeartbeatsFresh(state, "killed1") >= 1, "no heartbeat of killed1");
    const result = await vm.cli(["destroy", "killed1"]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /still creating/);
    assert.equal(await exists(`${vm.root}/sbx-killed1`), true);
  });

  await t.step("once the heartbeat is stale, destroy removes the workspace", async () => {
    for (const id of ids) {
      assert.ok(await makeHeartbeatsStale(state, id) >= 1, `no heartbeat of ${id} to age`);
    }
    const result = await vm.cli(["destroy", "killed1"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await exists(`${vm.root}/sbx-killed1`), false);
    assert.equal((await vm.show("killed1")).status, "destroyed");
  });

  await t.step("gc finishes the other one", async () => {
    const result = await vm.cli(["gc", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.deepEqual(report.destroyed.map((d: { id: string }) => d.id), ["killed2"]);
    assert.match(report.destroyed[0].reason, /stuck in creating/);
    assert.equal(await exists(`${vm.root}/sbx-killed2`), false);
    assert.equal((await vm.show("killed2")).status, "destroyed");
    assert.deepEqual(await vm.rootEntries(), []);
  });
});

Deno.test("vm-packer: a port with nothing listening fails fast with a clear SSH error", async () => {
  await using vm = await startTestVm();
  const port = await freePort();
  const profile = await vm.profile("refused", { target: { port } });
  const started = performance.now();
  const result = await vm.cli(["create", "--profile", profile, "--name", "nolisten"]);
  const elapsed = performance.now() - started;
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, new RegExp(`127\\.0\\.0\\.1:${port}: connection refused`));
  assert.equal(result.stderr.trim().split("\n").length, 1, "one line, no stack");
  assert.ok(elapsed < 5_000, `took ${Math.round(elapsed)} ms`);
  // Nothing was made: no record is left and the name is free.
  assert.deepEqual(await vm.list(), []);
});

Deno.test("vm-packer: a host that accepts but never speaks times out at connect_timeout", async () => {
  await using vm = await startTestVm();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) held.push(conn); // never read, never write
    } catch {
      // closed
    }
  })();
  try {
    const { port } = listener.addr as Deno.NetAddr;
    const profile = await vm.profile("blackhole", { target: { port } });
    const started = performance.now();
    const result = await vm.cli([
      "create",
      "--profile",
      profile,
      "--name",
      "blackhole",
      "--set",
      "target.connect_timeout=2s",
    ]);
    const elapsed = performance.now() - started;
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`connect to .*:${port}: timed out after 2s`));
    assert.ok(elapsed >= 1_900, `gave up after ${Math.round(elapsed)} ms, before the 2 s limit`);
    assert.ok(elapsed < 8_000, `took ${Math.round(elapsed)} ms`);
    assert.ok(held.length >= 1, "the CLI really reached the listener");
    assert.deepEqual(await vm.list(), [], "nothing was made: no record");
  } finally {
    listener.close();
    await accepting;
    for (const conn of held) conn.close();
  }
});
