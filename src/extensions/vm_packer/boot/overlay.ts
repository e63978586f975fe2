/**
 * The copy-on-write overlay a throwaway VM writes to: a qcow2 file in the VM
 * directory backed by the cached image, which is never written.
 *
 * @module
 */

import { run } from "../../../process/run.ts";

/** The qemu-img program. */
export const QEMU_IMG = "qemu-img";

/**
 * Create `overlay` backed by `image` (both qcow2).
 *
 * @param image The image (absolute path).
 * @param overlay The overlay to create (must not exist).
 * @param signal Abort signal.
 */
export async function makeOverlay(
  image: string,
  overlay: string,
  signal?: AbortSignal,
): Promise<void> {
  if (!image.startsWith("/") || !overlay.startsWith("/")) {
    throw new TypeError("Cannot make an overlay: give absolute paths");
  }
  // -F names the backing format: qemu-img refuses to guess it (a raw guess could be exploited).
  await run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, overlay], {
    signal,
    timeoutMs: 60_000,
  });
}
