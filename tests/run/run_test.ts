// `sandboxer run` end to end against a real sshd, through the CLI's exact flags.
import assert from "node:assert/strict";
import {
  processTable,
  runSandboxer,
  spawnSandboxer,
  tempDir,
  workspaceRootEntries,
} from "../helpers.ts";
import { startTestVm } from "../harness/test_vm.ts";

Deno.test("run: syncs, runs, copies artifacts back, passes the exit code, destroys", async () => {
  await using vm = await startTestVm();
  await using repo = await tempDir();
  await using out = await tempDir();
  await Deno.writeTextFile(`${repo.path}/input.txt`, "hello\n");
  const profile = await vm.profile("build", "setup:\n  - mkdir -p dist");
  const result = await runSandboxer([
    "run",
    "--profile",
    profile,
    "--repo",
    repo.path,
    "--artifact",
    `dist/out.txt:${out.path}`,
    "--artifact",
    `dist:${out.path}/whole`,
    "--",
    "sh",
    "-c",
    "tr a-z A-Z < input.txt > dist/out.txt; echo built; exit 3",
  ], vm.env);
  assert.equal(result.code, 3, result.stderr);
  assert.equal(result.stdout, "built\n");
  assert.equal(await Deno.readTextFile(`${out.path}/out.txt`), "HELLO\n");
  assert.equal(await Deno.readTextFile(`${out.path}/whole/dist/out.txt`), "HELLO\n");
  assert.match(
    result.stderr,
    /phases: create [\d.]+s · sync [\d.]+s · setup [\d.]+s · run [\d.]+s · artifacts [\d.]+s · destroy [\d.]+s/,
  );
  assert.deepEqual(await workspaceRootEntries(vm.root), [], "workspace removed");
  const list = await runSandboxer(["list", "--all", "--json"], vm.env);
  assert.deepEqual(JSON.parse(list.stdout).map((r: { status: string }) => r.status), ["destroyed"]);
});

Deno.test("run --keep-on-failure keeps a failed sandbox and destroys a successful one", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("build");
  const failed = await runSandboxer(
    ["run", "-p", profile, "--keep-on-failure", "--name", "kept", "--", "false"],
    vm.env,
  );
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /kept sandbox kept/);
  assert.deepEqual(await workspaceRootEntries(vm.root), ["sbx-kept"]);
  const shown = JSON.parse((await runSandboxer(["show", "kept", "--json"], vm.env)).stdout);
  assert.equal(shown.status, "ready");
  const ok = await runSandboxer(["run", "-p", profile, "--keep-on-failure", "--", "true"], vm.env);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(await workspaceRootEntries(vm.root), ["sbx-kept"]);
  assert.equal((await runSandboxer(["destroy", "kept"], vm.env)).code, 0);
  assert.deepEqual(await workspaceRootEntries(vm.root), []);
});

Deno.test("run --keep keeps the sandbox after success", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("build");
  const result = await runSandboxer(
    ["run", "-p", profile, "--keep", "--name", "k", "--", "true"],
    vm.env,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(await workspaceRootEntries(vm.root), ["sbx-k"]);
});

Deno.test("run: Ctrl-C (SIGINT) during the command tears the sandbox down and exits 130", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("build");
  const child = await spawnSandboxer(
    ["run", "-p", profile, "--name", "intr", "--", "sh", "-c", "echo started; sleep 60"],
    vm.env,
  );
  const reader = child.stdout.getReader();
  const first = await reader.read();
  assert.equal(new TextDecoder().decode(first.value), "started\n");
  const started = performance.now();
  child.kill("SIGINT");
  reader.releaseLock();
  const output = await child.output();
  assert.equal(output.code, 130, new TextDecoder().decode(output.stderr));
  assert.ok(performance.now() - started < 10_000, "teardown took too long");
  assert.deepEqual(await workspaceRootEntries(vm.root), []);
  const shown = JSON.parse((await runSandboxer(["show", "intr", "--json"], vm.env)).stdout);
  assert.equal(shown.status, "destroyed");
  // The remote command was killed too: no `sleep 60` of the login user remains.
  const left = (await processTable()).filter((p) => p.user === vm.sshd.user);
  assert.deepEqual(left.filter((p) => /sleep 60/.test(p.args)), []);
});

Deno.test("run: a bad profile fails with 125 (sandboxer's own failure) before anything is made", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("bad", "ttl: never");
  const result = await runSandboxer(["run", "-p", profile, "--", "true"], vm.env);
  assert.equal(result.code, 125);
  assert.match(result.stderr, /bad\.yaml:\d+:\d+: ttl:/);
  assert.deepEqual(await workspaceRootEntries(vm.root), []);
});
