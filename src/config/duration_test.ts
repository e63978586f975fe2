import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "./duration.ts";

Deno.test("parseDuration() reads seconds and unit forms", () => {
  assert.equal(parseDuration(90), 90);
  assert.equal(parseDuration("90"), 90);
  assert.equal(parseDuration("90s"), 90);
  assert.equal(parseDuration("30m"), 1800);
  assert.equal(parseDuration("8h"), 28_800);
  assert.equal(parseDuration("2d"), 172_800);
  assert.equal(parseDuration("1h30m"), 5400);
  assert.equal(parseDuration("1d2h3m4s"), 93_784);
  assert.equal(parseDuration(" 15m "), 900);
  assert.equal(parseDuration(0), 0);
});

Deno.test("parseDuration() throws RangeError on bad input", () => {
  for (
    const bad of ["", "abc", "10x", "1.5h", "-5m", "30m1h", "1h1h", "1h30", "h", "5 m", "10ms"]
  ) {
    assert.throws(() => parseDuration(bad), RangeError, `expected ${JSON.stringify(bad)} to fail`);
  }
  assert.throws(() => parseDuration(-1), RangeError);
  assert.throws(() => parseDuration(1.5), RangeError);
  assert.throws(() => parseDuration(Infinity), RangeError);
  assert.throws(() => parseDuration("99999999999999999999d"), RangeError);
});

Deno.test("parseDuration() error says how to write a duration", () => {
  assert.throws(() => parseDuration("soon"), (error: Error) => {
    assert.match(error.message, /Cannot parse duration "soon"/);
    assert.match(error.message, /"1h30m"/);
    return true;
  });
  assert.throws(() => parseDuration("30m1h"), /largest to smallest/);
});

Deno.test("formatDuration() is the inverse of parseDuration()", () => {
  assert.equal(formatDuration(0), "0s");
  assert.equal(formatDuration(45), "45s");
  assert.equal(formatDuration(5400), "1h30m");
  assert.equal(formatDuration(172_800), "2d");
  assert.equal(formatDuration(93_784), "1d2h3m4s");
  assert.equal(formatDuration(-90), "-1m30s");
  assert.equal(formatDuration(59.9), "59s");
  for (const text of ["1h30m", "2d", "8h", "1d2h3m4s"]) {
    assert.equal(formatDuration(parseDuration(text)), text);
  }
});
