// Pools of build hosts (issue 15 item 1): a profile with `targets:` (2 real sshds × 2 slots) and
// many concurrent `sandboxer create --wait` processes. How many workspaces a host holds at once is
// measured ON THE HOST, by the setup command itself under flock, not by polling from here. Also:
// a create without --wait fails at once when full, naming hosts and capacity; run --wait queues
// until a slot frees; a killed create's lease is released by gc; gc --target reaps a
// lease whose sandbox vanished; an unreachable entry is skipped with a warning; doctor checks
// every host; target and targets together are a config error at file and line.
import assert from "node:assert/strict";
import { freePort } from "../harness/sshd.ts";
import { readRecord, spawnCli, waitForRecord } from "../faults/fault_helpers.ts";
import { makeHeartbeatsStale, spawnSandboxer, textOf } from "../helpers.ts";
import { startTestVm, type TestVm } from "../harness/test_vm.ts";
import {
  leasesLeft,
  MEASURE_SETUP,
  measured,
  type PoolEntrySpec,
  writePoolProfile,
} from "../harness/pool_hosts.ts";

/** A pool entry for one test sshd. */
function entry(vm: TestVm, capacity: number, port = vm.sshd.port): PoolEntrySpec {
  const { host, user, identityFile, knownHostsFile } = vm.sshd;
  return { host, port, user, identityFile, knownHostsFile, capacity, root: vm.root };
}

/** Write a pool profile: one `targets:` entry per host, each with its own workspace root. */
function poolProfile(
  dir: string,
  name: string,
  entries: { vm: TestVm; port?: number; capacity: number }[],
  extra: string[] = [],
): Promise<string> {
  return writePoolProfile(dir, name, entries.map((e) => entry(e.vm, e.capacity, e.port)), extra);
}

/** The leases and waiters left on a host. */
function leftOnHost(vm: TestVm): Promise<string[]> {
  return leasesLeft(vm.root);
}

Deno.test("pool: 7 concurrent creates with --wait on 2 hosts × 2 slots, never more than 2 per host", async () => {
  await using vm1 = await startTestVm();
  await using vm2 = await startTestVm();
  const profile = await poolProfile(vm1.dir, "pool", [
    { vm: vm1, capacity: 2 },
    { vm: vm2, capacity: 2 },
  ], ["setup:", `  - ${JSON.stringify(MEASURE_SETUP)}`]);
  const cli = (args: string[]) => vm1.cli(args);

  const worker = async (n: number) => {
    const created = await cli(["create", "--profile", profile, "--name", `p${n}`, "--wait", "5m"]);
    assert.equal(created.code, 0, `create p${n}: ${created.stderr}`);
    const destroyed = await cli(["destroy", `p${n}`]);
    assert.equal(destroyed.code, 0, `destroy p${n}: ${destroyed.stderr}`);
    return created;
  };
  const results = await Promise.all([0, 1, 2, 3, 4, 5, 6].map(worker));
  assert.equal(results.length, 7);

  let measurements = 0;
  for (const vm of [vm1, vm2]) {
    const { max, count } = await measured(vm.root);
    assert.ok(max <= 2, `host ${vm.sshd.port} held ${max} workspaces at once (capacity 2)`);
    measurements += count;
  }
  assert.equal(measurements, 14, "every create measured its host twice");
  assert.deepEqual(await leftOnHost(vm1), [], "no lease or waiter left on host 1");
  assert.deepEqual(await leftOnHost(vm2), [], "no lease or waiter left on host 2");
  for (const vm of [vm1, vm2]) {
    assert.deepEqual((await vm.rootEntries()).filter((n) => n.startsWith("sbx-")), []);
  }
});

Deno.test("pool: full without --wait, gc --target, unreachable hosts, doctor, show and config errors", async (t) => {
  await using vm1 = await startTestVm();
  await using vm2 = await startTestVm();
  const profile = await poolProfile(vm1.dir, "pair", [
    { vm: vm1, capacity: 2 },
    { vm: vm2, capacity: 2 },
  ]);
  // --set addresses an entry by its index.
  const one = ["--set", "targets.0.capacity=1", "--set", "targets.1.capacity=1"];
  const hosts = [vm1, vm2].map((vm) => `127.0.0.1:${vm.sshd.port}`);

  await t.step("a create without --wait fails at once when every slot is taken", async () => {
    for (const name of ["a", "b"]) {
      const result = await vm1.cli(["create", "--profile", profile, ...one, "--name", name]);
      assert.equal(result.code, 0, result.stderr);
    }
    const started = performance.now();
    const full = await vm1.cli(["create", "--profile", profile, ...one, "--name", "c"]);
    assert.equal(full.code, 1, full.stderr);
    assert.ok(performance.now() - started < 60_000);
    const errors = full.stderr.trim().split("\n").filter((l) => /error/i.test(l));
    assert.equal(errors.length, 1, full.stderr);
    assert.match(errors[0], /every slot of the pool is taken/);
    for (const host of hosts) assert.ok(errors[0].includes(`${host} 1/1`), errors[0]);
    assert.match(errors[0], /--wait/);
    const list = await vm1.list();
    assert.deepEqual(list.map((r) => r.id).sort(), ["a", "b"], "the failed create left no record");
  });

  await t.step("create --wait gives up after the wait, and leaves no waiter behind", async () => {
    const full = await vm1.cli(["create", "--profile", profile, ...one, "--wait", "3s"]);
    assert.equal(full.code, 1, full.stderr);
    assert.match(full.stderr, /every slot of the pool is taken after waiting [34]s/);
    assert.match(full.stderr, /wait longer with a larger --wait/);
    const waiters = [...await leftOnHost(vm1), ...await leftOnHost(vm2)]
      .filter((path) => path.includes("/waiters/"));
    assert.deepEqual(waiters, []);
  });

  await t.step("show and list name the host and slot", async () => {
    const shown = await vm1.cli(["show", "a"]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^host: +\S+@127\.0\.0\.1:\d+ \(pool slot 0\)$/m);
    const listed = await vm1.cli(["list"]);
    assert.match(listed.stdout, /HOST/);
    assert.match(listed.stdout, /@127\.0\.0\.1:\d+ \(pool slot 0\)/);
  });

  await t.step("run --wait queues until a slot frees, then runs", async () => {
    const queued = await spawnSandboxer(
      ["run", "--profile", profile, ...one, "--wait", "5m", "--", "echo", "ran"],
      vm1.env,
    );
    const output = queued.output();
    // Its waiter marker appears on both hosts once it has found every slot taken.
    const deadline = Date.now() + 60_000;
    const waiters = async () =>
      [...await leftOnHost(vm1), ...await leftOnHost(vm2)].filter((p) => p.includes("/waiters/"));
    while ((await waiters()).length < 2) {
      assert.ok(Date.now() < deadline, "run --wait never queued");
      await new Promise((r) => setTimeout(r, 100));
    }
    const freed = await vm1.cli(["destroy", "a"]);
    assert.equal(freed.code, 0, freed.stderr);
    const result = textOf(await output);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "ran\n");
    assert.deepEqual(await waiters(), [], "it left the queue");
  });

  await t.step("destroy releases the lease, so the slot is free again", async () => {
    for (const name of ["a", "b"]) {
      const result = await vm1.cli(["destroy", name]);
      assert.equal(result.code, 0, result.stderr);
    }
    assert.deepEqual([...await leftOnHost(vm1), ...await leftOnHost(vm2)], []);
  });

  await t.step("gc --target reaps the leases of sandboxes vanished or expired", async () => {
    const single = ["--set", "targets.0.capacity=1"];
    const onlyOne = await poolProfile(vm1.dir, "single", [{ vm: vm1, capacity: 1 }]);
    const created = await vm1.cli(["create", "--profile", onlyOne, ...single, "--name", "gone"]);
    assert.equal(created.code, 0, created.stderr);
    // Behind sandboxer's back: the workspace is removed on the host and the record forgotten.
    await Deno.remove(`${vm1.root}/sbx-gone`, { recursive: true });
    const forgot = await vm1.cli(["destroy", "gone", "--forget"]);
    assert.equal(forgot.code, 0, forgot.stderr);
    assert.match(forgot.stderr, /sbx-gone and its pool lease .*gc --target/);
    assert.equal((await leftOnHost(vm1)).length, 1, "its lease is still there");
    const gc = await vm1.cli(["gc", "--target", onlyOne]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /reaped lease slot-0 \(gone\) on 127\.0\.0\.1:\d+/);
    assert.deepEqual(await leftOnHost(vm1), []);

    // Expired, and no record here (made from another machine, say): workspace and lease go.
    const old = await vm1.cli(["create", "--profile", onlyOne, "--name", "old", "--ttl", "1s"]);
    assert.equal(old.code, 0, old.stderr);
    const expires = Date.parse((await vm1.show("old")).expires_at!);
    assert.equal((await vm1.cli(["destroy", "old", "--forget"])).code, 0);
    await new Promise((r) => setTimeout(r, Math.max(0, expires - Date.now()) + 100));
    const expired = await vm1.cli(["gc", "--target", onlyOne]);
    assert.equal(expired.code, 0, expired.stderr);
    assert.match(expired.stdout, /removed \S+\/sbx-old on .*: expired at/);
    assert.match(expired.stdout, /reaped lease slot-0 \(old\)/);
    assert.deepEqual(await leftOnHost(vm1), []);
  });

  const closed = await freePort();
  const broken = await poolProfile(vm1.dir, "broken", [
    { vm: vm1, port: closed, capacity: 1 },
    { vm: vm2, capacity: 1 },
  ]);
  await t.step("an unreachable entry is skipped with a warning", async () => {
    const created = await vm1.cli(["create", "--profile", broken, "--name", "d"]);
    assert.equal(created.code, 0, created.stderr);
    assert.equal((await vm1.show("d")).workspace, `${vm2.root}/sbx-d`);
    // The hosts are tried from a random one on: the second create tries the closed one for sure.
    const full = await vm1.cli(["create", "--profile", broken, "--name", "e"]);
    assert.equal(full.code, 1, full.stderr);
    const warning = `skipped pool host 127.0.0.1:${closed}`;
    assert.ok((created.stderr + full.stderr).includes(warning), created.stderr + full.stderr);
    assert.ok(full.stderr.includes(`127.0.0.1:${closed} unreachable`), full.stderr);
    const gc = await vm1.cli(["gc", "--target", broken]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.ok(gc.stdout.includes(`skipped pool host 127.0.0.1:${closed} (unreachable)`));
    assert.match(gc.stdout, /1 lease\(s\) in use on 127\.0\.0\.1:\d+/);
    const destroyed = await vm1.cli(["destroy", "d"]);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.deepEqual(await leftOnHost(vm2), []);
  });

  await t.step("doctor: one line per host, ✗ with the fix for the unreachable one", async () => {
    const doctor = await vm1.cli(["doctor", "--profile", broken]);
    assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
    assert.ok(
      doctor.stdout.includes(
        `✗ pool host 127.0.0.1:${closed} (capacity 1): 127.0.0.1:${closed} is not reachable`,
      ),
      doctor.stdout,
    );
    assert.match(doctor.stdout, /fix: check target\.host and target\.port/);
    assert.ok(
      doctor.stdout.includes(`✓ pool host 127.0.0.1:${vm2.sshd.port} (capacity 1): reachable`),
      doctor.stdout,
    );
    const good = await vm1.cli(["doctor", "--profile", profile]);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.equal(good.stdout.match(/^✓ pool host /gm)?.length, 2, good.stdout);
  });

  await t.step("target and targets together are refused at the file and line", async () => {
    const text = await Deno.readTextFile(profile);
    const both = `${vm1.dir}/both.yaml`;
    await Deno.writeTextFile(
      both,
      text.replace("id: profile.pair", "id: profile.both") + "target:\n  host: 127.0.0.1\n",
    );
    const line = text.split("\n").indexOf("targets:") + 1;
    const result = await vm1.cli(["create", "--profile", both]);
    assert.equal(result.code, 1, result.stderr);
    assert.ok(result.stderr.includes(`${both}:${line}:`), result.stderr);
    assert.match(result.stderr, /targets.*cannot be set together with target/);

    const badPort = await vm1.cli(["create", "--profile", profile, "--set", "targets.1.port=0"]);
    assert.equal(badPort.code, 1, badPort.stderr);
    assert.match(badPort.stderr, /targets\[1\]\.port/);
    const noEntry = await vm1.cli(["create", "--profile", profile, "--set", "targets.5.port=22"]);
    assert.equal(noEntry.code, 2, noEntry.stderr);
    assert.match(noEntry.stderr, /"targets" has 2 entries/);
  });
});

Deno.test("pool: sandboxer SIGKILLed while it holds a lease; gc releases the lease", async (t) => {
  await using vm = await startTestVm();
  const profile = await poolProfile(vm.dir, "crash", [{ vm, capacity: 1 }]);
  const state = vm.env.SANDBOXER_HOME;
  for (const step of ["connect", "workspace"]) {
    await t.step(`killed at ${step}`, async () => {
      const id = `k-${step}`;
      const cli = await spawnCli(["create", "--name", id, "--profile", profile], {
        ...vm.env,
        SANDBOXER_TEST_HOLD_AT: step,
      });
      try {
        await waitForRecord(state, id, (r) => r.step === step, `reach ${step}`);
      } finally {
        cli.child.kill("SIGKILL");
        await cli.done;
      }
      const record = await readRecord(state, id);
      assert.equal(record?.status, "creating", JSON.stringify(record));
      assert.equal((record?.handle?.pool_lease as { slot: number }).slot, 0);
      assert.equal((await leftOnHost(vm)).length, 1, "the lease is held on the host");
      // The only slot is held by the killed create: a create without --wait fails at once.
      const full = await vm.cli(["create", "--profile", profile]);
      assert.equal(full.code, 1, full.stderr);
      assert.match(full.stderr, /every slot of the pool is taken/);

      assert.ok(await makeHeartbeatsStale(state, id) >= 1);
      const gc = await vm.cli(["gc", "--json"]);
      assert.equal(gc.code, 0, gc.stderr);
      assert.deepEqual(JSON.parse(gc.stdout).destroyed.map((d: { id: string }) => d.id), [id]);
      assert.deepEqual(await leftOnHost(vm), [], "gc's destroy released the lease");
      assert.deepEqual((await vm.rootEntries()).filter((n) => n.startsWith("sbx-")), []);
    });
  }
});
