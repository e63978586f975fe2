/**
 * Which accelerator a VM runs with. `auto` picks kvm only when it can work:
 * `/dev/kvm` opens for writing **and** the CPU offers hardware
 * virtualization (vmx or svm in /proc/cpuinfo). A nested VM whose host hides
 * vmx/svm hangs at boot under kvm even though `/dev/kvm` answers, so the flag
 * check is not optional.
 *
 * @module
 */

/** What a profile's `vm.accel` may say. */
export type AccelSetting = "auto" | "kvm" | "tcg";

/** What {@linkcode chooseAccel} looks at. */
export interface AccelFacts {
  /** Whether `/dev/kvm` could be opened for writing. */
  kvmWritable: boolean;
  /** The text of /proc/cpuinfo ("" when unreadable). */
  cpuinfo: string;
}

/**
 * The accelerator for a setting and the machine's facts.
 *
 * @param setting The profile's `vm.accel`.
 * @param facts What the machine offers.
 * @returns `kvm` or `tcg`.
 *
 * @example
 * ```ts
 * import { chooseAccel } from "./accel.ts";
 * console.log(chooseAccel("auto", { kvmWritable: true, cpuinfo: "flags : fpu sse2" })); // "tcg"
 * ```
 */
export function chooseAccel(setting: AccelSetting, facts: AccelFacts): "kvm" | "tcg" {
  if (setting !== "auto") return setting;
  return facts.kvmWritable && /^flags\s*:.*\b(vmx|svm)\b/m.test(facts.cpuinfo) ? "kvm" : "tcg";
}

/**
 * Look at this machine and choose. Deno lets a program read /dev/kvm and
 * /proc/cpuinfo only under `--allow-all`; without it the facts are unknown
 * and `auto` means tcg (`onUnknown` is told, so the user can set `kvm`).
 *
 * @param setting The profile's `vm.accel`.
 * @param onUnknown Called when the facts could not be read.
 * @returns `kvm` or `tcg`.
 */
export async function detectAccel(
  setting: AccelSetting,
  onUnknown?: (why: string) => void,
): Promise<"kvm" | "tcg"> {
  if (setting !== "auto") return setting;
  let kvmWritable = false;
  let cpuinfo = "";
  try {
    (await Deno.open("/dev/kvm", { read: true, write: true })).close();
    kvmWritable = true;
    cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      onUnknown?.(
        "Deno reads /dev/kvm and /proc/cpuinfo only under --allow-all, so vm.accel auto cannot tell whether kvm works and uses tcg (slow); set vm.accel: kvm on a host where it does",
      );
    }
    // Missing, not ours, not permitted: software emulation.
  }
  return chooseAccel(setting, { kvmWritable, cpuinfo });
}
