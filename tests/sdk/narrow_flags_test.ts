// A script that imports the SDK runs under narrow permission flags — one host:port, the files it
// names, rsync — and creates, uses and destroys a sandbox on a real sshd.
import assert from "node:assert/strict";
import { listDir, ROOT, runProgram, tempDir } from "../helpers.ts";
import { startTestVm } from "../harness/test_vm.ts";

Deno.test("an SDK script under narrow flags creates, syncs, execs and destroys", async () => {
  await using vm = await startTestVm();
  await using work = await tempDir();
  await Deno.writeTextFile(`${work.path}/hello.txt`, "hello from the repo\n");
  const profile = await vm.profile("narrow");
  const script = `${work.path}/script.ts`;
  await Deno.writeTextFile(
    script,
    `import { Manager } from ${JSON.stringify(`file://${ROOT}/mod.ts`)};

await using manager = await Manager.open({ stateDir: ${JSON.stringify(`${work.path}/state`)} });
const box = await manager.create({ profile: ${JSON.stringify(profile)}, repo: ${
      JSON.stringify(work.path)
    } });
const chunks: Uint8Array[] = [];
const code = await manager.exec(box.id, ["cat", "hello.txt"], { stdout: (c) => chunks.push(c) });
await manager.destroy(box.id);
console.log(JSON.stringify({ id: box.id, code, out: new TextDecoder().decode(chunks[0]) }));
`,
  );
  const sshd = vm.sshd;
  const flags = [
    "--no-prompt",
    // No import map: sandboxer's dependencies are pinned in its own src/deps/.
    "--no-config",
    `--allow-net=${sshd.host}:${sshd.port}`,
    `--allow-read=${work.path},${profile},${sshd.identityFile},${sshd.knownHostsFile},${ROOT}`,
    `--allow-write=${work.path}/state`,
    "--allow-run=rsync",
    "--allow-env=LOG_TOKENS,LOG_STREAM",
  ];
  const output = await runProgram(Deno.execPath(), ["run", ...flags, script], {
    env: vm.env,
    cwd: work.path,
  });
  assert.equal(output.code, 0, output.stderr);
  const result = JSON.parse(output.stdout);
  assert.equal(result.code, 0);
  assert.equal(result.out, "hello from the repo\n");
  assert.deepEqual(await listDir(vm.root), []);
});

Deno.test("an SDK script missing a permission gets one line naming the flag", async () => {
  await using vm = await startTestVm();
  await using work = await tempDir();
  const profile = await vm.profile("narrow");
  const script = `${work.path}/script.ts`;
  await Deno.writeTextFile(
    script,
    `import { Manager, SandboxerError } from ${JSON.stringify(`file://${ROOT}/mod.ts`)};
await using manager = await Manager.open({ stateDir: ${JSON.stringify(`${work.path}/state`)} });
try {
  await manager.create({ profile: ${JSON.stringify(profile)} });
} catch (error) {
  console.log(error instanceof SandboxerError ? error.message : "untyped: " + error);
}
`,
  );
  const sshd = vm.sshd;
  const { stdout } = await runProgram(Deno.execPath(), [
    "run",
    "--no-prompt",
    "--no-config",
    // No --allow-net: the connect must fail with a message naming the flag.
    `--allow-read=${work.path},${profile},${sshd.identityFile},${sshd.knownHostsFile},${ROOT}`,
    `--allow-write=${work.path}/state`,
    "--allow-env=LOG_TOKENS,LOG_STREAM",
    script,
  ], { env: vm.env });
  assert.match(stdout, new RegExp(`--allow-net=${sshd.host}:${sshd.port}`), stdout);
});
