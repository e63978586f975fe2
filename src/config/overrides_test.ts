import assert from "node:assert/strict";
import { UsageError } from "../core/errors.ts";
import { applyOverrides } from "./overrides.ts";
import type { JsonObject } from "../core/types.ts";

Deno.test("applyOverrides() reads values as YAML scalars and flow values", () => {
  const { data } = applyOverrides({}, [
    "target.port=12222",
    "workspace.keep=true",
    "packages=[gcc, make]",
    'target.user="007"',
    "target.host=10.0.0.5",
    "description=",
    "labels={team: infra}",
    "note=@home",
    "cmd=echo: hi",
  ]);
  assert.deepEqual(data, {
    target: { port: 12222, user: "007", host: "10.0.0.5" },
    workspace: { keep: true },
    packages: ["gcc", "make"],
    description: "",
    labels: { team: "infra" },
    note: "@home",
    cmd: "echo: hi",
  });
});

Deno.test("applyOverrides() leaves the input alone and keeps other fields", () => {
  const original: JsonObject = { target: { host: "a", port: 22 } };
  const { data } = applyOverrides(original, ["target.port=2222"]);
  assert.deepEqual(data, { target: { host: "a", port: 2222 } });
  assert.deepEqual(original, { target: { host: "a", port: 22 } });
});

Deno.test("applyOverrides() records which fields came from --set", () => {
  const { fields } = applyOverrides({}, ["target.port=abc", " ttl = 8h"]);
  assert.deepEqual([...fields], [["target.port", "target.port=abc"], ["ttl", "ttl= 8h"]]);
  // a later override of a parent replaces the record of its children
  const later = applyOverrides({}, ["target.port=1", "target={port: 2}"]);
  assert.deepEqual([...later.fields.keys()], ["target"]);
  assert.deepEqual(later.data, { target: { port: 2 } });
});

Deno.test("applyOverrides() rejects malformed overrides with the fix", () => {
  const cases: [string, RegExp][] = [
    ["target.port", /expected dotted\.path=value; write e\.g\. --set target\.port=2222/],
    ["=5", /the field path before "=" is empty/],
    ["target..port=5", /"target\.\.port" has an empty segment/],
    ["__proto__.x=1", /"__proto__" is not allowed/],
    ["packages=[a, b", /Cannot parse the value of --set packages=\[a, b/],
  ];
  for (const [override, message] of cases) {
    assert.throws(() => applyOverrides({}, [override]), (error: unknown) => {
      assert.ok(error instanceof UsageError, `${override}: ${error}`);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("applyOverrides() refuses a path through a value that is not a mapping", () => {
  assert.throws(
    () => applyOverrides({ target: "build1" }, ["target.port=22"]),
    (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /"target" is "build1", not a mapping, so it has no field "port"/);
      return true;
    },
  );
  assert.throws(() => applyOverrides({ setup: ["a"] }, ["setup.x=1"]), /"setup" is a list/);
});

Deno.test("applyOverrides() addresses an entry of a list by its index", () => {
  const original: JsonObject = { targets: [{ host: "a", capacity: 1 }, { host: "b" }] };
  const { data, fields } = applyOverrides(original, ["targets.1.capacity=8", "targets.0.port=2"]);
  assert.deepEqual(data.targets, [{ host: "a", capacity: 1, port: 2 }, { host: "b", capacity: 8 }]);
  assert.deepEqual(original.targets, [{ host: "a", capacity: 1 }, { host: "b" }]);
  assert.equal(fields.get("targets.1.capacity"), "targets.1.capacity=8");
  assert.throws(
    () => applyOverrides(original, ["targets.2.capacity=8"]),
    (error) =>
      error instanceof UsageError && /"targets" has 2 entries \(0 to 1\)/.test(error.message),
  );
});
