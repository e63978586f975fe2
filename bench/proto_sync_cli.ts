/**
 * PROTOTYPE (benchmark only): what `sandboxer sync ID --repo DIR` would cost
 * as a fresh CLI process with one of the proposed sync paths — open the
 * manager (the module graph of the CLI minus the command parser), read the
 * record, connect once (host key checked against the pinned fingerprint),
 * then:
 * - `tar`: stream the rsync-selected files as one tar (first sync into an
 *   empty workspace); the selection runs while the connection is made;
 * - `relay`: run rsync over that connection (any sync).
 *
 * Usage (same permission flags as `deno task sandboxer`):
 *   deno run … bench/proto_sync_cli.ts tar|relay ID DIR
 *
 * @module
 */

import { Manager } from "../src/core/manager.ts";
import { handleTarget, type SshWorkspaceHandle } from "../src/extensions/ssh_workspace/handle.ts";
import { rsyncFilterArgs } from "../src/process/rsync.ts";
import { rsyncOverConnection } from "./rsync_relay.ts";
import { connectDirect } from "./ssh2_stream.ts";
import { selectEntries, tarSync } from "./tar_sync.ts";

const [mode, id, repo] = Deno.args;
await using manager = await Manager.open();
const record = await manager.show(id);
const handle = record.handle as SshWorkspaceHandle;
const [user, host] = handleTarget(handle).split("@");
const filters = {
  exclude: [...record.sync.exclude, "/.sandboxer.json"],
  gitignore: record.sync.gitignore,
};
const selection = mode === "tar" ? selectEntries(repo, filters) : undefined;
await using connection = await connectDirect({
  host,
  port: handle.ssh_port,
  user,
  identityFile: handle.identity_file!,
  hostKeyFingerprint: handle.host_key_fingerprint!,
});
let result: unknown;
if (mode === "tar") {
  result = await tarSync(
    connection.exec,
    { source: repo, workspace: handle.workspace, ...filters },
    {
      selection,
    },
  );
} else {
  const relay = await rsyncOverConnection(connection, [
    "--archive",
    "--delete",
    ...rsyncFilterArgs(filters),
    "--",
    `${repo.replace(/\/+$/, "")}/`,
    `${handle.vm_target}:${handle.workspace}/`,
  ]);
  if (relay.code !== 0) throw new Error(`rsync exited ${relay.code}: ${relay.stderr}`);
  result = relay;
}
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(result) + "\n"));
