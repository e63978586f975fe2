/**
 * `exec` over a connection shared between sandboxer processes (OpenSSH's
 * ControlMaster, see src/transport/ssh_mux.ts): the first exec starts a
 * background master, later ones — other CLI processes included — run as mux
 * clients over it, with no handshake. When sharing cannot be used (a jump
 * host, a key that needs a passphrase no agent holds, a master that will not
 * start, a socket path too long) the caller connects as before; nothing has
 * run remotely by then. The pinned host key is the only one the master
 * accepts (sandboxer's own known_hosts file under HostKeyAlias).
 *
 * @module
 */

import { SshError } from "../../core/errors.ts";
import { optionalEnv } from "../../core/permissions.ts";
import type { ExecIO, Logger } from "../../core/types.ts";
import { run, spawnPiped, terminate } from "../../process/run.ts";
import { signalExitCode } from "../../process/signals.ts";
import { pinnedKeyLine, sshConfigBlock, writePrivate } from "../../transport/openssh_config.ts";
import { readKnownHosts, soleHostKeyFingerprint } from "../../transport/known_hosts.ts";
import { remoteCommand } from "../../transport/quote.ts";
import { concat } from "../../sync/path_bytes.ts";
import { pumpInto } from "../../transport/ssh/stdin_pump.ts";
import {
  controlPathArg,
  launchMaster,
  type MasterSpec,
  MAX_SOCKET_PATH,
  muxSocketName,
  openMuxDir,
  probeMaster,
  startMaster,
  withMasterLock,
} from "../../transport/ssh_mux.ts";
import { ExecGate } from "./exec_gate.ts";
import { handleTarget, splitUserHost, type SshWorkspaceHandle } from "./handle.ts";
import { MUX_EXEC, MUX_KILL } from "./remote_scripts.ts";
import { type WorkspaceRef, workspaceRefusal } from "./workspace_ref.ts";

/** What {@linkcode muxExec} needs of its extension. */
export interface MuxSetup {
  /** sandboxer's state directory (the sockets go in its `mux/`). */
  stateDir?: string;
  /** Where to say why sharing was not used. */
  logger: Logger;
}

/** One master's socket and the OpenSSH files that reach its host. */
interface Master {
  socket: string;
  alias: string;
  configFile: string;
}

/**
 * Run `wrapped` (an exec wrapper and the command) over the shared connection.
 *
 * @param handle The stored handle (its pin checked by the master's known_hosts).
 * @param ref The checked workspace, for refusals.
 * @param wrapped `sh -c WORKSPACE_EXEC… PROGRAM ARGS…`.
 * @param io Output, stdin, abort, and `sshMux` (absent or 0: undefined at once).
 * @param setup State directory and logger.
 * @returns The exit code, or undefined when the caller should connect itself.
 * @throws {LocalFileError} when the socket directory or a socket's name holds something not sandboxer's.
 * @throws {SshError} when the connection failed or was lost (the command's code is never 255 then).
 */
export async function muxExec(
  handle: SshWorkspaceHandle,
  ref: WorkspaceRef,
  wrapped: readonly string[],
  io: ExecIO,
  setup: MuxSetup,
): Promise<number | undefined> {
  const persistSeconds = io.sshMux?.persistSeconds ?? 0;
  const fingerprint = handle.host_key_fingerprint;
  if (!fingerprint || !sharable(handle, persistSeconds, setup)) return undefined;
  const master = await startOrWait(handle, fingerprint, persistSeconds, io.signal, setup);
  if (master === undefined) return undefined;
  return await runClient(master, ref, wrapped, io);
}

/** A master already listening for a target being created, and the key it accepts. */
export interface SharedCreate {
  /** Its mux client. */
  client: SharedClient;
  /** The one key the target's known_hosts trusts, which the master accepts alone. */
  fingerprint: string;
}

/**
 * The shared connection for a sandbox being created: the master already
 * listening for its target, or else one launched now, beside the create's
 * own connection and not waited for, so that the CLI calls that follow
 * `create` (its first sync's tar stream, `sync`, `exec`) find it up and pay
 * no handshake. The host key is not pinned yet: only a target whose
 * known_hosts trusts exactly one key is served, under that key's fingerprint
 * (the socket's name holds it, and the master accepts that key alone), so a
 * host showing any other key never reaches a master. Never throws: sharing
 * is an optimisation, and the create connects directly without it.
 *
 * @param handle The handle being created (no pin yet).
 * @param persistSeconds How long a master stays up idle (`SANDBOXER_SSH_MUX`); 0: none.
 * @param setup State directory and logger.
 * @returns The listening master, or undefined (one may have been launched).
 */
export async function sharedForCreate(
  handle: SshWorkspaceHandle,
  persistSeconds: number,
  setup: MuxSetup,
): Promise<SharedCreate | undefined> {
  try {
    if (!sharable(handle, persistSeconds, setup)) return undefined;
    const [, host] = splitUserHost(handleTarget(handle));
    const entries = await readKnownHosts(handle.known_hosts);
    const fingerprint = soleHostKeyFingerprint(entries, host, handle.ssh_port);
    if (fingerprint === undefined) return undefined;
    const pinned = { ...handle, host_key_fingerprint: fingerprint };
    const client = await liveMuxClient(pinned, setup.stateDir!);
    if (client !== undefined) return { client, fingerprint };
    await launchOnce(pinned, fingerprint, persistSeconds, setup);
  } catch (error) {
    setup.logger.debug(`not sharing an SSH connection: ${(error as Error).message}`);
  }
  return undefined;
}

/**
 * Run a command over a shared connection and collect its output.
 *
 * @param client The mux client ({@linkcode liveMuxClient}).
 * @param argv The remote argv, quoted here for the remote shell.
 * @param signal Abort.
 * @returns Its exit code and output; 255 is ssh's own failure.
 */
export async function runShared(
  client: SharedClient,
  argv: readonly string[],
  signal?: AbortSignal,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await run([...client.command, remoteCommand(argv)], { allowFailure: true, signal });
}

/** Whether OpenSSH's connection sharing may serve this handle at all. */
function sharable(handle: SshWorkspaceHandle, persistSeconds: number, setup: MuxSetup): boolean {
  if (persistSeconds <= 0 || setup.stateDir === undefined || handle.jump) return false;
  // OpenSSH in BatchMode cannot be handed the passphrase ssh2 reads from the environment.
  return !handle.passphrase_env || Boolean(optionalEnv("SSH_AUTH_SOCK"));
}

/** How to reach a master already listening, as a mux client. */
export interface SharedClient {
  /** OpenSSH's argv up to and including `--`: append the remote command. */
  command: [string, ...string[]];
  /** For rsync's `-e`: OpenSSH's options alone; rsync appends `-l USER`, the host and its command. */
  rsh: [string, ...string[]];
  /** The host to name: the master's `Host` alias (its config maps it to the host and the pin). */
  alias: string;
}

/**
 * A mux client of the master already listening for this handle, if one
 * does; none is started. Should the master go away between this check and
 * the client's start, or refuse it a session (sshd's MaxSessions), the
 * client fails at once (255) without connecting directly, and the caller
 * falls back to its own connection.
 *
 * @param handle The stored handle.
 * @param stateDir sandboxer's state directory.
 * @returns The client's arguments, or undefined.
 */
export async function liveMuxClient(
  handle: SshWorkspaceHandle,
  stateDir: string,
): Promise<SharedClient | undefined> {
  const fingerprint = handle.host_key_fingerprint;
  if (!fingerprint || handle.jump) return undefined;
  const place = await masterPlace(handle, fingerprint, stateDir);
  if (typeof place === "string") return undefined;
  if (await probeMaster(place.master.socket, place.uid) !== "live") return undefined;
  const { master } = place;
  // These callers fall back on their own when the master is gone or refuses a session
  // (MaxSessions): OpenSSH's own direct retry would only add a handshake for sshd to drop.
  const noDirect = ["-o", "ProxyCommand=false"];
  return {
    command: [...clientOptions(master), ...noDirect, "-T", master.alias, "--"],
    rsh: [...clientOptions(master), ...noDirect],
    alias: master.alias,
  };
}

/**
 * One command's look-ups of the shared connection ({@linkcode liveMuxClient}):
 * a master found up serves the command's later steps without a second look;
 * none found is looked for again, since the one this create launched may be
 * up by the next step.
 */
export class SharedLookup {
  #found: SharedClient | undefined;

  /**
   * @param handle The stored handle.
   * @param stateDir sandboxer's state directory.
   */
  constructor(readonly handle: SshWorkspaceHandle, readonly stateDir: string) {}

  /** The master's client, or undefined when none is up (never throws). */
  async live(): Promise<SharedClient | undefined> {
    this.#found ??= await liveMuxClient(this.handle, this.stateDir).catch(() => undefined);
    return this.#found;
  }

  /** After a step failed over the master (it may be gone): the next step looks again. */
  forget(): void {
    this.#found = undefined;
  }
}

/** Where this handle's master listens (whether or not one does), or why it cannot. */
async function masterPlace(
  handle: SshWorkspaceHandle,
  fingerprint: string,
  stateDir: string,
): Promise<{ master: Master; uid: number; host: string; user: string } | string> {
  const [user, host] = splitUserHost(handleTarget(handle));
  const dir = await openMuxDir(stateDir);
  const name = await muxSocketName({
    host,
    port: handle.ssh_port,
    user,
    identityFile: handle.identity_file,
    fingerprint,
    keepaliveMs: handle.keepalive_interval_ms,
  });
  const socket = `${dir.path}/${name}`;
  if (new TextEncoder().encode(socket).length > MAX_SOCKET_PATH) {
    return `the socket path ${socket} is longer than ${MAX_SOCKET_PATH} bytes`;
  }
  const master = { socket, alias: `sbx-mux-${name}`, configFile: `${socket}.config` };
  return { master, uid: dir.uid, host, user };
}

/** The master for this handle, started and waited for if none listens; undefined when it cannot be. */
async function startOrWait(
  handle: SshWorkspaceHandle,
  fingerprint: string,
  persistSeconds: number,
  signal: AbortSignal | undefined,
  setup: MuxSetup,
): Promise<Master | undefined> {
  return await masterUnderLock(handle, fingerprint, persistSeconds, signal, setup, startMaster);
}

/**
 * Launch the master for this handle, not waited for (see launchMaster()), unless one listens
 * or the one launched last is still connecting: many creates at once would each launch one (all
 * but one exit at once), and that many handshakes crowd sshd's MaxStartups.
 */
async function launchOnce(
  handle: SshWorkspaceHandle,
  fingerprint: string,
  persistSeconds: number,
  setup: MuxSetup,
): Promise<void> {
  await masterUnderLock(handle, fingerprint, persistSeconds, undefined, setup, async (spec) => {
    const launched = `${spec.socket}.launched`;
    if (await stillConnecting(launched, handle.connect_timeout_ms)) {
      return "the master launched last is still connecting";
    }
    await writePrivate(launched, `${launchMaster(spec)}\n`);
    return "a master was launched for the commands after this one";
  });
}

/**
 * Under the socket's lock: the master if one listens; else its known_hosts and config are
 * written and `start` is given its spec, returning why it does not listen now (or undefined:
 * it does). Undefined, with the reason logged, when there is no master to use.
 */
async function masterUnderLock(
  handle: SshWorkspaceHandle,
  fingerprint: string,
  persistSeconds: number,
  signal: AbortSignal | undefined,
  setup: MuxSetup,
  start: (spec: MasterSpec) => Promise<string | undefined>,
): Promise<Master | undefined> {
  const place = await masterPlace(handle, fingerprint, setup.stateDir!);
  const skip = (why: string) => {
    setup.logger.debug(
      `not sharing the SSH connection to ${handleTarget(handle)}: ${why}; connecting directly`,
    );
    return undefined;
  };
  if (typeof place === "string") return skip(place);
  const { master, uid, host, user } = place;
  const { socket } = master;
  const identityFile = handle.identity_file;
  const why = await withMasterLock(socket, async () => {
    if (await probeMaster(socket, uid) === "live") return undefined;
    const key = await pinnedKeyLine(handle.known_hosts, fingerprint);
    // The direct connection names what is wrong with the known_hosts file.
    if (key === undefined) return `${handle.known_hosts} does not hold the pinned key`;
    const knownHosts = `${socket}.known_hosts`;
    let config: string;
    try {
      config = sshConfigBlock({
        alias: master.alias,
        host,
        port: handle.ssh_port,
        user,
        knownHostsFile: knownHosts,
        identityFile: identityFile ?? undefined,
      }, (problem) => new Error(problem));
    } catch (error) {
      return (error as Error).message;
    }
    // Rewritten only when different: a master launched a moment ago may be reading them.
    await writeIfChanged(knownHosts, `${master.alias} ${key}\n`);
    await writeIfChanged(master.configFile, config);
    return await start({
      configFile: master.configFile,
      alias: master.alias,
      socket,
      persistSeconds,
      connectTimeoutSeconds: handle.connect_timeout_ms / 1000,
      keepaliveSeconds: handle.keepalive_interval_ms / 1000,
      signal,
    });
  });
  return why === undefined ? master : skip(why);
}

/**
 * Whether the master launched last (its `ssh` pid in `file`) is still connecting: that process
 * runs (`/proc`, where there is one) and was launched within the connect timeout.
 */
async function stillConnecting(file: string, timeoutMs: number): Promise<boolean> {
  try {
    const info = await Deno.lstat(file);
    if (Math.abs(Date.now() - (info.mtime?.getTime() ?? 0)) >= timeoutMs) return false;
    const pid = Number.parseInt(await Deno.readTextFile(file), 10);
    return Number.isInteger(pid) && pid > 0 && (await Deno.lstat(`/proc/${pid}`)).isDirectory;
  } catch {
    return false;
  }
}

/** {@linkcode writePrivate}, unless the file (0600, ours) holds exactly `text` already. */
async function writeIfChanged(path: string, text: string): Promise<void> {
  const info = await Deno.lstat(path).catch(() => undefined);
  if (info?.isFile && ((info.mode ?? 0) & 0o777) === 0o600) {
    if (await Deno.readTextFile(path).catch(() => undefined) === text) return;
  }
  await writePrivate(path, text);
}

/** OpenSSH's arguments for a mux client of `master` (a direct connection if it vanished). */
function clientArgs(master: Master, log?: string): [string, ...string[]] {
  return [...clientOptions(master, log), "-T", master.alias, "--"];
}

/** {@linkcode clientArgs} without the host and the command. */
function clientOptions(master: Master, log?: string): [string, ...string[]] {
  return [
    "ssh",
    "-F",
    master.configFile,
    "-S",
    controlPathArg(master.socket),
    "-o",
    "ControlMaster=no",
    "-o",
    "BatchMode=yes",
    ...(log === undefined ? ["-o", "LogLevel=ERROR"] : ["-E", log, "-o", "LogLevel=DEBUG2"]),
  ];
}

/**
 * Run the command as a mux client; see {@linkcode muxExec}. Undefined when
 * it never started and read no stdin, so the caller may connect itself: a
 * session the server refused (sshd's MaxSessions per connection, 10 by
 * default, with many commands at once), after which OpenSSH's own direct
 * connection was dropped before authenticating (MaxStartups).
 */
async function runClient(
  master: Master,
  ref: WorkspaceRef,
  wrapped: readonly string[],
  io: ExecIO,
): Promise<number | undefined> {
  // ssh's own messages go to this file, so its stderr is the command's alone; DEBUG2 says
  // whether an exit code 255 came from the command or from a lost connection.
  const log = `${master.socket}.${crypto.randomUUID().slice(0, 8)}.log`;
  const remote = remoteCommand(["sh", "-c", MUX_EXEC, "sh", ...wrapped]);
  const child = await spawnPiped([...clientArgs(master, log), remote]);
  let pid: string | undefined;
  let remoteKill: Promise<void> | undefined;
  let cancelKill: (() => void) | undefined;
  // OpenSSH's mux client cannot send a signal: the process group is killed over a second
  // session, then the client is stopped. Before the pid is known, only the client is.
  const onAbort = () => {
    if (pid !== undefined) remoteKill ??= killRemote(master, pid);
    void (remoteKill ?? Promise.resolve()).finally(() => cancelKill ??= terminate(child));
  };
  io.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (io.signal?.aborted) onAbort();
    const gate = new ExecGate(io.stdout);
    const pidReader = new PidLine();
    const held: Uint8Array[] = [];
    const stopStdin = feedStdin(child, io.stdin);
    const stdoutDone = drain(child.stdout, (chunk) => {
      if (!pidReader.done) {
        chunk = pidReader.take(chunk);
        if (pidReader.pid !== undefined && pid === undefined) {
          pid = pidReader.pid;
          if (io.signal?.aborted) onAbort();
        }
        if (!pidReader.done) return;
      }
      gate.write(chunk);
      if (gate.started) { for (const part of held.splice(0)) io.stderr?.(part); }
    });
    const stderrDone = drain(child.stderr, (chunk) => {
      if (gate.started) io.stderr?.(chunk);
      else held.push(chunk);
    });
    const status = await child.status;
    stopStdin();
    await Promise.allSettled([stdoutDone, stderrDone, remoteKill]);
    if (io.signal?.aborted) throw io.signal.reason;
    const code = status.signal ? signalExitCode(status.signal) : status.code;
    const said = code === 255 ? await Deno.readTextFile(log).catch(() => "") : "";
    if (!gate.started) {
      const stderr = new TextDecoder().decode(concat(held)).trim();
      if (code === 255 && gate.reason === "") {
        if (io.stdin === undefined && !SESSION_STARTED.test(said)) return undefined;
        throw lost(ref, wrapped[0], said, false);
      }
      throw workspaceRefusal(ref, code, gate.reason || stderr, "run commands in");
    }
    if (code === 255 && !/(Received exit status from master|Exit status) 255\b/.test(said)) {
      throw lost(ref, wrapped[0], said, true);
    }
    return code;
  } finally {
    io.signal?.removeEventListener("abort", onAbort);
    cancelKill?.();
    await Deno.remove(log).catch(() => {});
  }
}

/** What a mux client's DEBUG2 log says once a session was opened, over the master or directly. */
const SESSION_STARTED = /mux_client_request_session: master session id|Authenticated to /;

/** The error for an ssh that ended without the command's exit status. */
function lost(ref: WorkspaceRef, program: string, said: string, started: boolean): SshError {
  const line = said.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("debug")).at(-1);
  return new SshError(
    ref.where,
    "exec",
    started
      ? `the connection was lost while ${program} ran${line ? ` (${line.trim()})` : ""}`
      : `ssh could not run the command${line ? ` (${line.trim()})` : ""}`,
    {
      fix:
        "check the host and run it again; SANDBOXER_SSH_MUX=0 connects without sharing a connection",
    },
  );
}

/** MUX_EXEC's first stdout line, the session shell's pid, however the bytes are split. */
class PidLine {
  #bytes: number[] = [];
  /** Whether the line is over (or turned out not to be one). */
  done = false;
  /** The pid, once read. */
  pid: string | undefined;

  /** Take what belongs to the line; returns the rest. */
  take(chunk: Uint8Array): Uint8Array {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte === 0x0a && this.#bytes.length > 0) {
        this.pid = String.fromCharCode(...this.#bytes);
        this.done = true;
        return chunk.subarray(i + 1);
      }
      if (byte < 0x30 || byte > 0x39 || this.#bytes.length >= 12) {
        // Not a pid line: hand everything on to the gate, which names what came.
        this.done = true;
        return new Uint8Array([...this.#bytes, ...chunk.subarray(i)]);
      }
      this.#bytes.push(byte);
    }
    return new Uint8Array();
  }
}

/** End the command's process group on the host, over the same connection. */
async function killRemote(master: Master, pid: string): Promise<void> {
  const argv: [string, ...string[]] = [
    ...clientArgs(master),
    remoteCommand(["sh", "-c", MUX_KILL, "sh", pid]),
  ];
  await run(argv, { allowFailure: true, timeoutMs: 5_000 }).catch(
    () => {},
  );
}

/** Copy stdin into the client as it takes it, then close it; returns what stops the copy. */
function feedStdin(child: Deno.ChildProcess, stdin: ExecIO["stdin"]): () => void {
  const writer = child.stdin.getWriter();
  const end = () => writer.close().catch(() => {});
  if (stdin instanceof ReadableStream) return pumpInto(stdin, (chunk) => writer.write(chunk), end);
  (async () => {
    if (stdin !== undefined) await writer.write(stdin);
    await end();
  })().catch(() => {});
  return () => {};
}

async function drain(
  stream: ReadableStream<Uint8Array>,
  onChunk: (chunk: Uint8Array) => void,
): Promise<void> {
  for await (const chunk of stream) onChunk(chunk);
}
