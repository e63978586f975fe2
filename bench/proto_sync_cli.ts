/**
 * PROTOTYPE (benchmark only): what `sandboxer sync ID --repo DIR` into an
 * empty workspace would cost as a fresh CLI process with the tar-stream
 * design — open the manager (the same module graph as the CLI), read the
 * record, connect once, check the pinned host key, stream the tar.
 *
 * Usage (same permission flags as `deno task sandboxer`):
 *   deno run … bench/tar_sync_cli.ts ID DIR
 *
 * @module
 */

import { Manager } from "../src/core/manager.ts";
import type { SshWorkspaceHandle } from "../src/extensions/ssh_workspace/handle.ts";
import { connectDirect } from "./ssh2_stream.ts";
import { tarSync } from "./tar_sync.ts";

const [id, repo] = Deno.args;
await using manager = await Manager.open();
const record = await manager.show(id);
const handle = record.handle as SshWorkspaceHandle;
const [user, host] = handle.vm_target.split("@");
await using connection = await connectDirect({
  host,
  port: handle.ssh_port,
  user,
  identityFile: handle.identity_file!,
  hostKeyFingerprint: handle.host_key_fingerprint!,
});
const report = await tarSync(connection.exec, {
  source: repo,
  workspace: handle.workspace,
  exclude: [...record.sync.exclude, "/.sandboxer.json"],
  gitignore: record.sync.gitignore,
});
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(report) + "\n"));
