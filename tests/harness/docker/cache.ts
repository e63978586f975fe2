/**
 * Test harness: the cached debootstrap rootfs of the test sshd image.
 *
 * The debootstrap rootfs (30–90 s to make, depending on the mirror) is kept as a tarball at
 * `$SANDBOXER_TEST_CACHE/rootfs-bookworm-sshd.tar` (SANDBOXER_TEST_CACHE names a directory; default
 * `/var/cache/sandboxer-test`), written atomically (temp file + rename) under a file lock, ~96 MB
 * (docs, man pages and translations removed). Later engines stream it into `docker import`,
 * replacing the entrypoint member with the current script, so editing the script needs no rebuild;
 * delete the tarball to rebuild the rootfs. A corrupt tarball is rebuilt.
 *
 * No `docker save` tarball of the image is kept, because it is not faster. Measured here (Debian 12,
 * 2 cores, vfs), each on a fresh engine: `docker import` of the cached rootfs 1.48–1.61 s,
 * `docker load` of the saved image 1.58–1.77 s, plus 0.5 s for the `docker save` itself and a
 * second ~96 MB file. Both unpack the same files into one vfs layer.
 *
 * Cost of vfs: every container starts with a full copy of the image (~1.5–2.5 s each here).
 *
 * Environment: `SANDBOXER_TEST_CACHE` (cache directory), `SANDBOXER_DEBIAN_MIRROR` (overrides the
 * mirror read from /etc/apt/sources.list.d/debian.sources).
 *
 * @module
 */

import { CorruptCacheError } from "./tar.ts";
import {
  describeFailure,
  errorMessage,
  isFile,
  note,
  removeIfExists,
  run,
  tail,
  unmountUnder,
  which,
} from "./util.ts";

export { CorruptCacheError };

const SUITE = "bookworm";
const IMAGE_PACKAGES = ["openssh-server", "openssh-sftp-server", "rsync"];
/** Where the image's entrypoint script lives inside the rootfs. */
export const ENTRYPOINT_IN_IMAGE = "/usr/local/bin/sbx-sshd-entrypoint";
/** The entrypoint script's source in this repository. */
export const ENTRYPOINT_SOURCE: URL = new URL(
  "../../fixtures/compose/sbx-sshd-entrypoint",
  import.meta.url,
);
const ROOTFS_CACHE_NAME = "rootfs-bookworm-sshd.tar";
const DEFAULT_CACHE_DIR = "/var/cache/sandboxer-test";
const DEFAULT_MIRROR = "http://deb.debian.org/debian";

/** A `docker import -` that a fresh rootfs is streamed into while it is cached. */
export interface ImportSink {
  /** The image being built (for messages). */
  image: string;
  /** Start the importer. */
  spawn(): Deno.ChildProcess;
  /** Throw if the import failed. */
  check(output: Deno.CommandOutput, streamError?: unknown): void;
}

export function rootfsCacheFile(): string {
  const dir = Deno.env.get("SANDBOXER_TEST_CACHE") || DEFAULT_CACHE_DIR;
  return `${dir.replace(/\/+$/, "")}/${ROOTFS_CACHE_NAME}`;
}

export async function ensureRootfsTarball(): Promise<string> {
  const cacheFile = rootfsCacheFile();
  await Deno.mkdir(cacheFile.slice(0, cacheFile.lastIndexOf("/")) || "/", { recursive: true });
  const lock = await Deno.open(`${cacheFile}.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    if (!(await isFile(cacheFile))) {
      await buildRootfsAndImport(undefined, cacheFile, await Deno.readFile(ENTRYPOINT_SOURCE));
    }
    return cacheFile;
  } finally {
    lock.close();
  }
}

/**
 * debootstrap a rootfs, then `tar -C ROOTFS -c .` into the cache file and, given an engine,
 * into its `docker import -` too.
 */
export async function buildRootfsAndImport(
  sink: ImportSink | undefined,
  cacheFile: string,
  entrypoint: Uint8Array,
): Promise<void> {
  if (!(await which("debootstrap"))) throw new Error("debootstrap is missing");
  const mirror = await debianMirror();
  const work = await Deno.makeTempDir({ prefix: "sbx-rootfs-" });
  const rootfs = `${work}/rootfs`;
  const partial = `${cacheFile}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  note(
    `building ${sink?.image ?? "the test rootfs"}: debootstrap ${SUITE} from ${mirror} (30–90 s; ` +
      `the rootfs is then cached in ${cacheFile})`,
  );
  try {
    const args = [
      "--variant=minbase",
      `--include=${IMAGE_PACKAGES.join(",")}`,
      SUITE,
      rootfs,
      mirror,
    ];
    const result = await run("debootstrap", args, { timeoutMs: 20 * 60_000 });
    if (result.code !== 0) {
      let log = "";
      try {
        log = tail(await Deno.readTextFile(`${rootfs}/debootstrap/debootstrap.log`), 30);
      } catch {
        // no log
      }
      throw new Error(`${describeFailure("debootstrap", args, result)}\n${log}`);
    }
    await trimRootfs(rootfs);
    const target = `${rootfs}${ENTRYPOINT_IN_IMAGE}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(target, entrypoint);
    await Deno.chmod(target, 0o755);
    await tarIntoImportAndFile(sink, rootfs, partial);
    await Deno.rename(partial, cacheFile);
  } finally {
    await removeIfExists(partial).catch(() => {});
    await unmountUnder(work).catch(() => {});
    await removeIfExists(work).catch((error) =>
      note(`could not remove ${work}: ${errorMessage(error)}`)
    );
  }
}

/**
 * Drop what the image must not share or does not need: baked host keys, apt caches, and
 * translations and documentation (a third of the rootfs; vfs copies the whole image for every
 * container, so smaller means faster `compose up`).
 */
async function trimRootfs(rootfs: string): Promise<void> {
  const clear = async (dir: string, keep: (name: string) => boolean) => {
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (entry.isFile && keep(entry.name)) await Deno.remove(`${dir}/${entry.name}`);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  };
  await clear(`${rootfs}/etc/ssh`, (name) => name.startsWith("ssh_host_"));
  await clear(`${rootfs}/var/cache/apt/archives`, (name) => name.endsWith(".deb"));
  await clear(`${rootfs}/var/cache/apt`, (name) => name.endsWith(".bin"));
  await clear(`${rootfs}/var/lib/apt/lists`, (name) => name !== "lock");
  for (const dir of ["usr/share/locale", "usr/share/doc", "usr/share/man", "usr/share/info"]) {
    try {
      for await (const entry of Deno.readDir(`${rootfs}/${dir}`)) {
        if (entry.name === "locale.alias") continue;
        await Deno.remove(`${rootfs}/${dir}/${entry.name}`, { recursive: true });
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}

/** Pipes tar's stdout into `partial` and, given an engine, `docker import -` too, with backpressure. */
async function tarIntoImportAndFile(
  sink: ImportSink | undefined,
  rootfs: string,
  partial: string,
): Promise<void> {
  const tar = new Deno.Command("tar", {
    args: ["--numeric-owner", "--one-file-system", "-C", rootfs, "-c", "."],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tarStderr = new Response(tar.stderr).text();
  const importer = sink?.spawn();
  const importOutput = importer?.output();
  const file = await Deno.open(partial, { write: true, createNew: true });
  const toImport = importer?.stdin.getWriter();
  const toFile = file.writable.getWriter();
  let streamError: unknown;
  try {
    for await (const chunk of tar.stdout) {
      await Promise.all([toImport?.write(chunk), toFile.write(chunk)]);
    }
    await toImport?.close();
    await toFile.close(); // closes the file
  } catch (error) {
    streamError = error;
    try {
      tar.kill("SIGKILL");
    } catch {
      // already exited
    }
    await toImport?.abort().catch(() => {});
    await toFile.abort().catch(() => {});
  }
  const tarStatus = await tar.status;
  const tarMessage = (await tarStderr).trim();
  if (importOutput) sink?.check(await importOutput, streamError);
  else if (streamError !== undefined) throw streamError;
  if (!tarStatus.success) throw new Error(`tar -C ${rootfs} -c . failed: ${tarMessage}`);
}

/** The bookworm mirror apt uses here (first URIs of a deb822 stanza with Suites bookworm). */
async function debianMirror(): Promise<string> {
  const override = Deno.env.get("SANDBOXER_DEBIAN_MIRROR");
  if (override) return override;
  try {
    const text = await Deno.readTextFile("/etc/apt/sources.list.d/debian.sources");
    for (const stanza of text.split(/\n\s*\n/)) {
      const fields = new Map<string, string>();
      for (const line of stanza.split("\n")) {
        const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
        if (match) fields.set(match[1].toLowerCase(), match[2].trim());
      }
      const types = (fields.get("types") ?? "").split(/\s+/);
      const suites = (fields.get("suites") ?? "").split(/\s+/);
      const uri = (fields.get("uris") ?? "").split(/\s+/)[0];
      if (types.includes("deb") && suites.includes(SUITE) && uri) return uri;
    }
  } catch {
    // fall through
  }
  try {
    const text = await Deno.readTextFile("/etc/apt/sources.list");
    for (const line of text.split("\n")) {
      const words = line.replace(/\[[^\]]*\]/, "").trim().split(/\s+/);
      if (words[0] === "deb" && words[2] === SUITE) return words[1];
    }
  } catch {
    // fall through
  }
  return DEFAULT_MIRROR;
}
