/**
 * Where the confined worker's entry and sandboxer's SDK modules are, as the
 * worker imports them: an extension may import the SDK from exactly there.
 *
 * @module
 */

import { fileURLToPath, pathToFileURL } from "node:url";

/** The worker's entry, by its canonical path so the SDK URLs it loads match an extension's. */
export async function entryUrl(): Promise<URL> {
  const url = new URL("./worker_main.ts", import.meta.url);
  if (url.protocol !== "file:") return url;
  try {
    return pathToFileURL(await Deno.realPath(fileURLToPath(url)));
  } catch {
    return url;
  }
}

/** The SDK's entry modules (deno.json "exports"), which the worker entry imports. */
export const SDK_ENTRIES = ["mod.ts", "extension.ts", "errors.ts"];

/** One SDK entry module as the worker entry imports it. */
export function sdkPath(entry: string): string {
  const url = new URL(`../../../${entry}`, import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : url.href;
}

/** {@linkcode SDK_ENTRIES} as paths (or URLs when sandboxer itself was loaded by URL). */
export const SDK_PATHS = SDK_ENTRIES.map(sdkPath);
