/**
 * The one place where extension code from outside sandboxer is loaded.
 *
 * @module
 */

import { ExtensionError } from "../core/errors.ts";
import type { ExtensionRegistration } from "../config/types.ts";
import type { SandboxExtension } from "./base.ts";
import type { ExtensionOptions } from "./types.ts";
import { mapPermissionError } from "../core/permissions.ts";

/**
 * Import a third-party extension's module and construct its class.
 *
 * @param registration The validated registration.
 * @param options Constructor options.
 * @returns The extension instance.
 * @throws {ExtensionError} when the module or export is missing or not an extension.
 */
export async function loadThirdPartyExtension(
  registration: ExtensionRegistration,
  options: ExtensionOptions,
): Promise<SandboxExtension<unknown>> {
  let module: Record<string, unknown>;
  try {
    module = await import(registration.moduleUrl);
  } catch (error) {
    const mapped = mapPermissionError(error, "import", registration.moduleUrl);
    if (mapped !== error) throw mapped;
    throw new ExtensionError(
      registration.id,
      `cannot load its module ${registration.moduleUrl} (from ${registration.file}): ${
        error instanceof Error ? error.message.split("\n")[0] : String(error)
      }`,
      { cause: error },
    );
  }
  const exported = module[registration.export];
  if (typeof exported !== "function") {
    throw new ExtensionError(
      registration.id,
      `module ${registration.moduleUrl} has no exported class "${registration.export}"; fix "export" in ${registration.file}`,
    );
  }
  const instance = new (exported as new (options: ExtensionOptions) => SandboxExtension<unknown>)(
    options,
  );
  // Duck-typed: a third party may import the SDK from another URL, so instanceof would lie.
  for (const method of ["create", "exec", "destroy", "parseConfig"] as const) {
    if (typeof (instance as unknown as Record<string, unknown>)[method] !== "function") {
      throw new ExtensionError(
        registration.id,
        `class "${registration.export}" has no ${method}() method; extend SandboxExtension`,
      );
    }
  }
  if (instance.id !== registration.id) {
    throw new ExtensionError(
      registration.id,
      `class "${registration.export}" says its id is "${instance.id}"; make it match the registration in ${registration.file}`,
    );
  }
  return instance;
}
