/**
 * The seed disk: a small ext4 image made with `mkfs.ext4 -d` (no mount, no
 * root, no loop device) holding what the guest needs to accept exactly
 * sandboxer: the per-sandbox host key, the user key to authorize, and the
 * login user's name. The guest's init (images/guest/sandboxer-init) reads it
 * from the second virtio disk at boot.
 *
 * @module
 */

import { run } from "../../../process/run.ts";

/** The mkfs.ext4 to run: absolute paths, so `--allow-run` can name them. */
export const MKFS_EXT4_PATHS: readonly string[] = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"];

/** What goes on a seed disk. */
export interface SeedContent {
  /** The private host key (OpenSSH format). */
  hostKey: string;
  /** Its public half. */
  hostKeyPub: string;
  /** The `authorized_keys` line(s). */
  authorizedKeys: string;
  /** The guest user whose authorized_keys it becomes. */
  loginUser: string;
}

/**
 * Write the seed disk `file` (4 MiB, ext4, label `sbxseed`).
 *
 * @param file The image to write (must not exist).
 * @param content Keys and user.
 * @param signal Abort signal.
 */
export async function makeSeedDisk(
  file: string,
  content: SeedContent,
  signal?: AbortSignal,
): Promise<void> {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(content.loginUser)) {
    throw new TypeError(
      `Cannot seed login user ${JSON.stringify(content.loginUser)}: not a user name`,
    );
  }
  const tree = await Deno.makeTempDir({
    dir: file.slice(0, file.lastIndexOf("/")),
    prefix: ".seed-",
  });
  try {
    await Deno.writeTextFile(`${tree}/ssh_host_ed25519_key`, content.hostKey, { mode: 0o600 });
    await Deno.writeTextFile(`${tree}/ssh_host_ed25519_key.pub`, content.hostKeyPub);
    await Deno.writeTextFile(`${tree}/authorized_keys`, content.authorizedKeys);
    await Deno.writeTextFile(`${tree}/login_user`, `${content.loginUser}\n`);
    const data = new Uint8Array(4 * 1024 * 1024);
    await Deno.writeFile(file, data, { createNew: true, mode: 0o600 });
    await run([await mkfsExt4(), "-q", "-F", "-L", "sbxseed", "-d", tree, file], {
      signal,
      timeoutMs: 30_000,
    });
  } finally {
    await Deno.remove(tree, { recursive: true }).catch(() => {});
  }
}

async function mkfsExt4(): Promise<string> {
  for (const path of MKFS_EXT4_PATHS) {
    if (await Deno.stat(path).then((s) => s.isFile, () => false)) return path;
  }
  return "mkfs.ext4";
}
