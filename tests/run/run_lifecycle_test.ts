// `sandboxer run` and the sandboxes around it: a run SIGKILLed during its command leaves a record
// that gc finishes like a crashed create, and a run whose create is refused never touches the
// sandbox that already has the name. Real sshd, the CLI's exact flags.
import assert from "node:assert/strict";
import { listDir, makeHeartbeatsStale, runSandboxer } from "../helpers.ts";
import { createOk, startTestVm } from "../harness/test_vm.ts";
import { processesMentioning, readRecord, spawnCli } from "../faults/fault_helpers.ts";

Deno.test("run SIGKILLed during its command: gc finishes the sandbox like a crashed create", async () => {
  await using vm = await startTestVm();
  const signals = `${vm.dir}/signals`;
  await Deno.mkdir(signals);
  await vm.chown(signals);
  const release = `${signals}/release`;
  const profile = await vm.profile("p");
  const state = vm.env.SANDBOXER_HOME;
  const run = await spawnCli([
    "run",
    "-p",
    profile,
    "--name",
    "killed",
    "--",
    "sh",
    "-c",
    `echo started; while [ ! -e ${release} ]; do sleep 0.05; done`,
  ], vm.env);
  try {
    await run.waitFor("stdout", /started\n/);
    const record = await readRecord(state, "killed") as unknown as Record<string, unknown>;
    assert.equal(record.status, "ready");
    assert.equal(record.ephemeral, true, "marked as belonging to a run");
    run.child.kill("SIGKILL");
    await run.done;

    // The dead run's heartbeat goes stale (aged, not slept for); then gc takes it.
    assert.equal(await makeHeartbeatsStale(state, "killed"), 2, "the run's and its exec's");
    const gc = await runSandboxer(["gc", "--json"], vm.env);
    assert.equal(gc.code, 0, gc.stderr);
    const report = JSON.parse(gc.stdout);
    assert.deepEqual(report.destroyed.map((d: { id: string }) => d.id), ["killed"]);
    assert.match(report.destroyed[0].reason, /its run \(process \d+ on .*\) stopped/);
    assert.equal((await vm.show("killed")).status, "destroyed");
    assert.deepEqual(await vm.rootEntries(), []);
    assert.deepEqual(await listDir(`${state}/sandboxes`), ["killed.json"]);
  } finally {
    await Deno.writeTextFile(release, "");
  }
  const deadline = Date.now() + 15_000;
  while ((await processesMentioning(release)).length) {
    assert.ok(Date.now() < deadline, "the remote command never ended");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

Deno.test("a live run's sandbox is not gc's, and destroy refuses it while its command runs", async () => {
  await using vm = await startTestVm();
  const signals = `${vm.dir}/signals`;
  await Deno.mkdir(signals);
  await vm.chown(signals);
  const release = `${signals}/release`;
  const profile = await vm.profile("p", "ttl: 1s");
  const run = await spawnCli([
    "run",
    "-p",
    profile,
    "--name",
    "alive",
    "--",
    "sh",
    "-c",
    `echo started; while [ ! -e ${release} ]; do sleep 0.05; done; echo finished`,
  ], vm.env);
  try {
    await run.waitFor("stdout", /started\n/);
    const record = await readRecord(vm.env.SANDBOXER_HOME, "alive");
    // Past its ttl (which only matters for a kept sandbox), gc still leaves a live run alone.
    const expiry = Date.parse(record?.expires_at ?? "");
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiry - Date.now() + 50)));
    const gc = await runSandboxer(["gc", "--json"], vm.env);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual(JSON.parse(gc.stdout).destroyed, []);
    const destroy = await runSandboxer(["destroy", "alive"], vm.env);
    assert.equal(destroy.code, 1);
    assert.match(destroy.stderr, /belongs to a running "sandboxer run"/);
  } finally {
    await Deno.writeTextFile(release, "");
  }
  const result = await run.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "started\nfinished\n");
  assert.deepEqual(await vm.rootEntries(), []);
});

Deno.test("run --name X, when X is a live sandbox, fails with 125 and leaves X alone", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "taken"]);
  await Deno.writeTextFile(`${vm.root}/sbx-taken/work.txt`, "precious\n");
  const before = await vm.show("taken");

  const result = await runSandboxer(
    ["run", "-p", profile, "--name", "taken", "--", "true"],
    vm.env,
  );
  assert.equal(result.code, 125, result.stderr);
  assert.match(
    result.stderr,
    /^sandboxer: error: Cannot create sandbox "taken": that id is already in use[^\n]*\n$/,
    "one line, and no teardown of someone else's sandbox",
  );

  const after = await vm.show("taken");
  assert.deepEqual(after, before, "the record is untouched");
  assert.equal(await Deno.readTextFile(`${vm.root}/sbx-taken/work.txt`), "precious\n");
  assert.equal((await runSandboxer(["destroy", "taken"], vm.env)).code, 0);
});

Deno.test("run --keep clears the run mark so gc keeps the sandbox after the run", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  const result = await runSandboxer([
    "run",
    "-p",
    profile,
    "--keep",
    "--name",
    "kept",
    "--",
    "true",
  ], vm.env);
  assert.equal(result.code, 0, result.stderr);
  const record = await readRecord(vm.env.SANDBOXER_HOME, "kept") as unknown as Record<
    string,
    unknown
  >;
  assert.equal(record.status, "ready");
  assert.equal(record.ephemeral, false);
  // Its run is over and its heartbeat gone: still not gc's.
  const gc = await runSandboxer(["gc", "--json"], vm.env);
  assert.deepEqual(JSON.parse(gc.stdout).destroyed, []);
  assert.deepEqual(await vm.rootEntries(), ["sbx-kept"]);
  assert.equal((await runSandboxer(["destroy", "kept"], vm.env)).code, 0);
});
