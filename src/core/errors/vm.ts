/**
 * Errors of images and virtual machines: builds, boots, VM commands.
 *
 * @module
 */

import { SandboxerError } from "./codes.ts";

/**
 * A VM image cannot be used: not built yet for these inputs, a manifest or
 * base image that is missing or unreadable, a template that does not exist.
 *
 * @example
 * ```ts
 * import { ImageError } from "@sandboxer/sandboxer/errors";
 * console.log(new ImageError("profile.x", "is not built").code); // "IMAGE"
 * ```
 */
export class ImageError extends SandboxerError {
  /**
   * Create it.
   *
   * @param image The image (profile id, key or path) concerned.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options (`cause`).
   */
  constructor(image: string, problem: string, options?: ErrorOptions) {
    super("IMAGE", `Image ${image} ${problem}`, options);
  }
}

/**
 * `packer build` failed. The message is one line (packer's last error line)
 * and the path of the full log.
 *
 * @example
 * ```ts
 * import { ImageBuildError } from "@sandboxer/sandboxer/errors";
 * const error = new ImageBuildError("t.json", "Build 'qemu' errored", "/s/images/build.log");
 * console.log(error.logFile); // "/s/images/build.log"
 * ```
 */
export class ImageBuildError extends SandboxerError {
  /** Where packer's whole output was written. */
  readonly logFile: string;
  /**
   * Create it.
   *
   * @param template The Packer template.
   * @param lastError Packer's last error line.
   * @param logFile Where packer's whole output was written.
   * @param options Standard error options (`cause`).
   */
  constructor(template: string, lastError: string, logFile: string, options?: ErrorOptions) {
    super(
      "IMAGE_BUILD",
      `Packer could not build ${template}: ${lastError}; see the full log in ${logFile}`,
      options,
    );
    this.logFile = logFile;
  }
}

/**
 * A throwaway VM could not be started, reached or stopped: qemu missing or
 * refusing its arguments, qemu exiting during boot, a QMP socket that does not
 * answer, a state file that is not sandboxer's.
 *
 * @example
 * ```ts
 * import { VmError } from "@sandboxer/sandboxer/errors";
 * console.log(new VmError("a1", "exited during boot").message);
 * ```
 */
export class VmError extends SandboxerError {
  /** The sandbox id whose VM it is. */
  readonly sandbox: string;
  /**
   * Create it.
   *
   * @param sandbox The sandbox id whose VM it is.
   * @param problem What happened and how to fix it.
   * @param options Standard error options (`cause`).
   */
  constructor(sandbox: string, problem: string, options?: ErrorOptions) {
    super("VM", `VM of sandbox ${sandbox} ${problem}`, options);
    this.sandbox = sandbox;
  }
}

/**
 * A VM did not answer SSH within the profile's boot deadline (`vm.boot_timeout`).
 * The VM is stopped; the message ends with the last console lines.
 *
 * @example
 * ```ts
 * import { BootTimeoutError } from "@sandboxer/sandboxer/errors";
 * const error = new BootTimeoutError("a1", 120, ["Booting the kernel."]);
 * console.log(error.consoleTail); // ["Booting the kernel."]
 * ```
 */
export class BootTimeoutError extends SandboxerError {
  /** The deadline in seconds. */
  readonly timeoutSeconds: number;
  /** The VM console's last lines, oldest first. */
  readonly consoleTail: readonly string[];
  /**
   * Create it.
   *
   * @param sandbox The sandbox id.
   * @param timeoutSeconds The deadline in seconds.
   * @param consoleTail The VM console's last lines.
   * @param options Standard error options (`cause`).
   */
  constructor(
    sandbox: string,
    timeoutSeconds: number,
    consoleTail: readonly string[],
    options?: ErrorOptions,
  ) {
    super(
      "BOOT_TIMEOUT",
      `VM of sandbox ${sandbox} did not answer SSH within ${timeoutSeconds}s of booting (under software emulation a boot takes far longer than with kvm); raise vm.boot_timeout, or check the image boots (its console's last lines: ${
        consoleTail.length ? consoleTail.join(" | ") : "none"
      })`,
      options,
    );
    this.timeoutSeconds = timeoutSeconds;
    this.consoleTail = consoleTail;
  }
}
