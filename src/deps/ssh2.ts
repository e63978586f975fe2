/**
 * npm:ssh2, pinned, with its types from npm:@types/ssh2 (ssh2 ships none).
 * See `src/deps/yaml.ts` for why dependencies live here.
 *
 * Loaded on first use ({@linkcode loadSsh2}), not at import: most CLI calls
 * never open an ssh2 connection (an `exec` over a shared OpenSSH connection,
 * `list`, `show`, `--version`), and ssh2 with node:crypto is the largest
 * piece of the module graph to load.
 *
 * @module
 */

// @ts-types="npm:@types/ssh2@1.15.6"
import type ssh2 from "npm:ssh2@1.17.0";

// @ts-types="npm:@types/ssh2@1.15.6"
export type { ClientChannel, ConnectConfig, SFTPWrapper, Stats } from "npm:ssh2@1.17.0";

/** The ssh2 module's default export. */
export type Ssh2 = typeof ssh2;

let loaded: Promise<Ssh2> | undefined;

/**
 * ssh2, imported the first time it is asked for.
 *
 * @returns The module's default export.
 */
export function loadSsh2(): Promise<Ssh2> {
  loaded ??= import("npm:ssh2@1.17.0").then((module) => module.default as Ssh2);
  return loaded;
}
