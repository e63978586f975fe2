// `sandboxer logs ID [-f]`: a bounded, timestamped transcript of create, sync, setup and exec,
// 0600, removed with the sandbox. Real sshd, the CLI's exact flags.
import assert from "node:assert/strict";
import { exists, spawnSandboxer, tempDir } from "../helpers.ts";
import { createOk, startTestVm } from "../harness/test_vm.ts";

const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

Deno.test("logs shows create, sync, setup and exec output with timestamps", async () => {
  await using vm = await startTestVm();
  await using repo = await tempDir();
  await Deno.writeTextFile(`${repo.path}/a.txt`, "a\n");
  const profile = await vm.profile("logs", { extra: ["setup:", "  - echo setup-out"] });
  const { id } = await createOk(vm, ["--profile", profile, "--repo", repo.path]);
  const exec = await vm.cli(["exec", id, "--", "sh", "-c", "echo hi; echo oops >&2; exit 3"]);
  assert.equal(exec.code, 3, exec.stderr);

  const logs = await vm.cli(["logs", id]);
  assert.equal(logs.code, 0, logs.stderr);
  const lines = logs.stdout.trimEnd().split("\n");
  for (const line of lines) assert.match(line, STAMP, line);
  const text = lines.map((line) => line.replace(STAMP, "")).join("\n");
  for (
    const expected of [
      /^create: profile\.logs \(ext\.vm-packer, repo /m,
      /^create: done in \d+ ms$/m,
      // The first sync into the new, empty workspace: one tar stream.
      /^sync: .* by tar: 1 files sent/m,
      /^setup: echo setup-out$/m,
      /^setup\| setup-out$/m,
      /^setup: exit code 0$/m,
      /^ready$/m,
      /^exec: \["sh","-c","echo hi; echo oops >&2; exit 3"\]$/m,
      /^stdout\| hi$/m,
      /^stderr\| oops$/m,
      /^exec: exit code 3$/m,
    ]
  ) assert.match(text, expected, text);

  const file = `${vm.env.SANDBOXER_HOME}/logs/${id}.log`;
  assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
  assert.equal((await vm.cli(["destroy", id])).code, 0);
  assert.equal(await exists(file), false, "removed with the sandbox");
  assert.equal((await vm.cli(["logs", "nope"])).code, 1);
});

Deno.test("the transcript is capped (SANDBOXER_LOG_MAX) and keeps the newest lines", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("capped");
  const { id } = await createOk(vm, ["--profile", profile]);
  const env = { SANDBOXER_LOG_MAX: "4K" };
  const exec = await vm.cli(["exec", id, "--", "sh", "-c", "seq 1 5000; echo last-line"], env);
  assert.equal(exec.code, 0, exec.stderr);
  const file = `${vm.env.SANDBOXER_HOME}/logs/${id}.log`;
  const size = (await Deno.stat(file)).size;
  assert.ok(size <= 4096, `${size} bytes`);
  const logs = await vm.cli(["logs", id], env);
  assert.match(logs.stdout, /earlier lines dropped/);
  assert.match(logs.stdout, /stdout\| last-line\n/);
  assert.match(logs.stdout, /exec: exit code 0\n$/);
  assert.equal((await vm.cli(["destroy", id])).code, 0);
});

Deno.test("logs -f prints new lines as they come and ends when the sandbox is destroyed", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("follow");
  const { id } = await createOk(vm, ["--profile", profile]);
  const follower = await spawnSandboxer(["logs", id, "-f"], vm.env);
  const reader = follower.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const exec = await vm.cli(["exec", id, "--", "echo", "followed"]);
  assert.equal(exec.code, 0, exec.stderr);
  while (!/stdout\| followed\n/.test(seen)) {
    const { value, done } = await reader.read();
    assert.ok(!done, `ended early: ${seen}`);
    seen += value;
  }
  assert.equal((await vm.cli(["destroy", id])).code, 0);
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
  }
  const status = await follower.status;
  await follower.stderr.cancel();
  assert.equal(status.code, 0);
});

Deno.test("a create failed in setup keeps a failed record whose logs say why; destroy clears both", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("setupfail", {
    extra: ["setup:", "  - echo about to fail; exit 7"],
  });
  const created = await vm.cli(["create", "--profile", profile, "--name", "sf1"]);
  assert.equal(created.code, 1, created.stderr);
  assert.equal((await vm.show("sf1")).status, "failed");
  const logs = await vm.cli(["logs", "sf1"]);
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /setup\| about to fail\n/);
  assert.match(logs.stdout, /setup: exit code 7\n/);
  assert.match(logs.stdout, /create failed: Setup command .* failed with exit code 7/);
  assert.equal((await vm.cli(["destroy", "sf1"])).code, 0);
  assert.equal(await exists(`${vm.env.SANDBOXER_HOME}/logs/sf1.log`), false);
  assert.deepEqual(await vm.rootEntries(), []);
});
