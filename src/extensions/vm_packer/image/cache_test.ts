import assert from "node:assert/strict";
import { ImageError } from "../../../core/errors.ts";
import { tempDir } from "../../../testing/temp_dir.ts";
import { imageDirOf, imageKey, removeImage } from "./cache.ts";

Deno.test("imageKey(): the same bytes give the same key; template, scripts, variables, base and packer change it", async () => {
  await using dir = await tempDir();
  const d = dir.path;
  await Deno.mkdir(`${d}/t`);
  for (
    const [name, text] of [["t/t.json", "{}"], ["t/p.sh", "echo"], ["base", "B"], ["k", "K"], [
      "i",
      "I",
    ]]
  ) {
    await Deno.writeTextFile(`${d}/${name}`, text);
  }
  const inputs = {
    template: `${d}/t/t.json`,
    base: `${d}/base`,
    kernel: `${d}/k`,
    initrd: `${d}/i`,
    variables: ["b=2", "a=1"],
  };
  const key = async (over = {}, version = "Packer v1.6.6") =>
    (await imageKey({ ...inputs, ...over }, version)).key;
  const first = await key();
  assert.match(first, /^[0-9a-f]{64}$/);
  assert.equal(await key({ variables: ["a=1", "b=2"] }), first, "variable order does not matter");
  assert.notEqual(await key({ variables: ["a=1", "b=3"] }), first);
  assert.notEqual(await key({}, "Packer v1.7.0"), first);
  await Deno.writeTextFile(`${d}/t/p.sh`, "echo changed");
  const afterScript = await key();
  assert.notEqual(afterScript, first, "a provisioning script beside the template is an input");
  await Deno.writeTextFile(`${d}/base`, "B2");
  assert.notEqual(await key(), afterScript);
  await assert.rejects(key({ base: `${d}/missing` }), ImageError);
});

Deno.test("removeImage(): refuses keys that are not hex, unknown keys and images in use", async () => {
  await using dir = await tempDir();
  const key = "ab".repeat(32);
  const image = imageDirOf(dir.path, key);
  await Deno.mkdir(image, { recursive: true });
  await Deno.writeTextFile(`${image}/disk.qcow2`, "");
  await Deno.writeTextFile(
    `${image}/manifest.json`,
    JSON.stringify({ key, created_at: "2026-01-01T00:00:00Z" }),
  );
  await assert.rejects(removeImage(dir.path, "../../etc", new Set()), /not an image key/);
  await assert.rejects(removeImage(dir.path, "cdcdcd", new Set()), /not in the cache/);
  await assert.rejects(removeImage(dir.path, "ababab", new Set([key])), /destroy that sandbox/);
  assert.equal((await removeImage(dir.path, "ababab", new Set())).manifest.key, key);
  assert.equal(await Deno.stat(image).then(() => true, () => false), false);
});
