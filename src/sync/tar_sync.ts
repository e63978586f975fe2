/**
 * The first sync into a workspace known to be empty, as one tar stream over
 * OpenSSH: faster than rsync there (no file-by-file negotiation, no second
 * pass), and exactly the same tree.
 *
 * Which files: the local rsync is asked, with a dry run into a directory
 * that does not exist and the very filter arguments of the rsync sync
 * ({@linkcode rsyncFilterArgs}: git's listing in a work tree, `.gitignore`
 * files as rsync reads them elsewhere), so the selection is rsync's own in
 * both cases. Its itemized names (`\#ooo` escapes decoded back to bytes, so
 * newlines and non-UTF-8 names survive) go NUL-separated to GNU tar
 * (`--null --verbatim-files-from --no-unquote --no-recursion`), which writes
 * a POSIX (pax) archive: nanosecond mtimes, symlinks as symlinks, hard links
 * as separate files (`--hard-dereference`, as `rsync -a` without `-H`).
 *
 * The receiving side is the caller's (a constant remote script that checks
 * the workspace and runs `tar -x`); {@linkcode pushTar} only moves the bytes
 * from the local tar into the remote command's stdin and reports both exit
 * statuses. A selection holding devices, sockets or FIFOs is left to rsync.
 *
 * @module
 */

import { MissingProgramError, PermissionError } from "../core/errors.ts";
import type { SyncProgress } from "../core/types.ts";
import { run, spawnPiped, terminate } from "../process/run.ts";
import { signalExitCode } from "../process/signals.ts";
import { rsyncFilterArgs } from "./rsync.ts";
import type { RsyncPlan } from "./rsync_types.ts";

/** What to send: NUL-separated relative names (`.` first) and what rsync would report. */
export interface TarSelection {
  /** The names for `tar -T -`, each followed by a NUL byte. */
  list: Uint8Array;
  /** Regular files (rsync's "Number of regular files transferred"). */
  files: number;
  /** Their total size (rsync's "Total transferred file size"). */
  bytes: number;
}

/**
 * GNU tar's create arguments for a NUL-separated list on stdin, names taken
 * literally (a leading `-`, a backslash, a newline), relative to `source`.
 *
 * @param source The local directory.
 * @returns The argv, starting with `"tar"`.
 */
export function tarCreateArgv(source: string): [string, ...string[]] {
  return [
    "tar",
    "--create",
    "--file=-",
    "--format=posix",
    // atime and ctime are not kept by rsync -a: leave them out of the pax headers.
    "--pax-option=delete=atime,delete=ctime",
    "--hard-dereference",
    "--no-recursion",
    `--directory=${source}`,
    "--null",
    "--verbatim-files-from",
    "--no-unquote",
    "--files-from=-",
  ];
}

let gnuTar: Promise<boolean> | undefined;

/**
 * Whether this machine's `tar` is GNU tar and may be run (asked once per
 * process). Not installed, not granted (`--allow-run`), or another tar: false,
 * silently — the caller then uses rsync.
 *
 * @returns True when the tar path can be used on this side.
 */
export function localGnuTar(): Promise<boolean> {
  gnuTar ??= run(["tar", "--version"], { allowFailure: true }).then(
    (result) => result.code === 0 && result.stdout.startsWith("tar (GNU tar) "),
    (error) => {
      if (error instanceof MissingProgramError || error instanceof PermissionError) return false;
      throw error;
    },
  );
  return gnuTar;
}

/** One line of `--out-format=%i %l %n`: itemize code, length, escaped name. */
const ITEM_LINE = /^([>c.][fdLDS][^ ]{9}) (\d+) (.*)$/;

/**
 * Decode rsync's escaping of a name in its output: every `\#ooo` is one byte
 * (rsync escapes a backslash that would start one, so the decoding is exact).
 *
 * @param escaped The name as rsync printed it.
 * @returns The name's bytes.
 */
export function rsyncNameBytes(escaped: string): Uint8Array {
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  let last = 0;
  for (const match of escaped.matchAll(/\\#([0-7]{3})/g)) {
    parts.push(encoder.encode(escaped.slice(last, match.index)));
    parts.push(new Uint8Array([Number.parseInt(match[1], 8)]));
    last = match.index + match[0].length;
  }
  parts.push(encoder.encode(escaped.slice(last)));
  return join(parts);
}

/**
 * The files a push of `plan` would send into an empty directory, as rsync
 * itself chooses them.
 *
 * @param plan The source and its selection (filters, excludes, `.gitignore`).
 * @param signal Aborting it stops rsync.
 * @returns The selection, or undefined when it holds a device, socket or FIFO
 *   (or rsync's listing failed): the caller uses rsync then.
 */
export async function tarSelection(
  plan: Pick<RsyncPlan, "source" | "selection" | "gitignore" | "exclude">,
  signal?: AbortSignal,
): Promise<TarSelection | undefined> {
  const scratch = await Deno.makeTempDir({ prefix: "sbx-tar-list-" });
  try {
    const source = plan.source.endsWith("/") ? plan.source : `${plan.source}/`;
    const argv: [string, ...string[]] = [
      "rsync",
      "--archive",
      "--dry-run",
      "--out-format=%i %l %n",
      ...rsyncFilterArgs(plan),
      "--",
      source.startsWith("/") ? source : `./${source}`,
      // Never made (a dry run): every entry is new, so every entry is itemized.
      `${scratch}/empty/`,
    ];
    const result = await run(argv, {
      signal,
      allowFailure: true,
      env: { RSYNC_OLD_ARGS: "0" },
    });
    if (result.code !== 0) return undefined;
    const names: Uint8Array[] = [];
    let files = 0;
    let bytes = 0;
    for (const line of result.stdout.split("\n")) {
      const item = ITEM_LINE.exec(line);
      if (!item) continue;
      const kind = item[1][1];
      if (kind === "D" || kind === "S") return undefined;
      let name = item[3];
      if (kind === "d") name = name === "./" ? "." : name.replace(/\/$/, "");
      if (kind === "f") {
        files++;
        bytes += Number(item[2]);
      }
      names.push(rsyncNameBytes(name), new Uint8Array([0]));
    }
    return { list: join(names), files, bytes };
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

/** How a tar push ended: both sides' statuses and what the remote command said. */
export interface TarPushOutcome {
  /** The local tar's exit code. */
  localCode: number;
  /** The local tar's stderr. */
  localStderr: string;
  /** The remote command's exit code (ssh's: 255 when ssh itself failed). */
  remoteCode: number;
  /** The remote command's stdout. */
  remoteStdout: string;
  /** Its stderr (and ssh's). */
  remoteStderr: string;
}

/**
 * Start `remote` (an ssh whose remote command extracts a tar stream) at once,
 * so its handshake overlaps the listing; then run the local tar over the
 * selection and feed its stream to it.
 *
 * @param source The local directory.
 * @param selection What to send, from {@linkcode tarSelection}; undefined ends `remote` unused.
 * @param remote The ssh argv, remote command included.
 * @param options Progress (bytes of the stream, capped at the files' total), abort.
 * @returns Both exit statuses and the remote output, or undefined when there was no selection.
 */
export async function pushTar(
  source: string,
  selection: Promise<TarSelection | undefined>,
  remote: readonly [string, ...string[]],
  options: { onProgress?: (progress: SyncProgress) => void; signal?: AbortSignal } = {},
): Promise<TarPushOutcome | undefined> {
  options.signal?.throwIfAborted();
  const ssh = await spawnPiped(remote);
  const kills: (() => void)[] = [];
  const stop = (child: Deno.ChildProcess) => kills.push(terminate(child));
  const onAbort = () => stop(ssh);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const text = (stream: ReadableStream<Uint8Array>) => new Response(stream).text();
  const remoteStdout = text(ssh.stdout);
  const remoteStderr = text(ssh.stderr);
  try {
    let chosen: TarSelection | undefined;
    let tar: Deno.ChildProcess | undefined;
    try {
      chosen = await selection;
      if (chosen !== undefined) tar = await spawnPiped(tarCreateArgv(source));
    } finally {
      if (tar === undefined) {
        await ssh.stdin.abort().catch(() => {});
        stop(ssh);
        await Promise.allSettled([ssh.status, remoteStdout, remoteStderr]);
      }
    }
    if (tar === undefined || chosen === undefined) return undefined;
    const local = tar;
    options.signal?.addEventListener("abort", () => stop(local), { once: true });
    const localStderr = text(local.stderr);
    const list = (async () => {
      const writer = local.stdin.getWriter();
      await writer.write(chosen.list).catch(() => {});
      await writer.close().catch(() => {});
    })();
    let sent = 0;
    const total = chosen.bytes;
    const onProgress = options.onProgress;
    const counted = onProgress === undefined ? local.stdout : local.stdout.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          sent += chunk.length;
          const bytes = Math.min(sent, total);
          onProgress({
            bytes,
            percent: total > 0 ? Math.min(100, Math.floor(bytes * 100 / total)) : 100,
          });
          controller.enqueue(chunk);
        },
      }),
    );
    // A remote side that refused (it never reads) breaks the pipe: tar then ends too.
    const pump = counted.pipeTo(ssh.stdin).catch(() => {});
    const [tarStatus, sshStatus] = await Promise.all([local.status, ssh.status]);
    await Promise.all([list, pump]);
    if (options.signal?.aborted) throw options.signal.reason;
    const code = (s: Deno.CommandStatus) => s.signal ? signalExitCode(s.signal) : s.code;
    return {
      localCode: code(tarStatus),
      localStderr: await localStderr,
      remoteCode: code(sshStatus),
      remoteStdout: await remoteStdout,
      remoteStderr: await remoteStderr,
    };
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    for (const cancel of kills) cancel();
  }
}

function join(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
