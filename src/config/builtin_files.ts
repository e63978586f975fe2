/**
 * The built-in registrations (`extensions/*.yaml`) and profiles
 * (`profiles/*.yaml`), imported as text so they are part of the module
 * graph: the same code finds them in a checkout, from JSR, imported by URL
 * and inside a compiled binary, where a path next to `import.meta.url` may
 * not be a readable file (or a file at all). `builtin_files_test.ts` fails
 * when a YAML file is added to either directory and not listed here.
 *
 * @module
 */

import composeSshRegistration from "../../extensions/ext.compose-ssh.yaml" with { type: "text" };
import vmPackerRegistration from "../../extensions/ext.vm-packer.yaml" with { type: "text" };
import composeSshdProfile from "../../profiles/compose-sshd.yaml" with { type: "text" };
import vmHaskellBuildProfile from "../../profiles/vm-haskell-build.yaml" with { type: "text" };
import vmHaskellBuildLocalProfile from "../../profiles/vm-haskell-build-local.yaml" with {
  type: "text",
};
import { fileURLToPath } from "node:url";
import type { EmbeddedDir } from "./files.ts";

/** The built-in `extensions/` directory, as embedded text. */
export const BUILTIN_EXTENSIONS_DIR: EmbeddedDir = {
  path: whereFrom("../../extensions"),
  files: {
    "ext.compose-ssh.yaml": composeSshRegistration,
    "ext.vm-packer.yaml": vmPackerRegistration,
  },
};

/** The built-in `profiles/` directory, as embedded text. */
export const BUILTIN_PROFILES_DIR: EmbeddedDir = {
  path: whereFrom("../../profiles"),
  files: {
    "compose-sshd.yaml": composeSshdProfile,
    "vm-haskell-build.yaml": vmHaskellBuildProfile,
    "vm-haskell-build-local.yaml": vmHaskellBuildLocalProfile,
  },
};

/**
 * Where the directory is, for messages (`file:line:col`) and for resolving
 * paths written in its files: a path when this module was loaded from disk
 * (a checkout, the compiled binary's embedded tree), else the URL.
 */
function whereFrom(relative: string): string {
  const url = new URL(relative, import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : url.href;
}
