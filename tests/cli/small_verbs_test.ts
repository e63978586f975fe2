// Small verbs (issue 14 item 11): fetch, extend, destroy --forget. Real sshd, the CLI's exact flags.
import assert from "node:assert/strict";
import { createOk, startTestVm } from "../harness/test_vm.ts";
import { freePort } from "../harness/sshd.ts";

Deno.test("fetch ID REMOTE [LOCAL] copies a file or directory out of a workspace", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  const created = await createOk(vm, ["-p", profile, "--name", "f1"]);
  const made = await vm.cli([
    "exec",
    "f1",
    "--",
    "sh",
    "-c",
    "mkdir -p out/sub && echo one > out/a.txt && echo two > out/sub/b.txt",
  ]);
  assert.equal(made.code, 0, made.stderr);

  const local = `${vm.dir}/got`;
  const file = await vm.cli(["fetch", "f1", "out/a.txt", local]);
  assert.equal(file.code, 0, file.stderr);
  assert.equal(await Deno.readTextFile(`${local}/a.txt`), "one\n");
  assert.match(
    file.stderr,
    /^sandboxer: fetched 1 file, 4 bytes in \d+\.\ds \(out\/a\.txt from f1 into .*\)$/m,
  );
  const dir = await vm.cli(["fetch", "f1", "out", local]);
  assert.equal(dir.code, 0, dir.stderr);
  assert.equal(await Deno.readTextFile(`${local}/out/sub/b.txt`), "two\n");

  const missing = await vm.cli(["fetch", "f1", "nope.txt", local]);
  assert.equal(missing.code, 1);
  assert.equal(
    missing.stderr,
    `sandboxer: error: Workspace ${created.workspace} has no nope.txt to copy back; give a path relative to the workspace (see what is there with sandboxer exec ID -- ls)\n`,
    "one clear line, not rsync's",
  );
  assert.equal(
    missing.stderr.trim().split("\n").length,
    1,
    `one line, not rsync's: ${missing.stderr}`,
  );
  const escape = await vm.cli(["fetch", "f1", "../../etc/passwd", local]);
  assert.equal(escape.code, 1, escape.stderr);
  assert.equal((await vm.cli(["destroy", "f1"])).code, 0);
  const gone = await vm.cli(["fetch", "f1", "out", local]);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /destroyed/);
});

Deno.test("extend ID DURATION moves the expiry, so gc leaves the sandbox alone", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "x1", "--ttl", "1s"]);
  const result = await vm.cli(["extend", "x1", "8h"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /x1 now expires in 7h59m/);
  const expires = Date.parse((await vm.show("x1")).expires_at ?? "");
  assert.ok(Math.abs(expires - (Date.now() + 8 * 3600_000)) < 60_000);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal((await vm.cli(["gc"])).code, 0);
  assert.equal((await vm.show("x1")).status, "ready", "an extended sandbox outlives its old ttl");

  const bad = await vm.cli(["extend", "x1", "forever"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^sandboxer: error: Cannot use extend forever: write a duration/m);
  assert.equal((await vm.cli(["destroy", "x1"])).code, 0);
  const destroyed = await vm.cli(["extend", "x1", "1h"]);
  assert.equal(destroyed.code, 1);
  assert.match(destroyed.stderr, /Sandbox "x1" is destroyed; there is nothing to extend/);
});

Deno.test("destroy --forget drops a record whose host is gone, saying what may be left", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  const created = await createOk(vm, ["-p", profile, "--name", "g1"]);
  // The host is gone for good: its port now answers nothing.
  const record = `${vm.env.SANDBOXER_HOME}/sandboxes/g1.json`;
  const json = JSON.parse(await Deno.readTextFile(record));
  json.handle.ssh_port = await freePort();
  await Deno.writeTextFile(record, JSON.stringify(json));
  const plain = await vm.cli(["destroy", "g1"]);
  assert.equal(plain.code, 1, "a plain destroy needs the host");

  const forgot = await vm.cli(["destroy", "g1", "--forget"]);
  assert.equal(forgot.code, 0, forgot.stderr);
  assert.match(
    forgot.stderr,
    new RegExp(
      `forgot g1; nothing was removed: the workspace ${created.workspace} on \\S+ may be left there`,
    ),
  );
  assert.deepEqual(await vm.list(), [], "the record is gone, even from list --all");
  assert.ok((await vm.rootEntries()).includes("sbx-g1"), "nothing on the host was touched");
  const again = await vm.cli(["destroy", "g1", "--forget"]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /Cannot find sandbox "g1"/);
  const both = await vm.cli(["destroy", "g1", "--forget", "--force"]);
  assert.equal(both.code, 2);
});

Deno.test("gc --dry-run says what gc would destroy and forget, and changes nothing", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "exp", "--ttl", "1s"]);
  await createOk(vm, ["-p", profile, "--name", "keep"]);
  await createOk(vm, ["-p", profile, "--name", "dead"]);
  assert.equal((await vm.cli(["destroy", "dead"])).code, 0);
  await new Promise((resolve) => setTimeout(resolve, 1500));

  const dry = await vm.cli(["gc", "--dry-run", "--prune", "0s"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^would destroy exp: expired at /m);
  assert.match(dry.stdout, /^would forget destroyed record dead$/m);
  assert.doesNotMatch(dry.stdout, /keep/);
  const json = await vm.cli(["gc", "--dry-run", "--json"]);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout).would_destroy.map((d: { id: string }) => d.id), ["exp"]);
  assert.deepEqual(
    (await vm.list()).map((r) => `${r.id}:${r.status}`).sort(),
    ["dead:destroyed", "exp:ready", "keep:ready"],
    "nothing changed",
  );
  assert.ok((await vm.rootEntries()).includes("sbx-exp"), "the workspace is still there");
  const target = await vm.cli(["gc", "--dry-run", "--target", profile]);
  assert.equal(target.code, 2);
  assert.match(target.stderr, /^sandboxer: error: Cannot use --dry-run with --target/m);

  const real = await vm.cli(["gc"]);
  assert.match(real.stdout, /^destroyed exp: expired at /m);
  assert.equal((await vm.cli(["destroy", "keep"])).code, 0);
});

Deno.test("create --label KEY=VALUE; list and destroy filter by label", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "a1", "--label", "team=ci", "--label", "pr=12"]);
  await createOk(vm, ["-p", profile, "--name", "a2", "--label", "team=ci"]);
  await createOk(vm, ["-p", profile, "--name", "b1", "--label", "team=web"]);
  const bad = await vm.cli(["create", "-p", profile, "--label", "nokey"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^sandboxer: error: Cannot use --label "nokey": write KEY=VALUE/m);

  const ids = async (args: string[]) => {
    const result = await vm.cli(["list", "--json", ...args]);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout).map((r: { id: string }) => r.id).sort();
  };
  assert.deepEqual(await ids(["--label", "team=ci"]), ["a1", "a2"]);
  assert.deepEqual(await ids(["--label", "team=ci", "--label", "pr=12"]), ["a1"]);
  assert.deepEqual(await ids(["--label", "team=none"]), []);
  assert.match((await vm.cli(["show", "a1"])).stdout, /^labels: +team=ci pr=12$/m);

  const both = await vm.cli(["destroy", "a1", "--label", "team=ci"]);
  assert.equal(both.code, 2);
  const destroyed = await vm.cli(["destroy", "--label", "team=ci"]);
  assert.equal(destroyed.code, 0, destroyed.stderr);
  assert.match(destroyed.stderr, /destroyed a1/);
  assert.match(destroyed.stderr, /destroyed a2/);
  assert.deepEqual(await ids([]), ["b1"], "only the labelled ones went");
  assert.deepEqual(
    (await vm.rootEntries()).filter((n) => n.startsWith("sbx-")),
    ["sbx-b1"],
  );
  assert.equal((await vm.cli(["destroy", "b1"])).code, 0);
});

Deno.test("gc --label only collects sandboxes with the label", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "c1", "--ttl", "1s", "--label", "team=ci"]);
  await createOk(vm, ["-p", profile, "--name", "w1", "--ttl", "1s", "--label", "team=web"]);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const dry = await vm.cli(["gc", "--dry-run", "--label", "team=ci"]);
  assert.match(dry.stdout, /^would destroy c1: expired/m);
  assert.doesNotMatch(dry.stdout, /w1/);
  const result = await vm.cli(["gc", "--label", "team=ci"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^destroyed c1: expired/m);
  assert.doesNotMatch(result.stdout, /w1/);
  assert.equal((await vm.show("w1")).status, "ready", "an expired sandbox without the label stays");
  assert.equal((await vm.cli(["gc"])).code, 0);
  assert.equal((await vm.show("w1")).status, "destroyed");
});
