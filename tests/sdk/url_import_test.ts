// The SDK imported by URL with no import map and no deno.json: this repository served over HTTP on
// loopback, a script outside it that imports http://127.0.0.1:PORT/mod.ts and creates, execs in and
// destroys a sandbox on a real sshd. Before the dependencies moved to src/deps/ the bare specifiers
// failed to resolve; before the built-in YAML was embedded, Manager.open() refused the built-in
// directories as "not a file: URL".
import assert from "node:assert/strict";
import { extname, normalize } from "node:path";
import { ROOT, runProgram, tempDir, workspaceRootEntries } from "../helpers.ts";
import { startTestVm } from "../harness/test_vm.ts";

const TYPES: Record<string, string> = {
  ".ts": "application/typescript",
  ".yaml": "text/plain",
  ".yml": "text/plain",
};

/** Serve the files of this repository (nothing outside it, no directory listings). */
function serveRepository(requested: string[]): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const path = normalize(decodeURIComponent(new URL(request.url).pathname));
    requested.push(path);
    if (path.includes("/.") || path.includes("..")) return new Response(null, { status: 404 });
    try {
      const body = await Deno.readFile(`${ROOT}${path}`);
      const type = TYPES[extname(path)] ?? "application/octet-stream";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response(null, { status: 404 });
    }
  });
}

Deno.test("a script with no deno.json imports mod.ts by URL and creates, execs in, destroys", async () => {
  await using vm = await startTestVm();
  await using work = await tempDir();
  const requested: string[] = [];
  await using server = serveRepository(requested);
  const origin = `127.0.0.1:${server.addr.port}`;
  const profile = await vm.profile("by-url");
  const state = `${work.path}/state`;
  const script = `${work.path}/script.ts`;
  await Deno.writeTextFile(
    script,
    `import { Manager } from "http://${origin}/mod.ts";
// Not public API: the registry is read only to check where the built-ins came from.
import { managerInternals } from "http://${origin}/src/sandbox/manager.ts";

await using manager = await Manager.open({ stateDir: ${JSON.stringify(state)} });
const extensions = managerInternals(manager).registry.registrations.map((r) => [r.id, r.builtin, r.file]);
const box = await manager.create({ profile: ${JSON.stringify(profile)} });
const chunks: Uint8Array[] = [];
const code = await manager.exec(box.id, ["sh", "-c", "echo hello from $(pwd)"], {
  stdout: (chunk) => chunks.push(chunk),
});
const destroyed = await manager.destroy(box.id);
console.log(JSON.stringify({
  extensions,
  workspace: box.workspace,
  code,
  out: new TextDecoder().decode(chunks[0]),
  status: destroyed.status,
}));
`,
  );
  const sshd = vm.sshd;
  const output = await runProgram(Deno.execPath(), [
    "run",
    "--no-config",
    "--no-prompt",
    `--allow-import=${origin}`,
    `--allow-net=${sshd.host}:${sshd.port}`,
    `--allow-read=${profile},${sshd.identityFile},${sshd.knownHostsFile},${state}`,
    `--allow-write=${state}`,
    "--allow-env=LOG_TOKENS,LOG_STREAM",
    script,
  ], { env: { ...vm.env, NO_COLOR: "1" }, cwd: work.path });
  assert.equal(output.code, 0, output.stderr);
  const result = JSON.parse(output.stdout);
  // The built-in registrations came from the server, and say so in their file names.
  assert.deepEqual(result.extensions, [
    ["ext.compose-ssh", true, `http://${origin}/extensions/ext.compose-ssh.yaml`],
    ["ext.vm-packer", true, `http://${origin}/extensions/ext.vm-packer.yaml`],
  ]);
  assert.equal(result.code, 0);
  assert.equal(result.out, `hello from ${result.workspace}\n`);
  assert.equal(result.status, "destroyed");
  assert.deepEqual(await workspaceRootEntries(vm.root), [], "the workspace is gone");
  assert.ok(requested.includes("/mod.ts"));
  assert.ok(requested.includes("/extensions/ext.vm-packer.yaml"), requested.join(" "));
  assert.ok(!requested.some((path) => path.endsWith("deno.json")), "no import map was read");
});
