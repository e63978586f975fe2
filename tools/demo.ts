/**
 * The README demo: a private sshd with throwaway keys, then the real CLI
 * (the exact entry point and permission flags of `deno task sandboxer`)
 * creates a sandbox, syncs this repository into it, runs a command there and
 * destroys it. Each step is printed with its time; nothing is left behind.
 *
 * @module
 */

import { removeCreatedLoginUser, sshdUnavailableReason } from "../tests/harness/sshd.ts";
import { startTestVm } from "../tests/harness/test_vm.ts";
import { listDir, ROOT, sandboxerTaskArgv } from "../tests/helpers.ts";

const encoder = new TextEncoder();
const say = (text: string) => Deno.stdout.writeSync(encoder.encode(text + "\n"));

// The sshd's login user (made when run as root) gets a name of its own, removed at the end, so
// the demo leaves no system user behind and never touches a user a test run is using.
Deno.env.set(
  "SANDBOXER_TEST_USER",
  `sbxdemo-${crypto.randomUUID().slice(0, 8)}`,
);
const reason = await sshdUnavailableReason();
if (reason) {
  say(`demo cannot run here: ${reason}`);
  Deno.exit(1);
}

let failed = false;
try {
  const t0 = performance.now();
  await using vm = await startTestVm();
  const { sshd, root, env } = vm;
  say(`• started sshd on 127.0.0.1:${sshd.port} (user ${sshd.user}, throwaway keys) in ${ms(t0)}`);
  const profile = await vm.profile(
    "demo",
    [
      "description: The demo VM (a loopback sshd)",
      "sync:",
      "  exclude: [.git/, dist/]",
      "setup:",
      "  - test -f deno.json",
      "ttl: 1h",
    ].join("\n"),
  );
  const created = await cli(["create", "--profile", profile, "--repo", ROOT, "--json"], env);
  const record = JSON.parse(created.stdout);
  say(`• created ${record.id} at ${record.workspace} and synced this repo (${created.time})`);

  const listing = await cli(
    ["exec", record.id, "--", "sh", "-c", "ls | head -n 8; echo; find . -type f | wc -l"],
    env,
  );
  say(`• exec in the workspace (${listing.time}):`);
  say(listing.stdout.trimEnd().split("\n").map((l) => `    ${l}`).join("\n"));

  const shell = await cli(["ssh", record.id, "--", "sh", "-c", 'echo "in $(pwd)"'], env);
  say(`• ssh into the workspace (${shell.time}): ${shell.stdout.trim()}`);

  const destroyed = await cli(["destroy", record.id], env);
  say(`• destroyed ${record.id} (${destroyed.time})`);

  const ran = await cli(
    ["run", "--profile", profile, "--repo", ROOT, "--", "sh", "-c", "test -f deno.json && echo ok"],
    env,
  );
  say(`• run: create, sync, command, destroy in one go (${ran.time}): ${ran.stdout.trim()}`);

  // Seeds outlive their sandboxes by design: the next create of this repo starts from one.
  const left = (await listDir(root)).filter((name) => name !== ".sbx-seeds");
  if (left.length) throw new Error(`workspace root not empty after destroy: ${left.join(", ")}`);
  say(
    `• ${root} holds no workspace again (only .sbx-seeds, this repo's last synced tree for the` +
      " next create: docs/warm-workspaces.md); stopping sshd, which removes it",
  );
} catch (error) {
  failed = true;
  const cause = error instanceof SuppressedError ? error.suppressed : error;
  say(`demo failed: ${cause instanceof Error ? cause.message : cause}`);
}
try {
  const removed = await removeCreatedLoginUser();
  if (removed) say(`• removed the login user ${removed}`);
} catch (error) {
  failed = true;
  say(`demo failed: ${error instanceof Error ? error.message : error}`);
}
if (failed) Deno.exit(1);
say("• done: nothing left behind");

async function cli(args: string[], env: Record<string, string>) {
  const [program, ...rest] = await sandboxerTaskArgv();
  say(
    `$ sandboxer ${
      args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ")
    }`,
  );
  const started = performance.now();
  const output = await new Deno.Command(program, {
    args: [...rest, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  const result = {
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    time: ms(started),
  };
  if (!output.success) {
    throw new Error(`sandboxer ${args[0]} exited ${output.code}: ${result.stderr.trim()}`);
  }
  return result;
}

function ms(started: number): string {
  return `${Math.round(performance.now() - started)} ms`;
}
