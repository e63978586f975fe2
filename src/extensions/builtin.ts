/**
 * The extensions shipped with sandboxer, statically imported so a compiled
 * binary embeds them and never loads code at run time to use them.
 *
 * @module
 */

import type { ExtensionClass } from "./base.ts";
import { ComposeSshExtension } from "./compose_ssh/extension.ts";
import { VmPackerExtension } from "./vm_packer/extension.ts";

/** Built-in extension classes by registration id. */
export const BUILTIN_EXTENSIONS: Readonly<Record<string, ExtensionClass>> = {
  "ext.compose-ssh": ComposeSshExtension,
  "ext.vm-packer": VmPackerExtension,
};
