import assert from "node:assert/strict";
import type { ConfigError } from "../core/errors.ts";
import { parseRegistrationSchema } from "./registration_schema.ts";
import { validateConfig } from "./schema.ts";
import type { ConfigSchema } from "./types.ts";
import type { JsonObject } from "../core/types.ts";
import { parseYamlDocument, withOverrides } from "./yaml_source.ts";
import { configError } from "../testing/config_error.ts";

const VM_SCHEMA: ConfigSchema = {
  "target.host": { type: "string", required: true, description: "the build machine" },
  "target.port": { type: "port", default: 22 },
  "target.user": { type: "string", default: "build" },
  "target.identity_file": { type: "path" },
  "workspace.root": { type: "string", default: "/build" },
  "workspace.keep": { type: "boolean", default: false },
  "workspace.mode": { type: "string", enum: ["copy", "mount"], default: "copy" },
  "limits.jobs": { type: "integer", min: 1, max: 64 },
  "limits.idle": { type: "duration", default: "30m", max: 86_400 },
  "packages": { type: "string[]" },
};

function validate(text: string, schema: ConfigSchema = VM_SCHEMA, file = "dev.yaml"): JsonObject {
  const { data, source } = parseYamlDocument(file, text);
  return validateConfig((data ?? {}) as JsonObject, schema, source, { home: "/home/ana" });
}

Deno.test("validateConfig() returns a nested object with defaults applied", () => {
  const config = validate(
    "target:\n  host: build1\n  identity_file: ~/.ssh/id\nlimits:\n  idle: 1h30m\npackages: [gcc, make]\n",
  );
  assert.deepEqual(config, {
    target: { host: "build1", identity_file: "/home/ana/.ssh/id", port: 22, user: "build" },
    limits: { idle: 5400 },
    packages: ["gcc", "make"],
    workspace: { root: "/build", keep: false, mode: "copy" },
  });
});

Deno.test("validateConfig() converts a duration default to seconds", () => {
  assert.equal((validate("target: {host: a}\n").limits as JsonObject).idle, 1800);
});

Deno.test("validateConfig() treats a key with no value as absent", () => {
  const config = validate("target:\n  host: a\n  port:\n");
  assert.equal((config.target as JsonObject).port, 22);
});

Deno.test("validateConfig() resolves relative paths against the file's directory", () => {
  const text = "target:\n  host: a\n  identity_file: keys/id\n";
  assert.equal(
    ((validate(text, VM_SCHEMA, "/etc/sbx/profiles/dev.yaml")).target as JsonObject).identity_file,
    "/etc/sbx/profiles/keys/id",
  );
  const { data, source } = parseYamlDocument("/p/dev.yaml", text);
  const config = validateConfig(data as JsonObject, VM_SCHEMA, source, { baseDir: "/base" });
  assert.equal((config.target as JsonObject).identity_file, "/base/keys/id");
  // a value from --set stays relative to the working directory
  const overridden = withOverrides(
    source,
    new Map([["target.identity_file", "target.identity_file=keys/id"]]),
  );
  const fromSet = validateConfig(data as JsonObject, VM_SCHEMA, overridden, { baseDir: "/base" });
  assert.equal((fromSet.target as JsonObject).identity_file, "keys/id");
});

Deno.test("validateConfig() rejects an unknown key with a did-you-mean", () => {
  const error = configError(() => validate("target:\n  host: a\n  prot: 2222\n"));
  assert.equal(
    error.message,
    `dev.yaml:3:9: target.prot: is not a known field; remove it or fix its name (did you mean "target.port"?)`,
  );
});

Deno.test("validateConfig() suggests the full path for a field at the wrong level", () => {
  const error = configError(() => validate("target:\n  host: a\nport: 2222\n"));
  assert.equal(error.location.field, "port");
  assert.equal(error.location.line, 3);
  assert.match(error.problem, /did you mean "target.port"\?/);
});

Deno.test("validateConfig() suggests a misspelt group and lists fields when nothing is close", () => {
  const misspelt = configError(() => validate("tagret:\n  host: a\n"));
  assert.match(misspelt.problem, /did you mean "target"\?/);
  const unrelated = configError(() => validate("target:\n  host: a\n  zzzzzz: 1\n"));
  assert.match(unrelated.problem, /use one of: host, port, user, identity_file$/);
});

Deno.test("validateConfig() names the expected type and the value it got", () => {
  const error = configError(() => validate("target:\n  host: a\n  port: abc\n"));
  assert.equal(
    error.message,
    `dev.yaml:3:9: target.port: must be an integer from 1 to 65535 (got "abc")`,
  );
  const quoted = configError(() => validate(`target:\n  host: a\n  port: "22"\n`));
  assert.match(quoted.problem, /\(got "22"\); remove the quotes$/);
  const number = configError(() => validate("target:\n  host: 1234\n"));
  assert.match(number.problem, /^must be a string \(got 1234\); put it in quotes: "1234"$/);
  const boolean = configError(() => validate("target: {host: a}\nworkspace:\n  keep: yes\n"));
  assert.equal(boolean.problem, `must be true or false (got "yes")`);
  assert.equal(boolean.location.line, 3);
});

Deno.test("validateConfig() rejects an out-of-range port at the value's line", () => {
  const error = configError(() => validate("# dev box\ntarget:\n  host: a\n\n  port: 70000\n"));
  assert.equal(error.location.line, 5);
  assert.equal(error.location.column, 9);
  assert.equal(error.problem, "must be an integer from 1 to 65535 (got 70000)");
  assert.equal(configError(() => validate("target: {host: a, port: 0}\n")).location.column, 25);
});

Deno.test("validateConfig() checks integer min and max", () => {
  const error = configError(() => validate("target: {host: a}\nlimits:\n  jobs: 65\n"));
  assert.equal(error.problem, "must be an integer from 1 to 64 (got 65)");
  const fraction = configError(() => validate("target: {host: a}\nlimits:\n  jobs: 2.5\n"));
  assert.equal(fraction.problem, "must be an integer from 1 to 64 (got 2.5)");
});

Deno.test("validateConfig() reports a missing required field with what to add", () => {
  const underParent = configError(() => validate("target:\n  port: 2222\n"));
  assert.equal(
    underParent.message,
    "dev.yaml:1:1: target.host: is required (the build machine); add `host: <string>` under `target:`",
  );
  const noParent = configError(() => validate("workspace:\n  root: /b\n"));
  assert.equal(
    noParent.message,
    "dev.yaml: target.host: is required (the build machine); add `target: {host: <string>}`",
  );
});

Deno.test("validateConfig() rejects a single string where a list is expected", () => {
  const error = configError(() => validate("target: {host: a}\npackages: gcc\n"));
  assert.equal(error.location.line, 2);
  assert.equal(
    error.problem,
    `must be a list of strings (got "gcc"); a single string is not a list, write it as ["gcc"]`,
  );
  const item = configError(() => validate("target: {host: a}\npackages:\n  - gcc\n  - 3\n"));
  assert.equal(item.location.field, "packages[1]");
  assert.equal(item.location.line, 4);
});

Deno.test("validateConfig() checks enums with a did-you-mean", () => {
  const error = configError(() => validate("target: {host: a}\nworkspace: {mode: mout}\n"));
  assert.equal(
    error.problem,
    `must be one of "copy", "mount" (got "mout") (did you mean "mount"?)`,
  );
});

Deno.test("validateConfig() rejects a non-mapping where a mapping is expected", () => {
  const error = configError(() => validate("target: build1\n"));
  assert.equal(error.location.line, 1);
  assert.equal(error.location.column, 9);
  assert.match(
    error.problem,
    /^must be a mapping with host, port, user, identity_file \(got "build1"\)/,
  );
  const list = configError(() => validate("target:\n  - a\n"));
  assert.match(list.problem, /\(got a list\)/);
});

Deno.test("validateConfig() rejects a bad duration and one out of range", () => {
  const bad = configError(() => validate("target: {host: a}\nlimits: {idle: soon}\n"));
  assert.match(bad.problem, /^must be a duration such as .*\(got "soon"\)$/);
  const long = configError(() => validate("target: {host: a}\nlimits: {idle: 2d}\n"));
  assert.equal(long.problem, `must be at most 1d (got "2d")`);
});

Deno.test("validateConfig() refuses a field given both nested and dotted", () => {
  const error = configError(() => validate("target:\n  host: a\ntarget.host: b\n"));
  assert.match(error.problem, /set twice/);
});

Deno.test("validateConfig() copies passthrough fields unchecked", () => {
  const { data, source } = parseYamlDocument("r.yaml", "id: x\nconfig: {anything: [1]}\n");
  const out = validateConfig(data as JsonObject, { id: { type: "string" } }, source, {
    passthrough: ["config"],
  });
  assert.deepEqual(out, { id: "x", config: { anything: [1] } });
});

function registrationSchemaError(text: string): ConfigError {
  const { data, source } = parseYamlDocument("ext.demo.yaml", text);
  return configError(() => parseRegistrationSchema((data as JsonObject).config, source));
}

Deno.test("parseRegistrationSchema() reads a schema block", () => {
  const { data, source } = parseYamlDocument(
    "ext.demo.yaml",
    [
      "config:",
      "  target.host: {type: string, required: true, description: SSH host}",
      "  target.port: {type: port, default: 22}",
      "  ttl: {type: duration, min: 1m, max: 2d, default: 8h}",
      "  mode: {type: string, enum: [a, b]}",
      "  tags:\n    type: string[]\n    enum: [x, y]\n    max: 2",
    ].join("\n"),
  );
  const schema = parseRegistrationSchema((data as JsonObject).config, source);
  assert.deepEqual(schema, {
    "target.host": { type: "string", required: true, description: "SSH host" },
    "target.port": { type: "port", default: 22 },
    ttl: { type: "duration", min: 60, max: 172_800, default: "8h" },
    mode: { type: "string", enum: ["a", "b"] },
    tags: { type: "string[]", enum: ["x", "y"], max: 2 },
  });
  assert.deepEqual(parseRegistrationSchema(undefined, source), {});
});

Deno.test("parseRegistrationSchema() rejects an unknown type with a did-you-mean", () => {
  const error = registrationSchemaError("config:\n  host:\n    type: strng\n");
  assert.equal(error.location.field, "config.host.type");
  assert.equal(error.location.line, 3);
  assert.match(error.problem, /\(got "strng"\) \(did you mean "string"\?\)$/);
  assert.match(
    registrationSchemaError("config:\n  host: {required: true}\n").problem,
    /^is required/,
  );
});

Deno.test("parseRegistrationSchema() checks the default against the type", () => {
  const error = registrationSchemaError("config:\n  port:\n    type: port\n    default: 99999\n");
  assert.equal(error.location.field, "config.port.default");
  assert.equal(error.location.line, 4);
  assert.equal(error.problem, "must be an integer from 1 to 65535 (got 99999)");
  const enumDefault = registrationSchemaError(
    "config:\n  mode: {type: string, enum: [a, b], default: c}\n",
  );
  assert.match(enumDefault.problem, /must be one of "a", "b" \(got "c"\)/);
});

Deno.test("parseRegistrationSchema() rejects malformed entries", () => {
  assert.match(
    registrationSchemaError("config:\n  host: {type: string, requird: true}\n").problem,
    /did you mean "required"\?/,
  );
  assert.match(
    registrationSchemaError("config:\n  host: string\n").problem,
    /^must be a mapping such as `\{type: string\}` \(got "string"\)/,
  );
  assert.match(
    registrationSchemaError("config: [a]\n").problem,
    /^must be a mapping of field names/,
  );
  assert.match(
    registrationSchemaError("config:\n  n: {type: integer, min: 5, max: 1}\n").problem,
    /must not be larger than max/,
  );
  assert.match(
    registrationSchemaError("config:\n  n: {type: integer, required: true, default: 1}\n").problem,
    /drop one of them/,
  );
  assert.match(
    registrationSchemaError("config:\n  b: {type: boolean, min: 1}\n").problem,
    /does not apply to boolean/,
  );
  const conflict = registrationSchemaError(
    "config:\n  target: {type: string}\n  target.port: {type: port}\n",
  );
  assert.equal(conflict.location.line, 3);
  assert.match(conflict.problem, /inside "target", which is itself a field/);
  assert.match(
    registrationSchemaError("config:\n  bad name: {type: string}\n").problem,
    /not a valid field name/,
  );
});

Deno.test("object[] fields: entries take the fields of items_like plus their own, errors name the entry", () => {
  const schema = parseRegistrationSchema({
    "target.host": { type: "string" },
    "target.port": { type: "port" },
    "target.known_hosts": { type: "path", default: "~/.ssh/known_hosts" },
    targets: {
      type: "object[]",
      min: 1,
      items_like: "target",
      items: { capacity: { type: "integer", default: 1, min: 1 } },
    },
  }, parseYamlDocument("ext.demo.yaml", "").source);
  assert.deepEqual(Object.keys(schema.targets.items ?? {}).sort(), [
    "capacity",
    "host",
    "known_hosts",
    "port",
  ]);
  const text = "targets:\n  - { host: a, port: 2222, capacity: 4 }\n  - host: b\n    port: 0\n";
  const error = configError(() => validate(text, schema));
  assert.deepEqual(
    [error.location.line, error.location.field],
    [4, "targets[1].port"],
    error.message,
  );
  const config = validate(text.replace("port: 0", "port: 22"), schema);
  assert.deepEqual(config.targets, [
    { host: "a", port: 2222, capacity: 4, known_hosts: "/home/ana/.ssh/known_hosts" },
    { host: "b", port: 22, capacity: 1, known_hosts: "/home/ana/.ssh/known_hosts" },
  ]);
  const unknown = configError(() => validate("targets:\n  - { host: a, colour: red }\n", schema));
  assert.equal(unknown.location.field, "targets[0].colour");
  const notList = configError(() => validate("targets: { host: a }\n", schema));
  assert.match(notList.message, /must be a list of mappings/);
  const wrongType = configError(() =>
    parseRegistrationSchema(
      { names: { type: "string", items_like: "target" } },
      parseYamlDocument("ext.demo.yaml", "").source,
    )
  );
  assert.match(wrongType.message, /applies only to fields of type object\[\]/);
});
