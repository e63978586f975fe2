/**
 * Test harness: the image `sandboxer-test-sshd:bookworm`, imported into a test engine from the
 * cached rootfs (./cache.ts) with the current entrypoint script.
 *
 * Debian bookworm `--variant=minbase` plus openssh-server, openssh-sftp-server and rsync. Its CMD
 * is the POSIX sh script `/usr/local/bin/sbx-sshd-entrypoint` (source:
 * tests/fixtures/compose/sbx-sshd-entrypoint). Contract, by environment variable:
 *
 * - `SSHD_PORT` (required): sshd listens on `127.0.0.1:$SSHD_PORT` only; use `network_mode: host`
 *   so that this is the host's loopback.
 * - `SSH_USER` (default `sbx`): login user, created with shell /bin/sh and a home directory, and
 *   unlocked with `usermod -p '*'` (sshd with UsePAM=no refuses locked accounts). `SSH_UID`
 *   (optional) picks its uid when it is created.
 * - `SSH_AUTHORIZED_KEY`: public key line(s) allowed to log in; and/or a mounted file
 *   `/run/sbx/authorized_keys`. Both are merged into `/run/sbx-sshd/authorized_keys`; at least one
 *   key is required (exit 64 otherwise). `~/.ssh/authorized_keys` of the user also counts.
 * - `SSH_HOST_KEY_FILE`: path of a mounted private host key (any mode: a 0600 copy is used). If
 *   unset, a fresh ed25519 host key is generated (its public half is then only in the container).
 *
 * It does `mkdir -p /run/sshd` and then
 * `exec /usr/sbin/sshd -D -e -p $SSHD_PORT -o ListenAddress=127.0.0.1 -o UsePAM=no
 * -o StrictModes=no -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no
 * -o PermitRootLogin=no -o "AuthorizedKeysFile=/run/sbx-sshd/authorized_keys .ssh/authorized_keys"
 * -o PidFile=none -h <host key>`: sshd is PID 1, logs to stderr (`docker logs`) and exits on
 * SIGTERM. SFTP works through Debian's default `Subsystem sftp`. The image carries no host keys.
 * See tests/fixtures/compose/sshd.compose.yaml for a compose service using it.
 *
 * @module
 */

import {
  buildRootfsAndImport,
  CorruptCacheError,
  ENTRYPOINT_IN_IMAGE,
  ENTRYPOINT_SOURCE,
  rootfsCacheFile,
} from "./cache.ts";
import { scanTar, tarFileEntry } from "./tar.ts";
import type { TestDocker } from "./types.ts";
import { decoder, errorMessage, isFile, note, removeIfExists, run } from "./util.ts";

/** The test sshd image's name. */
export const SSH_IMAGE = "sandboxer-test-sshd:bookworm";
const IMPORT_CHANGES = [
  `CMD ["${ENTRYPOINT_IN_IMAGE}"]`,
  "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  "LABEL org.sandboxer.test-image=sshd",
];

/** Build the image if the engine lacks it: debootstrap --variant=minbase --include=openssh-server,rsync bookworm ROOTFS <mirror from /etc/apt/sources.list.d/debian.sources URIs>, then `tar -C ROOTFS -c . | docker import - IMAGE` (pipe via Deno streams: tar's stdout into docker's stdin — no shell). Cache the rootfs TARBALL between runs at $SANDBOXER_TEST_CACHE or /var/cache/sandboxer-test/rootfs-bookworm-sshd.tar (atomic write: temp + rename) so later runs skip debootstrap (~90 s cold). */
export async function ensureSshImage(docker: TestDocker): Promise<string> {
  const image = docker.sshImage;
  const inspect = await run("docker", ["image", "inspect", "--format", "{{.Id}}", image], {
    env: docker.env,
    clearEnv: true,
    timeoutMs: 60_000,
  });
  if (inspect.code === 0) return image;
  const entrypoint = await Deno.readFile(ENTRYPOINT_SOURCE);
  const cacheFile = rootfsCacheFile();
  await Deno.mkdir(cacheFile.slice(0, cacheFile.lastIndexOf("/")) || "/", { recursive: true });
  // One builder at a time per cache (parallel test processes wait for the first one's tarball).
  const lock = await Deno.open(`${cacheFile}.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    if (await isFile(cacheFile)) {
      try {
        await importCachedRootfs(docker, cacheFile, entrypoint);
        return image;
      } catch (error) {
        if (!(error instanceof CorruptCacheError)) throw error;
        note(`${cacheFile} is unusable (${error.message}); rebuilding it`);
        await removeIfExists(cacheFile);
      }
    }
    await buildRootfsAndImport(
      { image, spawn: () => spawnImport(docker), check: checkImport },
      cacheFile,
      entrypoint,
    );
    return image;
  } finally {
    lock.close();
  }
}

function spawnImport(docker: TestDocker): Deno.ChildProcess {
  const changes = IMPORT_CHANGES.flatMap((change) => ["--change", change]);
  return new Deno.Command("docker", {
    args: ["import", ...changes, "-", docker.sshImage],
    env: docker.env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

function checkImport(output: Deno.CommandOutput, streamError?: unknown): void {
  if (output.code === 0 && streamError === undefined) return;
  const detail = decoder.decode(output.stderr).trim() ||
    (streamError === undefined ? "" : errorMessage(streamError));
  throw new Error(`docker import failed (exit ${output.code}): ${detail}`);
}

/** Streams the cached rootfs tarball, plus the current entrypoint script, into `docker import`. */
async function importCachedRootfs(
  docker: TestDocker,
  cacheFile: string,
  entrypoint: Uint8Array,
): Promise<void> {
  using file = await Deno.open(cacheFile, { read: true });
  const { keep } = await scanTar(file, ENTRYPOINT_IN_IMAGE);
  const child = spawnImport(docker);
  const output = child.output();
  const writer = child.stdin.getWriter();
  let streamError: unknown;
  try {
    const buffer = new Uint8Array(1 << 20);
    for (const [start, end] of keep) {
      await file.seek(start, Deno.SeekMode.Start);
      for (let left = end - start; left > 0;) {
        const n = await file.read(buffer.subarray(0, Math.min(buffer.length, left)));
        if (n === null) throw new CorruptCacheError("truncated tarball");
        await writer.write(buffer.slice(0, n));
        left -= n;
      }
    }
    const mtime = Math.floor(Date.now() / 1000);
    await writer.write(tarFileEntry(`.${ENTRYPOINT_IN_IMAGE}`, entrypoint, 0o755, mtime));
    await writer.write(new Uint8Array(1024)); // end-of-archive marker
    await writer.close();
  } catch (error) {
    if (error instanceof CorruptCacheError) {
      await writer.abort().catch(() => {});
      await output;
      throw error;
    }
    streamError = error;
    await writer.abort().catch(() => {});
  }
  checkImport(await output, streamError);
}

/**
 * The cached debootstrap rootfs tarball (see "Caching" above), built if it is missing: the tree
 * the ssh image is imported from, for harnesses that run sshd in a chroot of their own
 * (tests/harness/isolated_host.ts). Needs root and debootstrap only when it has to build.
 *
 * @returns The tarball's path.
 */
