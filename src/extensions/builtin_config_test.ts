// One source of truth for built-in config: each built-in extension's hand-written config type
// (what `parseConfig` returns) must agree with the schema in its registration YAML — the same
// dotted fields, a schema type that yields the TypeScript type, and a field the type says is always
// there exactly when the schema requires it or gives a default. The table per extension is checked
// against the type by the compiler (a field added to or changed in the type fails `deno check`) and
// against the YAML here (a field added to or changed in the YAML fails this test).
import assert from "node:assert/strict";
import { BUILTIN_EXTENSIONS_DIR } from "../config/builtin_files.ts";
import { configFilePath } from "../config/files.ts";
import { parseRegistration } from "../config/registration.ts";
import type { FieldType } from "../config/types.ts";
import type { ComposeSshConfig } from "./compose_ssh/config.ts";
import type { VmPackerConfig } from "./vm_packer/config.ts";

/** Every dotted path to a leaf (a value that is not a plain object) of `T`. */
type Leaves<T, P extends string = ""> = {
  [K in keyof T & string]-?: NonNullable<T[K]> extends readonly unknown[] ? `${P}${K}`
    : NonNullable<T[K]> extends object ? Leaves<NonNullable<T[K]>, `${P}${K}.`>
    : `${P}${K}`;
}[keyof T & string];

/** The type at a dotted path. */
type At<T, P extends string> = P extends `${infer H}.${infer R}`
  ? H extends keyof T ? At<NonNullable<T[H]>, R> : never
  : P extends keyof T ? T[P]
  : never;

/** Whether the last key of a dotted path is optional (`?`) in `T`. */
type Optional<T, P extends string> = P extends `${infer H}.${infer R}`
  ? H extends keyof T ? Optional<NonNullable<T[H]>, R> : never
  // deno-lint-ignore ban-types
  : P extends keyof T ? ({} extends Pick<T, P> ? true : false)
  : never;

/** The schema types whose validated value has the TypeScript type `V`. */
type SchemaTypes<V> = [V] extends [string[]] ? "string[]"
  : [V] extends [object[]] ? "object[]"
  : [V] extends [string] ? "string" | "path"
  : [V] extends [number] ? "integer" | "port" | "duration"
  : [V] extends [boolean] ? "boolean"
  : never;

/** What the schema must say of each field of the config type `C`. */
type SchemaShape<C> = {
  [P in Leaves<C>]: {
    type: SchemaTypes<NonNullable<At<C, P>>>;
    /** Always present after validation: required, or has a default. */
    present: Optional<C, P> extends true ? false : true;
  };
};

const VM_PACKER: SchemaShape<VmPackerConfig> = {
  "mode": { type: "string", present: true },
  "target.host": { type: "string", present: false },
  "target.vm": { type: "string", present: false },
  "target.port": { type: "port", present: false },
  "target.user": { type: "string", present: false },
  "target.identity_file": { type: "path", present: false },
  "target.passphrase_env": { type: "string", present: false },
  "target.known_hosts": { type: "path", present: true },
  "target.ssh_config": { type: "path", present: false },
  "target.connect_timeout": { type: "duration", present: true },
  "target.keepalive_interval": { type: "duration", present: true },
  "targets": { type: "object[]", present: false },
  "workspace.root": { type: "string", present: true },
  "image.template": { type: "path", present: false },
  "image.base": { type: "path", present: false },
  "image.variables": { type: "string[]", present: true },
  "image.kernel": { type: "path", present: true },
  "image.initrd": { type: "path", present: true },
  "vm.cpus": { type: "integer", present: true },
  "vm.memory": { type: "integer", present: true },
  "vm.accel": { type: "string", present: true },
  "vm.boot_timeout": { type: "duration", present: true },
  "vm.append": { type: "string", present: true },
};

const COMPOSE_SSH: SchemaShape<ComposeSshConfig> = {
  "compose.file": { type: "path", present: false },
  "compose.inline": { type: "string", present: false },
  "compose.service": { type: "string", present: true },
  "compose.project_directory": { type: "path", present: false },
  "compose.env": { type: "string[]", present: true },
  "ssh.host": { type: "string", present: true },
  "ssh.port": { type: "port", present: false },
  "ssh.user": { type: "string", present: true },
  "ssh.identity_file": { type: "path", present: false },
  "ssh.passphrase_env": { type: "string", present: false },
  "ssh.known_hosts": { type: "path", present: false },
  "ssh.connect_timeout": { type: "duration", present: true },
  "ssh.keepalive_interval": { type: "duration", present: true },
  "workspace.root": { type: "string", present: true },
  "ready_timeout": { type: "duration", present: true },
};

const SHAPES: Record<string, Record<string, { type: FieldType; present: boolean }>> = {
  "ext.vm-packer": VM_PACKER,
  "ext.compose-ssh": COMPOSE_SSH,
};

Deno.test("every built-in extension has its config type checked against its YAML schema", () => {
  const ids = Object.keys(BUILTIN_EXTENSIONS_DIR.files).map((name) => name.replace(/\.yaml$/, ""));
  assert.deepEqual(Object.keys(SHAPES).sort(), ids.sort());
});

for (const [id, shape] of Object.entries(SHAPES)) {
  Deno.test(`${id}: the config type and the registration's schema agree`, () => {
    const file = `${id}.yaml`;
    const registration = parseRegistration(
      configFilePath(BUILTIN_EXTENSIONS_DIR.path, file),
      BUILTIN_EXTENSIONS_DIR.files[file],
      { builtin: true },
    );
    const fromYaml = Object.fromEntries(
      Object.entries(registration.config).map(([path, field]) => [
        path,
        { type: field.type, present: field.required === true || field.default !== undefined },
      ]),
    );
    assert.deepEqual(fromYaml, shape);
  });
}
