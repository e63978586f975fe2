/**
 * rsync over an open SSH connection: rsync runs a constant relay script as
 * its remote shell, and this process moves the bytes between rsync's pipes
 * and an exec channel of the connection.
 *
 * @module
 */

import { SshError } from "../core/errors.ts";
import type { SyncReport } from "../core/types.ts";
import { shellQuote } from "../transport/quote.ts";
import { describe } from "../transport/ssh/errors.ts";
import type { RawExecChannel, RawExecOptions } from "../transport/ssh/types.ts";
import { spawnPiped, terminate } from "../process/run.ts";
import { signalExitCode } from "../process/signals.ts";
import { buildRsyncRelayArgv } from "./rsync.ts";
import { REMOTE_COMMAND_NOT_FOUND, RSYNC_VANISHED, rsyncFailure } from "./rsync_failure.ts";
import { parseRsyncStats, readRsyncOutput } from "./rsync_output.ts";
import type { RsyncPlan, RunRsyncOptions } from "./rsync_types.ts";
import { probeRsync } from "./rsync_version.ts";

/** How long a channel may outlive the rsync it serves before it is closed. */
const RELAY_LINGER_MS = 5_000;

/** What {@linkcode runRsyncOverConnection} needs of a connection: `SshConnection` has it. */
export interface RawExecOpener {
  /** Open an exec channel for a command already quoted for the remote shell. */
  openRawExec(command: string, options?: RawExecOptions): Promise<RawExecChannel>;
}

/**
 * Run rsync for a plan with its transport replaced by an exec channel of an
 * open connection: no second ssh handshake, no `ssh` process, the host key
 * the connection pinned, and the connection's authentication (passphrase keys
 * need no agent). rsync runs a constant relay script as its remote shell (see
 * `buildRsyncRelayArgv()` (rsync.ts)); this process moves bytes between rsync's
 * pipes and the channel, with backpressure both ways. Errors are mapped as by
 * `runRsync()` (rsync_run.ts). Check `rsyncRelaySupported()` (rsync_version.ts) first.
 *
 * @param plan What to sync and where; `target` only names the operand and errors.
 * @param connection The open connection (an `SshConnection`).
 * @param options Progress callback, abort signal and logger.
 * @returns Files sent, files deleted and bytes of file data moved.
 * @throws {SshError} Stage `sync` when the connection is lost during the transfer or the
 *   remote host has no rsync.
 * @throws {WorkspaceError} When the receiving host's disk is full.
 * @throws {CommandFailedError} When rsync failed for another reason (exit 24 counts as
 *   success and is logged as a warning).
 */
export async function runRsyncOverConnection(
  plan: RsyncPlan,
  connection: RawExecOpener,
  options: RunRsyncOptions = {},
): Promise<SyncReport> {
  options.signal?.throwIfAborted();
  const caps = await probeRsync();
  const argv = buildRsyncRelayArgv(plan, caps) as [string, ...string[]];
  if (plan.direction === "pull") await Deno.mkdir(plan.source, { recursive: true });
  options.logger?.debug(`$ ${shellQuote(argv)} (over the open connection)`);
  const { code, remoteCode, stderr, lost } = await relay(argv, connection, options);
  if (lost !== undefined) {
    throw new SshError(
      describe(plan.target),
      "sync",
      `the connection was lost during the transfer (${
        lostReason(lost)
      }); check the network and the host, then sync again`,
      { cause: lost },
    );
  }
  const status = relayExitCode(code, remoteCode);
  if (status === 0) return { method: "rsync", ...parseRsyncStats(stderr) };
  if (status === RSYNC_VANISHED) {
    options.logger?.warn("rsync: some source files vanished during the transfer");
    return { method: "rsync", ...parseRsyncStats(stderr) };
  }
  throw options.explainFailure?.(stderr) ?? rsyncFailure(plan, argv, status, stderr);
}

/** The bare reason of a failed channel: an `SshError` carries it as its cause. */
function lostReason(lost: unknown): string {
  if (lost instanceof SshError && lost.cause instanceof Error) return lost.cause.message;
  return lost instanceof Error ? lost.message : String(lost);
}

/**
 * rsync's status as it would be over ssh: rsync reports its remote shell's
 * status when the remote side could not start (127: no rsync there) or when it
 * has nothing worse itself. The relay script always exits 0, so the remote
 * status is folded in here.
 */
function relayExitCode(local: number, remote: number | undefined): number {
  if (remote === undefined || remote === 0) return local;
  if (remote === REMOTE_COMMAND_NOT_FOUND || local === 0) return remote;
  return local;
}

/** rsync's exit code, the remote one, both stderrs (rsync's first), why the channel failed. */
interface RelayOutcome {
  code: number;
  remoteCode?: number;
  stderr: string;
  lost?: unknown;
}

async function relay(
  argv: readonly [string, ...string[]],
  connection: RawExecOpener,
  options: RunRsyncOptions,
): Promise<RelayOutcome> {
  // RSYNC_OLD_ARGS in the user's environment would turn remote-path escaping off.
  const child = await spawnPiped(argv, { env: { RSYNC_OLD_ARGS: "0" } });
  let stopReason: unknown;
  let cancelKill = () => {};
  let lingerTimer: ReturnType<typeof setTimeout> | undefined;
  // The channel's own signal: the caller's abort, or rsync gone while the channel lingers.
  const channelAbort = new AbortController();
  const onAbort = () => {
    if (stopReason !== undefined) return;
    stopReason = options.signal?.reason ?? new DOMException("Aborted", "AbortError");
    channelAbort.abort(stopReason);
    cancelKill = terminate(child);
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let lingered = false;
  const exited = child.status.then((status) => {
    lingerTimer = setTimeout(() => {
      lingered = true;
      channelAbort.abort(new Error("rsync exited before the remote side"));
    }, RELAY_LINGER_MS);
    return status;
  });

  const stderrDone = readRsyncOutput(child.stderr, options.onProgress);
  let remoteErr: Promise<string> = Promise.resolve("");
  const toRsync = child.stdin.getWriter();
  const fromRsync = child.stdout.getReader();
  let lost: unknown;
  let remoteCode: number | undefined;
  let upstream: Promise<void> = Promise.resolve();
  try {
    // The remote command, up to the first NUL; what follows is already data for the remote side.
    let head = new Uint8Array(0);
    let nul = -1;
    while (nul < 0) {
      const { done, value } = await fromRsync.read();
      if (done) break;
      const joined = new Uint8Array(head.length + value.length);
      joined.set(head);
      joined.set(value, head.length);
      head = joined;
      nul = head.indexOf(0);
    }
    if (nul >= 0 && stopReason === undefined) {
      const command = new TextDecoder().decode(head.subarray(0, nul));
      const rest = head.subarray(nul + 1);
      let remote: RawExecChannel | undefined;
      try {
        remote = await connection.openRawExec(command, { signal: channelAbort.signal });
      } catch (error) {
        lost = error;
      }
      if (remote !== undefined) {
        const channel = remote;
        remoteErr = readRsyncOutput(channel.stderr);
        upstream = (async () => {
          const writer = channel.stdin.getWriter();
          // Once the channel is gone (its exit status says why) keep draining rsync's output:
          // an rsync blocked on a full pipe would never read the EOF that ends it.
          let sending = true;
          const send = async (chunk: Uint8Array) => {
            if (!sending) return;
            await writer.write(chunk).catch(() => sending = false);
          };
          if (rest.length > 0) await send(rest);
          for (;;) {
            const next = await fromRsync.read().catch(() => undefined);
            if (next === undefined || next.done) break;
            await send(next.value);
          }
          if (sending) await writer.close().catch(() => {});
        })();
        const downstream = channel.stdout
          .pipeTo(new WritableStream({ write: (chunk) => toRsync.write(chunk) }))
          .catch(() => {
            // rsync stopped reading (it exited): its status says why.
          });
        try {
          remoteCode = await channel.exit;
          await downstream;
        } catch (error) {
          lost = error;
        }
      }
    }
  } finally {
    // EOF on rsync's stdin ends the relay script, as ssh ends when the remote side has. On a
    // failure a write may still be pending on a pipe rsync no longer reads: drop it, do not wait.
    if (lost === undefined && stopReason === undefined) await toRsync.close().catch(() => {});
    else await toRsync.abort().catch(() => {});
  }
  const status = await exited;
  cancelKill();
  clearTimeout(lingerTimer);
  options.signal?.removeEventListener("abort", onAbort);
  await fromRsync.cancel().catch(() => {});
  await upstream;
  const stderr = (await stderrDone) + (await remoteErr);
  if (stopReason !== undefined) throw stopReason;
  const code = status.signal ? signalExitCode(status.signal) : status.code;
  // A channel closed because rsync had already gone is not a lost connection: rsync's own
  // status and stderr say what happened.
  return { code, remoteCode, stderr, lost: lingered ? undefined : lost };
}
