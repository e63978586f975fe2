/**
 * PROTOTYPE (benchmark only, not wired into sandboxer): the first sync into
 * an empty workspace as one tar stream over the already-open SSH connection.
 *
 * 1. Selection: the LOCAL rsync decides which entries a real sync would send
 *    — `rsync --archive --dry-run` with the exact filter arguments of a real
 *    sync ({@linkcode rsyncFilterArgs}: `.gitignore` merge, then the
 *    excludes) from the source into an empty directory, itemized with
 *    `--out-format='%i %l %n'`. An empty workspace holds only the marker,
 *    which the excludes cover, so "an empty directory" is exactly what rsync
 *    would see there.
 * 2. Archive: the local GNU tar reads that list (NUL-separated, verbatim,
 *    `--no-recursion`), dereferences hard links (rsync `-a` has no `-H`) and
 *    writes POSIX (pax) format, so mtimes keep their nanoseconds and a later
 *    rsync quick-check sees every file as unchanged.
 * 3. Transfer: the archive is streamed into `tar -x -p` on the remote side
 *    over one exec channel of the open connection: no second SSH handshake,
 *    no per-file round trips.
 *
 * Paths are sorted so each directory's members follow it, which lets GNU
 * tar restore directory modes and mtimes as it leaves each directory (a
 * read-only directory is made writable while it is filled).
 *
 * @module
 */

import { rsyncFilterArgs } from "../src/process/rsync.ts";

/** What to send. */
export interface TarSyncPlan {
  /** Local directory whose contents are sent. */
  source: string;
  /** Absolute remote directory; must be empty apart from excluded entries (the marker). */
  workspace: string;
  /** Exclude patterns (rsync syntax), as for a real sync (including `/.sandboxer.json`). */
  exclude: readonly string[];
  /** Honour `.gitignore` files. */
  gitignore: boolean;
}

/** One entry of the selection. */
export interface SelectedEntry {
  /** Path relative to the source, as raw bytes (names need not be UTF-8); `.` for the root. */
  path: Uint8Array;
  /** `f` file, `d` directory, `L` symlink, `D`/`S` device or special. */
  kind: string;
  /** Size in bytes (files). */
  size: number;
}

/** Runs `argv` remotely in `cwd` with `stdin` streamed in; resolves when it exits. */
export type StreamExec = (
  argv: readonly string[],
  cwd: string,
  stdin: ReadableStream<Uint8Array>,
) => Promise<{ code: number; stderr: string }>;

/** What a tar sync did. */
export interface TarSyncReport {
  /** Always "tar". */
  method: "tar";
  /** Regular files sent. */
  files: number;
  /** Bytes of file data sent. */
  bytes: number;
  /** Bytes of tar stream sent (data plus headers). */
  streamBytes: number;
  /** Milliseconds spent selecting with rsync. */
  selectMs: number;
}

const encoder = new TextEncoder();

/**
 * Decode a name as rsync prints it (bytes it will not print appear as `\#`
 * and three octal digits) back to raw bytes.
 *
 * @param escaped The name as printed.
 * @returns Its bytes.
 */
export function rsyncNameBytes(escaped: string): Uint8Array {
  const out: number[] = [];
  const pattern = /\\#([0-7]{3})/g;
  let last = 0;
  for (const match of escaped.matchAll(pattern)) {
    out.push(...encoder.encode(escaped.slice(last, match.index)));
    out.push(Number.parseInt(match[1], 8));
    last = match.index + match[0].length;
  }
  out.push(...encoder.encode(escaped.slice(last)));
  return new Uint8Array(out);
}

/**
 * Ask the local rsync which entries a sync of `source` into an empty
 * directory would create, with the given filters.
 *
 * @param source Local directory.
 * @param filters `.gitignore` flag and exclude patterns.
 * @returns The entries, parents before children, each directory's members right after it.
 */
export async function selectEntries(
  source: string,
  filters: Pick<TarSyncPlan, "exclude" | "gitignore">,
): Promise<SelectedEntry[]> {
  const empty = await Deno.makeTempDir({ prefix: "sbx-tar-select-" });
  try {
    const src = source.endsWith("/") ? source : `${source}/`;
    const output = await new Deno.Command("rsync", {
      args: [
        "--archive",
        "--dry-run",
        ...rsyncFilterArgs(filters),
        "--out-format=%i %l %n",
        "--",
        src.startsWith("/") || src.startsWith("./") ? src : `./${src}`,
        `${empty}/`,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    // 24: files vanished while rsync listed them; what remains is still the selection.
    if (!output.success && output.code !== 24) {
      throw new Error(
        `Cannot select files with rsync (exit ${output.code}): ${
          new TextDecoder().decode(output.stderr).trim()
        }`,
      );
    }
    const entries: SelectedEntry[] = [];
    for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
      const match = /^[<>ch.][fdLDS][^ ]{9} (\d+) (.+)$/.exec(line);
      if (!match) continue;
      const kind = line[1];
      let name = match[2];
      if (kind === "d" && name.endsWith("/")) name = name.slice(0, -1);
      entries.push({ path: rsyncNameBytes(name), kind, size: Number(match[1]) });
    }
    // rsync itemizes the root only when its attributes differ; it is always part of a sync.
    if (!entries.some((e) => e.kind === "d" && e.path.length === 1 && e.path[0] === 0x2e)) {
      entries.push({ path: encoder.encode("."), kind: "d", size: 0 });
    }
    // Byte order of "<path>/": every directory's members form one run right after it.
    const key = (e: SelectedEntry) => {
      const k = new Uint8Array(e.path.length + 1);
      k.set(e.path);
      k[e.path.length] = 0x2f;
      return e.path.length === 1 && e.path[0] === 0x2e ? new Uint8Array() : k;
    };
    const keys = new Map(entries.map((e) => [e, key(e)]));
    entries.sort((a, b) => compareBytes(keys.get(a)!, keys.get(b)!));
    return entries;
  } finally {
    await Deno.remove(empty, { recursive: true }).catch(() => {});
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** The local tar argv that archives exactly the NUL-separated list on its stdin. */
export function localTarArgv(source: string): string[] {
  return [
    "tar",
    "--create",
    "--file=-",
    `--directory=${source}`,
    "--format=posix",
    // pax would add atime and ctime records to every member: only mtime matters.
    "--pax-option=delete=atime,delete=ctime",
    "--hard-dereference",
    "--no-recursion",
    "--null",
    "--verbatim-files-from",
    "--files-from=-",
  ];
}

/** The remote tar argv that unpacks into the current directory as rsync -a would. */
export const REMOTE_TAR_ARGV: readonly string[] = [
  "tar",
  "--extract",
  "--file=-",
  "--preserve-permissions",
];

/**
 * Send `source` into the empty `workspace` as one tar stream.
 *
 * @param exec Runs the remote tar with the stream on its stdin.
 * @param plan Source, workspace and filters.
 * @param options Abort signal, and a selection already started (so that it
 *   can run while the connection is being made).
 * @returns Counts and the selection time.
 */
export async function tarSync(
  exec: StreamExec,
  plan: TarSyncPlan,
  options: { signal?: AbortSignal; selection?: Promise<SelectedEntry[]> } = {},
): Promise<TarSyncReport> {
  const started = performance.now();
  const entries = await (options.selection ?? selectEntries(plan.source, plan));
  const selectMs = performance.now() - started;
  const list: Uint8Array[] = [];
  let files = 0;
  let bytes = 0;
  for (const entry of entries) {
    list.push(entry.path, new Uint8Array([0]));
    if (entry.kind === "f") {
      files++;
      bytes += entry.size;
    }
  }
  const [program, ...args] = localTarArgv(plan.source);
  const child = new Deno.Command(program, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: options.signal,
  }).spawn();
  const feed = (async () => {
    const writer = child.stdin.getWriter();
    for (const chunk of list) await writer.write(chunk);
    await writer.close();
  })();
  let streamBytes = 0;
  const counted = child.stdout.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        streamBytes += chunk.byteLength;
        controller.enqueue(chunk);
      },
    }),
  );
  const errText = new Response(child.stderr).text();
  const [remote, local] = await Promise.all([
    exec(REMOTE_TAR_ARGV, plan.workspace, counted),
    child.status,
    feed,
  ]);
  if (!local.success) {
    throw new Error(`Cannot archive ${plan.source}: tar exited ${local.code}: ${await errText}`);
  }
  if (remote.code !== 0) {
    throw new Error(
      `Cannot unpack into ${plan.workspace}: tar exited ${remote.code}: ${remote.stderr}`,
    );
  }
  return { method: "tar", files, bytes, streamBytes, selectMs };
}

/**
 * A {@linkcode StreamExec} for connections that only take stdin as one
 * buffer (today's `SshConnection.run`): the whole archive is read into memory
 * first, so archiving and sending do not overlap.
 *
 * @param run `SshConnection.run`-like function.
 * @returns The exec.
 */
export function bufferedExec(
  run: (
    argv: readonly string[],
    options: { cwd?: string; stdin?: Uint8Array },
  ) => Promise<{ code: number; stderr: string }>,
): StreamExec {
  return async (argv, cwd, stdin) => {
    const data = new Uint8Array(await new Response(stdin).arrayBuffer());
    return await run(argv, { cwd, stdin: data });
  };
}
