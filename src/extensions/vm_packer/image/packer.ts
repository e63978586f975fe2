/**
 * `packer build` of a profile's template into the image cache.
 *
 * The template is a legacy JSON template (`*.json`; packer 1.6 reads
 * `*.pkr.json` as HCL). sandboxer gives it these user variables besides the
 * profile's `image.variables`, so it must declare them:
 *
 * | variable       | value                                                            |
 * | -------------- | ---------------------------------------------------------------- |
 * | `base_image`   | the base disk (qcow2)                                            |
 * | `kernel`       | the kernel to boot directly                                      |
 * | `initrd`       | its initrd                                                       |
 * | `output_dir`   | where packer must write `disk.qcow2` (a new directory)           |
 * | `seed`         | a seed disk authorizing `ssh_key` for root (second virtio disk)  |
 * | `ssh_key`      | the private key packer's SSH communicator logs in with           |
 * | `accelerator`  | `kvm` or `tcg`                                                   |
 *
 * See docs/vm-boot.md for a complete template.
 *
 * @module
 */

import { ImageBuildError, ImageError } from "../../../core/errors.ts";
import type { Logger } from "../../../core/types.ts";
import { run } from "../../../process/run.ts";
import { generateKeyPair } from "../../compose_ssh/keys.ts";
import { type AccelSetting, detectAccel } from "../boot/accel.ts";
import { makeSeedDisk } from "../boot/seed.ts";
import {
  type CachedImage,
  IMAGE_FILES,
  imageDirOf,
  type ImageInputs,
  imageKey,
  type ImageManifest,
  readImage,
} from "./cache.ts";

/** The packer program. */
export const PACKER = "packer";

/**
 * `packer version`'s first line, e.g. `Packer v1.6.6`.
 *
 * @param signal Abort signal.
 * @returns The version line.
 */
export async function packerVersion(signal?: AbortSignal): Promise<string> {
  const { stdout } = await run([PACKER, "version"], {
    signal,
    timeoutMs: 30_000,
    env: { CHECKPOINT_DISABLE: "1" },
  });
  return stdout.trim().split("\n")[0];
}

/** Options for {@linkcode buildImage} and {@linkcode findImage}. */
export interface ImageOptions {
  /** The images directory. */
  images: string;
  /** The profile id, recorded in the manifest. */
  profile: string;
  /** Rebuild even when the cache has the image. */
  force?: boolean;
  /** The accelerator packer's qemu uses (the profile's `vm.accel`). Default `auto`. */
  accel?: AccelSetting;
  /** Packer's progress goes here, line by line. */
  logger?: Logger;
  /** Aborting stops packer. */
  signal?: AbortSignal;
}

/**
 * The cached image for these inputs, if it was built.
 *
 * @param inputs What the image is built from.
 * @param options The images directory.
 * @returns The image, or undefined.
 */
export async function findImage(
  inputs: ImageInputs,
  options: Pick<ImageOptions, "images" | "signal">,
): Promise<{ image?: CachedImage; key: string }> {
  const parts = await imageKey(inputs, await packerVersion(options.signal), options.images);
  return { image: await readImage(imageDirOf(options.images, parts.key)), key: parts.key };
}

/**
 * Build the image for `inputs` (or return the cached one): run packer in a
 * fresh directory, then move the result into place in one rename.
 *
 * @param inputs What the image is built from.
 * @param options Images directory, profile, `force`, logger and signal.
 * @returns The image and whether it was built now.
 * @throws {ImageBuildError} when packer fails: its last error line and the log's path.
 */
export async function buildImage(
  inputs: ImageInputs,
  options: ImageOptions,
): Promise<{ image: CachedImage; built: boolean }> {
  const logger = options.logger;
  const version = await packerVersion(options.signal);
  const parts = await imageKey(inputs, version, options.images);
  const dir = imageDirOf(options.images, parts.key);
  const cached = await readImage(dir);
  if (cached && !options.force) return { image: cached, built: false };
  await Deno.mkdir(options.images, { recursive: true, mode: 0o700 });
  await removeStaleBuilds(options.images);
  const work = await Deno.makeTempDir({ dir: options.images, prefix: ".build-" });
  const logFile = `${options.images}/logs/${parts.key.slice(0, 24)}-${Date.now()}.log`;
  await Deno.mkdir(`${options.images}/logs`, { recursive: true });
  try {
    const key = await generateKeyPair(`${work}/packer_key`, "sandboxer image build");
    const host = await generateKeyPair(`${work}/host_key`, "sandboxer image build host");
    await makeSeedDisk(`${work}/seed.img`, {
      hostKey: await Deno.readTextFile(`${work}/host_key`),
      hostKeyPub: host.line + "\n",
      authorizedKeys: key.line + "\n",
      loginUser: "root",
    }, options.signal);
    const out = `${work}/out`;
    const vars: Record<string, string> = {
      base_image: inputs.base,
      kernel: inputs.kernel,
      initrd: inputs.initrd,
      output_dir: out,
      seed: `${work}/seed.img`,
      ssh_key: `${work}/packer_key`,
      accelerator: await detectAccel(options.accel ?? "auto", (why) => logger?.warn(why)),
    };
    for (const entry of inputs.variables) {
      const eq = entry.indexOf("=");
      vars[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    const args = ["build", "-color=false"];
    for (const [name, value] of Object.entries(vars)) args.push("-var", `${name}=${value}`);
    args.push(inputs.template);
    logger?.info(`packer build ${inputs.template} (log: ${logFile})`);
    const log = await Deno.open(logFile, { write: true, createNew: true });
    // The writer owns the file from here: closing it closes the file.
    const writer = log.writable.getWriter();
    let pending = "";
    const onChunk = (chunk: Uint8Array) => {
      writer.write(chunk).catch(() => {});
      pending += new TextDecoder().decode(chunk);
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.trim()) logger?.info(`packer: ${line.trimEnd()}`);
    };
    const result = await run([PACKER, ...args], {
      cwd: inputs.template.slice(0, inputs.template.lastIndexOf("/")) || "/",
      env: {
        CHECKPOINT_DISABLE: "1",
        PACKER_CACHE_DIR: `${work}/packer_cache`,
        TMPDIR: work,
      },
      signal: options.signal,
      allowFailure: true,
      onStdout: onChunk,
      onStderr: onChunk,
    }).finally(() => writer.close().catch(() => {}));
    if (result.code !== 0) {
      throw new ImageBuildError(inputs.template, lastError(result.stdout + result.stderr), logFile);
    }
    const disk = `${out}/${IMAGE_FILES.disk}`;
    const info = await Deno.stat(disk).catch(() => undefined);
    if (!info?.isFile) {
      throw new ImageBuildError(
        inputs.template,
        `packer finished but wrote no ${IMAGE_FILES.disk} in output_dir (the template must set output_directory to {{user \`output_dir\`}} and vm_name to ${IMAGE_FILES.disk})`,
        logFile,
      );
    }
    const staged = `${work}/image`;
    await Deno.mkdir(staged);
    await Deno.rename(disk, `${staged}/${IMAGE_FILES.disk}`);
    await Deno.copyFile(inputs.kernel, `${staged}/${IMAGE_FILES.kernel}`);
    await Deno.copyFile(inputs.initrd, `${staged}/${IMAGE_FILES.initrd}`);
    await Deno.copyFile(logFile, `${staged}/${IMAGE_FILES.log}`);
    const manifest: ImageManifest = {
      ...parts,
      profile: options.profile,
      size: info.size,
      created_at: new Date().toISOString(),
    };
    await Deno.writeTextFile(
      `${staged}/${IMAGE_FILES.manifest}`,
      JSON.stringify(manifest, null, 2) + "\n",
    );
    if (cached) {
      // --force: the old image goes only now that a new one is ready. Running VMs keep theirs
      // open; the file stays until they close it.
      await Deno.remove(dir, { recursive: true });
    }
    try {
      await Deno.rename(staged, dir);
    } catch (error) {
      // Another process finished the same build first: same inputs, same image.
      const other = await readImage(dir);
      if (!other) throw error;
      return { image: other, built: false };
    }
    await Deno.remove(logFile).catch(() => {});
    const image = await readImage(dir);
    if (!image) throw new ImageError(dir, "was written but cannot be read back; build again");
    return { image, built: true };
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** A build directory untouched this long was left by a killed `image build`. */
const STALE_BUILD_MS = 12 * 3600_000;

/** Remove `.build-*` directories that builds killed mid-way left behind. */
async function removeStaleBuilds(images: string): Promise<void> {
  for await (const entry of Deno.readDir(images)) {
    if (!entry.isDirectory || !entry.name.startsWith(".build-")) continue;
    const dir = `${images}/${entry.name}`;
    const mtime = (await Deno.lstat(dir).catch(() => undefined))?.mtime?.getTime() ?? Date.now();
    if (Date.now() - mtime > STALE_BUILD_MS) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
}

/** Packer's last line that reads as an error, for a one-line message. */
function lastError(output: string): string {
  const lines = output.split("\n").map((l) => l.trim()).filter(Boolean);
  const error = lines.findLast((l) =>
    /error|failed|errored/i.test(l) && !/^==> Wait completed/.test(l)
  );
  return (error ?? lines.at(-1) ?? "no output").replace(/^==> /, "").slice(0, 300);
}
