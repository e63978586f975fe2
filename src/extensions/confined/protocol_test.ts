import assert from "node:assert/strict";
import { checkFromWorker, checkResult, LIMITS, ProtocolViolation, toWire } from "./protocol.ts";

Deno.test("checkFromWorker() passes what an honest worker sends, rebuilt from known fields", () => {
  const errorMessage = {
    type: "error",
    id: 3,
    error: {
      name: "ConfigError",
      message: "m",
      code: "CONFIG_INVALID",
      location: { file: "f", line: 2 },
    },
  };
  assert.deepEqual(checkFromWorker({ type: "log", level: "warn", message: "hi", extra: 1 }), {
    type: "log",
    level: "warn",
    message: "hi",
  });
  assert.deepEqual(
    checkFromWorker({ type: "recordHandle", id: 1, ackId: 2, handle: { a: 1 }, workspace: "/w" }),
    { type: "recordHandle", id: 1, ackId: 2, handle: { a: 1 }, workspace: "/w" },
  );
  assert.deepEqual(
    checkFromWorker(structuredClone(errorMessage)),
    errorMessage,
  );
  const chunk = new Uint8Array([1, 2]);
  assert.equal(
    (checkFromWorker({ type: "stdout", id: 1, chunk }) as { chunk: Uint8Array }).chunk,
    chunk,
  );
});

const MALFORMED: [string, unknown, RegExp][] = [
  ["a string", "x", /a message is a string, not an object/],
  ["an array", [1], /a message is an array/],
  ["a Map", new Map(), /a message is a Map, not an object/],
  ["no type", {}, /a message has no type/],
  ["an unknown type", { type: "pwn" }, /unknown message type "pwn"/],
  ["a bad level", { type: "log", level: "nope", message: "" }, /log level is "nope"/],
  [
    "a level that is a method name",
    { type: "log", level: "constructor", message: "" },
    /log level/,
  ],
  ["a non-string message", { type: "log", level: "info", message: {} }, /log message is an object/],
  [
    "a huge message",
    { type: "log", level: "info", message: "x".repeat(LIMITS.text + 1) },
    /more than 65536/,
  ],
  [
    "a fractional id",
    { type: "result", id: 1.5, value: null },
    /id is a number, not a call number/,
  ],
  ["a zero id", { type: "result", id: 0, value: null }, /id is the number 0/],
  ["an error that is a string", { type: "error", id: 1, error: "boom" }, /error is a string/],
  [
    "an error name with spaces",
    { type: "error", id: 1, error: { name: "a b", message: "" } },
    /not a class name/,
  ],
  [
    "a bad error code",
    { type: "error", id: 1, error: { name: "E", message: "", code: "x y" } },
    /not an error code/,
  ],
  ["a handle holding a Date", {
    type: "recordHandle",
    id: 1,
    ackId: 1,
    handle: { d: new Date() },
    workspace: null,
  }, /other than JSON data/],
  ["a huge handle", {
    type: "recordHandle",
    id: 1,
    ackId: 1,
    handle: { x: "x".repeat(LIMITS.handle) },
    workspace: null,
  }, /handle is .* characters as JSON/],
  ["a workspace with a newline", {
    type: "recordHandle",
    id: 1,
    ackId: 1,
    handle: {},
    workspace: "/a\n",
  }, /control characters/],
  [
    "a chunk that is text",
    { type: "stderr", id: 1, chunk: "text" },
    /stderr chunk is a string, not bytes/,
  ],
  [
    "a huge chunk",
    { type: "stdout", id: 1, chunk: new Uint8Array(LIMITS.chunk + 1) },
    /more than 16777216/,
  ],
  [
    "a progress with negative bytes",
    { type: "progress", id: 1, progress: { bytes: -1 } },
    /not a byte count/,
  ],
  [
    "a progress over 100%",
    { type: "progress", id: 1, progress: { bytes: 1, percent: 101 } },
    /0 to 100/,
  ],
];

for (const [name, message, reason] of MALFORMED) {
  Deno.test(`checkFromWorker() refuses ${name}`, () => {
    assert.throws(() => checkFromWorker(message), (error: unknown) => {
      assert.ok(error instanceof ProtocolViolation);
      assert.match(error.message, reason);
      return true;
    });
  });
}

Deno.test("checkResult() holds each method to what it returns", () => {
  assert.equal(checkResult("exec", 0), 0);
  assert.equal(checkResult("exec", 255), 255);
  for (const bad of [-1, 256, 1.5, "0", null]) {
    assert.throws(() => checkResult("exec", bad), ProtocolViolation);
  }
  assert.deepEqual(checkResult("create", { handle: { w: "/x" }, workspace: null }), {
    handle: { w: "/x" },
    workspace: null,
  });
  assert.throws(() => checkResult("create", { handle: [1] }), /not a handle/);
  assert.deepEqual(
    checkResult("sync", { method: "rsync", files: 1, deleted: 0, bytes: 9, extra: "x" }),
    { method: "rsync", files: 1, deleted: 0, bytes: 9 },
  );
  assert.throws(
    () => checkResult("sync", { method: "ftp", files: 1, deleted: 0, bytes: 9 }),
    /method/,
  );
  assert.equal(checkResult("destroy", null), null);
  assert.throws(() => checkResult("destroy", "done"), /not nothing/);
  assert.throws(() => checkResult("parseConfig", { a: () => 1 }), /JSON data/);
});

Deno.test("toWire() never produces an error the host would refuse", () => {
  const odd = Object.assign(new Error("m"), { code: 5, location: { file: 7 } });
  odd.name = "Error [ERR_X]";
  assert.deepEqual(toWire(odd), { name: "Error", message: "m" });
  assert.deepEqual(toWire("plain"), { name: "Error", message: "plain" });
  const coded = Object.assign(new Error("n"), { code: "ENOENT" });
  assert.deepEqual(toWire(coded), { name: "Error", message: "n", code: "ENOENT" });
});
