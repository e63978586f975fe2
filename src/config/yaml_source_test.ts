import assert from "node:assert/strict";
import { PermissionError } from "../core/errors.ts";
import { fileSource, parseYamlDocument, splitFieldPath, withOverrides } from "./yaml_source.ts";
import { configError } from "../testing/config_error.ts";

const PROFILE = [
  "id: profile.dev", // 1
  "extension: ext.vm-packer", // 2
  "target:", // 3
  "  host: build1", // 4
  "  port: 2222", // 5
  "  user:", // 6
  "setup:", // 7
  "  - make deps", // 8
  "  - make test", // 9
  "",
].join("\n");

Deno.test("parseYamlDocument() returns plain data", () => {
  const { data, source } = parseYamlDocument("dev.yaml", PROFILE);
  assert.deepEqual(data, {
    id: "profile.dev",
    extension: "ext.vm-packer",
    target: { host: "build1", port: 2222, user: null },
    setup: ["make deps", "make test"],
  });
  assert.equal(source.file, "dev.yaml");
});

Deno.test("parseYamlDocument() gives null for an empty document", () => {
  assert.equal(parseYamlDocument("e.yaml", "").data, null);
  assert.equal(parseYamlDocument("e.yaml", "# only a comment\n").data, null);
});

Deno.test("locate() points at the value, then the key, then the parent, then the file", () => {
  const { source } = parseYamlDocument("dev.yaml", PROFILE);
  assert.deepEqual(source.locate("target.port"), {
    file: "dev.yaml",
    line: 5,
    column: 9,
    field: "target.port",
  });
  // empty value: the key
  assert.deepEqual(source.locate("target.user"), {
    file: "dev.yaml",
    line: 6,
    column: 3,
    field: "target.user",
  });
  // missing field: the nearest parent that exists
  assert.deepEqual(source.locate("target.identity_file"), {
    file: "dev.yaml",
    line: 3,
    column: 1,
    field: "target.identity_file",
  });
  // nothing of it exists: the file alone
  assert.deepEqual(source.locate("workspace.root"), { file: "dev.yaml", field: "workspace.root" });
});

Deno.test("locate() finds list items and keys that contain dots", () => {
  const { source } = parseYamlDocument("dev.yaml", PROFILE);
  assert.equal(source.locate("setup[1]").line, 9);
  assert.equal(source.locate("setup.0").line, 8);
  assert.equal(source.locate("setup[5]").line, 7);
  const registration = parseYamlDocument(
    "ext.x.yaml",
    "config:\n  target.port:\n    type: port\n",
  );
  assert.deepEqual(registration.source.locate("config.target.port.type"), {
    file: "ext.x.yaml",
    line: 3,
    column: 11,
    field: "config.target.port.type",
  });
});

Deno.test("parseYamlDocument() reports a syntax error at its line and column", () => {
  const text = "id: profile.dev\nextension: ext.vm-packer\ntarget:\n  host: @build\n";
  const error = configError(() => parseYamlDocument("dev.yaml", text));
  assert.equal(error.location.line, 4);
  assert.equal(error.location.column, 9);
  assert.match(
    error.message,
    /^dev\.yaml:4:9: invalid YAML: Plain value cannot start with reserved/,
  );
  assert.ok(!error.message.includes("\n"), "the message is one line");
});

Deno.test("parseYamlDocument() reports the first of several errors and counts the rest", () => {
  const error = configError(() => parseYamlDocument("x.yaml", "- a\nb: 1\n"));
  assert.equal(error.location.line, 2);
  assert.match(error.message, /\(and 2 more YAML errors\)/);
});

Deno.test("parseYamlDocument() names tabs used for indentation", () => {
  const error = configError(() => parseYamlDocument("x.yaml", "target:\n\thost: a\n"));
  assert.equal(error.location.line, 2);
  assert.match(error.problem, /indent with spaces/);
});

Deno.test("parseYamlDocument() rejects a duplicate key, naming both lines", () => {
  const text = "id: profile.dev\ntarget:\n  host: a\n  port: 22\n  host: b\n";
  const error = configError(() => parseYamlDocument("dev.yaml", text));
  assert.equal(error.location.line, 5);
  assert.equal(error.location.column, 3);
  assert.equal(
    error.message,
    `dev.yaml:5:3: duplicate key "host" (first set on line 3); remove one of the two`,
  );
});

Deno.test("parseYamlDocument() rejects several documents in one file", () => {
  const error = configError(() => parseYamlDocument("x.yaml", "a: 1\n---\nb: 2\n"));
  assert.equal(error.location.line, 2);
  assert.match(error.problem, /more than one YAML document/);
});

Deno.test("parseYamlDocument() reports an unknown alias", () => {
  const error = configError(() => parseYamlDocument("x.yaml", "a: *nothing\n"));
  assert.match(error.problem, /anchors and aliases/);
});

Deno.test({
  name: "parseYamlDocument() names the --allow-env flag the yaml package needs",
  permissions: { env: false },
  fn() {
    assert.throws(() => parseYamlDocument("x.yaml", "a: 1\n"), (error: unknown) => {
      assert.ok(error instanceof PermissionError);
      assert.match(error.message, /--allow-env=LOG_TOKENS,LOG_STREAM/);
      return true;
    });
  },
});

Deno.test("withOverrides() locates overridden fields at their --set flag", () => {
  const { source } = parseYamlDocument("dev.yaml", PROFILE);
  const overridden = withOverrides(
    source,
    new Map([["target.port", "target.port=abc"], ["sync", "sync={exclude: x}"]]),
  );
  assert.deepEqual(overridden.locate("target.port"), {
    file: "--set target.port=abc",
    field: "target.port",
  });
  assert.deepEqual(overridden.locate("sync.exclude"), {
    file: "--set sync={exclude: x}",
    field: "sync.exclude",
  });
  assert.equal(overridden.locate("target.host").line, 4);
  assert.equal(overridden.file, "dev.yaml");
});

Deno.test("fileSource() and splitFieldPath()", () => {
  assert.deepEqual(fileSource("f").locate("a.b"), { file: "f", field: "a.b" });
  assert.deepEqual(splitFieldPath("sync.exclude[2]"), ["sync", "exclude", "2"]);
  assert.deepEqual(splitFieldPath("ttl"), ["ttl"]);
});
