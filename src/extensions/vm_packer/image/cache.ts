/**
 * The image cache: images built by Packer, stored by the hash of what went
 * into them (the template's bytes, its variables, the base image's, kernel's
 * and initrd's hashes, and packer's version) under `$SANDBOXER_IMAGES`, else
 * `<stateDir>/images`. Each image is a directory `<key>/` with `disk.qcow2`,
 * the kernel and initrd it boots with, `manifest.json` and packer's
 * `build.log`. Same inputs, same directory: the build is reused.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ImageError } from "../../../core/errors.ts";

/** What an image is built from (the profile's `image.*`, resolved). */
export interface ImageInputs {
  /** The Packer template (legacy JSON), absolute. */
  template: string;
  /** The base disk image (qcow2), absolute. */
  base: string;
  /** Kernel the VM boots directly. */
  kernel: string;
  /** Its initrd. */
  initrd: string;
  /** The template's user variables, `NAME=value`. */
  variables: readonly string[];
}

/** `manifest.json` of a cached image. */
export interface ImageManifest {
  /** The content key (64 hex digits). */
  key: string;
  /** The profile it was built for (informational). */
  profile: string;
  /** The template's path and hash. */
  template: string;
  /** SHA-256 of the template's bytes. */
  template_sha256: string;
  /**
   * SHA-256 over the names and bytes of the other files in the template's
   * directory (provisioning scripts a template uploads or runs).
   */
  template_dir_sha256: string;
  /** The variables given to packer. */
  variables: string[];
  /** The base image's path and hash. */
  base: string;
  /** SHA-256 of the base image. */
  base_sha256: string;
  /** SHA-256 of the kernel and of the initrd. */
  kernel_sha256: string;
  /** SHA-256 of the initrd. */
  initrd_sha256: string;
  /** `packer version` output. */
  packer_version: string;
  /** Size of disk.qcow2 in bytes. */
  size: number;
  /** When the build finished. */
  created_at: string;
}

/** A cached image found on disk. */
export interface CachedImage {
  /** Its directory. */
  dir: string;
  /** Its manifest. */
  manifest: ImageManifest;
}

/** File names inside an image directory. */
export const IMAGE_FILES = {
  disk: "disk.qcow2",
  kernel: "vmlinuz",
  initrd: "initrd.img",
  manifest: "manifest.json",
  log: "build.log",
} as const;

/**
 * The images directory: `$SANDBOXER_IMAGES`, else `<stateDir>/images`.
 *
 * @param stateDir The state directory.
 * @param env `SANDBOXER_IMAGES`, when set.
 * @returns The directory.
 */
export function imagesDir(stateDir: string, env: string | undefined): string {
  return env && env.trim() !== "" ? env.replace(/\/+$/, "") : `${stateDir}/images`;
}

/**
 * SHA-256 of a file, streamed. Large base images are hashed once per
 * (path, size, mtime): the result is remembered in `<images>/.hashes.json`.
 *
 * @param file The file.
 * @param memo The images directory, to remember the hash in.
 * @returns Hex digest.
 */
export async function fileSha256(file: string, memo?: string): Promise<string> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ImageError(file, "does not exist; check the profile's image.* paths", {
        cause: error,
      });
    }
    throw error;
  }
  const stamp = `${file}\0${info.size}\0${info.mtime?.getTime() ?? 0}`;
  const memoFile = memo ? `${memo}/.hashes.json` : undefined;
  let known: Record<string, string> = {};
  if (memoFile) {
    known = await Deno.readTextFile(memoFile).then(JSON.parse, () => ({}));
    if (typeof known[stamp] === "string") return known[stamp];
  }
  const hash = createHash("sha256");
  using handle = await Deno.open(file);
  for await (const chunk of handle.readable) hash.update(chunk);
  const digest = hash.digest("hex");
  if (memoFile) {
    known[stamp] = digest;
    await Deno.mkdir(memo!, { recursive: true });
    const temp = `${memoFile}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(temp, JSON.stringify(known));
    await Deno.rename(temp, memoFile);
  }
  return digest;
}

/**
 * The content key of an image and the hashes it is made of.
 *
 * @param inputs What the image is built from.
 * @param packerVersion `packer version`'s output.
 * @param memo The images directory (hash memo).
 * @returns Key and parts.
 */
export async function imageKey(
  inputs: ImageInputs,
  packerVersion: string,
  memo?: string,
): Promise<Omit<ImageManifest, "profile" | "size" | "created_at">> {
  const parts = {
    template: inputs.template,
    template_sha256: await fileSha256(inputs.template),
    template_dir_sha256: await directorySha256(inputs.template),
    variables: [...inputs.variables].sort(),
    base: inputs.base,
    base_sha256: await fileSha256(inputs.base, memo),
    kernel_sha256: await fileSha256(inputs.kernel, memo),
    initrd_sha256: await fileSha256(inputs.initrd, memo),
    packer_version: packerVersion,
  };
  // Paths are not part of the key: the same bytes elsewhere are the same image.
  const key = createHash("sha256").update(JSON.stringify([
    parts.template_sha256,
    parts.template_dir_sha256,
    parts.variables,
    parts.base_sha256,
    parts.kernel_sha256,
    parts.initrd_sha256,
    parts.packer_version,
  ])).digest("hex");
  return { key, ...parts };
}

/** Hash of the regular files beside the template (not in subdirectories), names included. */
async function directorySha256(template: string): Promise<string> {
  const dir = template.slice(0, template.lastIndexOf("/")) || "/";
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
  const hash = createHash("sha256");
  for (const name of names.sort()) {
    hash.update(`${name}\0${await fileSha256(`${dir}/${name}`)}\0`);
  }
  return hash.digest("hex");
}

/**
 * The directory of the image with this key.
 *
 * @param images The images directory.
 * @param key The content key.
 * @returns `<images>/<key's first 24 digits>`.
 */
export function imageDirOf(images: string, key: string): string {
  if (!/^[0-9a-f]{64}$/.test(key)) throw new ImageError(key, "is not an image key");
  return `${images}/${key.slice(0, 24)}`;
}

/**
 * Read a cached image's manifest.
 *
 * @param dir The image directory.
 * @returns The image, or undefined when it is not a complete image.
 */
export async function readImage(dir: string): Promise<CachedImage | undefined> {
  try {
    const manifest = JSON.parse(
      await Deno.readTextFile(`${dir}/${IMAGE_FILES.manifest}`),
    ) as ImageManifest;
    if (!/^[0-9a-f]{64}$/.test(manifest.key) || !dir.endsWith(`/${manifest.key.slice(0, 24)}`)) {
      return undefined;
    }
    await Deno.stat(`${dir}/${IMAGE_FILES.disk}`);
    return { dir, manifest };
  } catch {
    return undefined;
  }
}

/**
 * Every complete image in the cache, newest first.
 *
 * @param images The images directory.
 * @returns The images.
 */
export async function listImages(images: string): Promise<CachedImage[]> {
  const found: CachedImage[] = [];
  try {
    for await (const entry of Deno.readDir(images)) {
      if (!entry.isDirectory || !/^[0-9a-f]{24}$/.test(entry.name)) continue;
      const image = await readImage(`${images}/${entry.name}`);
      if (image) found.push(image);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return found.sort((a, b) => b.manifest.created_at.localeCompare(a.manifest.created_at));
}

/**
 * Remove one image (by key or unique key prefix of at least 6 digits).
 *
 * @param images The images directory.
 * @param prefix The key or a prefix of it.
 * @param inUse Keys of images running VMs boot from; those are refused.
 * @returns The removed image.
 * @throws {ImageError} when no single image matches, or it is in use.
 */
export async function removeImage(
  images: string,
  prefix: string,
  inUse: ReadonlySet<string>,
): Promise<CachedImage> {
  if (!/^[0-9a-f]{6,64}$/.test(prefix)) {
    throw new ImageError(JSON.stringify(prefix), 'is not an image key; see "sandboxer image list"');
  }
  const matches = (await listImages(images)).filter((i) => i.manifest.key.startsWith(prefix));
  if (matches.length !== 1) {
    throw new ImageError(
      prefix,
      matches.length
        ? "matches several images; give more digits of the key"
        : 'is not in the cache; see "sandboxer image list"',
    );
  }
  const [image] = matches;
  if (inUse.has(image.manifest.key)) {
    throw new ImageError(
      prefix,
      "backs a running sandbox's VM (its overlay reads from it); destroy that sandbox first",
    );
  }
  await Deno.remove(image.dir, { recursive: true });
  return image;
}
