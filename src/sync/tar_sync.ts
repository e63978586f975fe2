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
 * newlines and non-UTF-8 names survive) go NUL-separated to GNU tar as rsync
 * lists them (`--null --verbatim-files-from --no-unquote --no-recursion`),
 * which writes a POSIX (pax) archive: nanosecond mtimes, symlinks as
 * symlinks, hard links as separate files (`--hard-dereference`, as
 * `rsync -a` without `-H`). ssh connects meanwhile.
 *
 * The receiving side is the caller's (a constant remote script that checks
 * the workspace and runs `tar -x`); {@linkcode pushTar} moves the bytes
 * from the local tar into the remote command's stdin and reports every exit
 * status. A selection holding devices, sockets or FIFOs is left to rsync.
 *
 * @module
 */

import { MissingProgramError, PermissionError } from "../core/errors.ts";
import type { SyncProgress } from "../core/types.ts";
import { run, spawnPiped, terminate } from "../process/run.ts";
import { signalExitCode } from "../process/signals.ts";
import { concat } from "./path_bytes.ts";
import { rsyncFilterArgs } from "./rsync.ts";
import type { RsyncPlan } from "./rsync_types.ts";

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
  return concat(parts);
}

/** The local rsync's listing argv: a dry run into a directory that is never made. */
function listingArgv(
  plan: Pick<RsyncPlan, "source" | "selection" | "gitignore" | "exclude">,
  scratch: string,
): [string, ...string[]] {
  const source = plan.source.endsWith("/") ? plan.source : `${plan.source}/`;
  return [
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
}

/**
 * Turns rsync's itemized lines, as they arrive, into NUL-terminated names
 * for tar, counting regular files and their bytes as rsync's stats would.
 */
class ItemReader {
  files = 0;
  bytes = 0;
  /** A device, socket or FIFO was listed: tar must not be used. */
  special = false;
  #rest = "";
  #decoder = new TextDecoder();

  /** The names for tar in `chunk` (a part of rsync's stdout). */
  take(chunk: Uint8Array, last = false): Uint8Array {
    const text = this.#rest + this.#decoder.decode(chunk, { stream: !last });
    const lines = text.split("\n");
    this.#rest = last ? "" : lines.pop() ?? "";
    const names: Uint8Array[] = [];
    for (const line of lines) {
      const item = ITEM_LINE.exec(line);
      if (!item) continue;
      const kind = item[1][1];
      if (kind === "D" || kind === "S") {
        this.special = true;
        continue;
      }
      let name = item[3];
      if (kind === "d") name = name === "./" ? "." : name.replace(/\/$/, "");
      if (kind === "f") {
        this.files++;
        this.bytes += Number(item[2]);
      }
      names.push(rsyncNameBytes(name), new Uint8Array([0]));
    }
    return concat(names);
  }
}

/** How a tar push ended: every side's status, the remote output, and what was listed. */
export interface TarPushOutcome {
  /** The listing was whole (rsync exited 0) and held no device, socket or FIFO. */
  listed: boolean;
  /** Regular files listed (rsync's "Number of regular files transferred"). */
  files: number;
  /** Their total size (rsync's "Total transferred file size"). */
  bytes: number;
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
 * and while it connects the local rsync's listing and the local tar: each
 * name rsync lists goes to tar as it comes, and tar's stream to `remote`.
 * A device, socket or FIFO in the listing, or a failed listing, ends tar
 * and `remote` (the outcome says `listed: false`): the caller then syncs by
 * rsync, whose `--delete` makes whatever arrived exact.
 *
 * @param plan The source and its selection, as the rsync sync would use them.
 * @param remote The ssh argv, remote command included.
 * @param options Progress (bytes of the stream), abort.
 * @returns Every side's status and the remote output, or undefined when this
 *   machine has no usable GNU tar (`remote` was ended unused).
 */
export async function pushTar(
  plan: Pick<RsyncPlan, "source" | "selection" | "gitignore" | "exclude">,
  remote: readonly [string, ...string[]],
  options: { onProgress?: (progress: SyncProgress) => void; signal?: AbortSignal } = {},
): Promise<TarPushOutcome | undefined> {
  options.signal?.throwIfAborted();
  const children: Deno.ChildProcess[] = [];
  const kills: (() => void)[] = [];
  const stopAll = () => {
    for (const child of children) kills.push(terminate(child));
  };
  options.signal?.addEventListener("abort", stopAll, { once: true });
  const text = (stream: ReadableStream<Uint8Array>) => new Response(stream).text();
  const scratch = await Deno.makeTempDir({ prefix: "sbx-tar-list-" });
  try {
    const ssh = await spawnPiped(remote);
    children.push(ssh);
    const remoteStdout = text(ssh.stdout);
    const remoteStderr = text(ssh.stderr);
    if (!(await localGnuTar().catch(() => false))) {
      await ssh.stdin.abort().catch(() => {});
      stopAll();
      await Promise.allSettled([ssh.status, remoteStdout, remoteStderr]);
      return undefined;
    }
    // RSYNC_OLD_ARGS in the user's environment would change how rsync reads its arguments.
    const lister = await spawnPiped(listingArgv(plan, scratch), { env: { RSYNC_OLD_ARGS: "0" } });
    children.push(lister);
    const tar = await spawnPiped(tarCreateArgv(plan.source));
    children.push(tar);
    await lister.stdin.close().catch(() => {});
    const listerErr = text(lister.stderr);
    const localStderr = text(tar.stderr);

    const items = new ItemReader();
    const names = (async () => {
      const writer = tar.stdin.getWriter();
      let open = true;
      const send = async (bytes: Uint8Array) => {
        if (open && bytes.length > 0) await writer.write(bytes).catch(() => open = false);
      };
      for await (const chunk of lister.stdout) {
        await send(items.take(chunk));
        if (items.special) break;
      }
      await send(items.take(new Uint8Array(), true));
      if (items.special) {
        // Not for tar: stop here, and the caller syncs by rsync.
        await lister.stdout.cancel().catch(() => {});
        stopAll();
      }
      await writer.close().catch(() => {});
    })();

    let sent = 0;
    const onProgress = options.onProgress;
    const counted = onProgress === undefined ? tar.stdout : tar.stdout.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          sent += chunk.length;
          onProgress({ bytes: sent });
          controller.enqueue(chunk);
        },
      }),
    );
    // A remote side that refused (it never reads) breaks the pipe: tar then ends too.
    const pump = counted.pipeTo(ssh.stdin).catch(() => {});
    const [listStatus, tarStatus, sshStatus] = await Promise.all([
      lister.status,
      tar.status,
      ssh.status,
    ]);
    await Promise.all([names, pump, listerErr]);
    if (options.signal?.aborted) throw options.signal.reason;
    const code = (s: Deno.CommandStatus) => s.signal ? signalExitCode(s.signal) : s.code;
    return {
      listed: !items.special && code(listStatus) === 0,
      files: items.files,
      bytes: items.bytes,
      localCode: code(tarStatus),
      localStderr: await localStderr,
      remoteCode: code(sshStatus),
      remoteStdout: await remoteStdout,
      remoteStderr: await remoteStderr,
    };
  } finally {
    options.signal?.removeEventListener("abort", stopAll);
    for (const cancel of kills) cancel();
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}
