import assert from "node:assert/strict";
import { DEFAULT_TRANSCRIPT_BYTES, Transcript, transcriptCap } from "./transcript.ts";
import { UsageError } from "../core/errors.ts";
import { tempDir } from "../testing/temp_dir.ts";

Deno.test("transcriptCap() reads bytes, K and M, and refuses anything else", () => {
  assert.equal(transcriptCap(undefined), DEFAULT_TRANSCRIPT_BYTES);
  assert.equal(transcriptCap("100"), 100);
  assert.equal(transcriptCap("4K"), 4096);
  assert.equal(transcriptCap("2m"), 2 * 1024 * 1024);
  assert.equal(transcriptCap("0"), 0);
  assert.throws(() => transcriptCap("1G"), UsageError);
});

Deno.test("Transcript joins partial lines and keeps within its cap", async () => {
  await using dir = await tempDir();
  const log = new Transcript(dir.path, "t1", 200);
  const bytes = new TextEncoder();
  log.output("stdout", bytes.encode("par"));
  log.output("stdout", bytes.encode("tial\nnext"));
  await log.flush();
  const text = await Deno.readTextFile(log.path);
  assert.match(text, /stdout\| partial\n.*stdout\| next\n$/s);
  for (let i = 0; i < 20; i++) await log.note(`line ${i}`);
  const capped = await Deno.readTextFile(log.path);
  assert.ok(capped.length <= 200, `${capped.length}`);
  assert.match(capped, /line 19\n$/);
  assert.equal((await Deno.stat(log.path)).mode! & 0o777, 0o600);
});
