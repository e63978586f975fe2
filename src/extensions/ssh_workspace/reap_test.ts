// The listing script, run by a real `sh` on a real directory tree (the remote side is a
// POSIX shell too), then parsed.
import assert from "node:assert/strict";
import { LIST_MARKED_WORKSPACES, parseMarkedWorkspaces } from "./reap.ts";

async function list(root: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("sh", {
    args: ["-c", LIST_MARKED_WORKSPACES, "sh", root],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

const marker = (fields: Record<string, unknown>) => JSON.stringify(fields) + "\n";

Deno.test("the listing finds marked workspaces and names every other sbx-* entry", async () => {
  const root = await Deno.makeTempDir({ prefix: "sbx-reap-" });
  try {
    const expires = "2030-01-01T00:00:00.000Z";
    const nonce = "0123456789abcdef0123456789abcdef";
    await Deno.mkdir(`${root}/sbx-good`);
    await Deno.writeTextFile(
      `${root}/sbx-good/.sandboxer.json`,
      marker({ id: "good", nonce, profile: "profile.p", creator: "me@there", expires_at: expires }),
    );
    // Removals cut short: a tombstone with its marker, and tombstones that are not one.
    await Deno.mkdir(`${root}/.sbx-half.tomb-${nonce}`);
    await Deno.writeTextFile(
      `${root}/.sbx-half.tomb-${nonce}/.sandboxer.json`,
      marker({ id: "half", nonce, expires_at: null }),
    );
    await Deno.mkdir(`${root}/.sbx-swapped.tomb-${nonce}`);
    await Deno.writeTextFile(
      `${root}/.sbx-swapped.tomb-${nonce}/.sandboxer.json`,
      marker({ id: "swapped", nonce: "f".repeat(32), expires_at: null }),
    );
    await Deno.mkdir(`${root}/.sbx-empty.tomb-${nonce}`);
    await Deno.mkdir(`${root}/sbx-badnonce`);
    await Deno.writeTextFile(
      `${root}/sbx-badnonce/.sandboxer.json`,
      marker({ id: "badnonce", nonce: "x; rm -rf /" }),
    );
    await Deno.mkdir(`${root}/sbx-noexpiry`);
    await Deno.writeTextFile(`${root}/sbx-noexpiry/.sandboxer.json`, marker({ id: "noexpiry" }));
    // A marker spread over lines (hand-edited) still parses: newlines become spaces.
    await Deno.mkdir(`${root}/sbx-pretty`);
    await Deno.writeTextFile(
      `${root}/sbx-pretty/.sandboxer.json`,
      JSON.stringify({ id: "pretty", expires_at: null }, null, 2),
    );
    await Deno.mkdir(`${root}/sbx-unmarked`);
    await Deno.mkdir(`${root}/sbx-foreign`);
    await Deno.writeTextFile(`${root}/sbx-foreign/.sandboxer.json`, marker({ id: "other" }));
    await Deno.mkdir(`${root}/sbx-badexpiry`);
    await Deno.writeTextFile(
      `${root}/sbx-badexpiry/.sandboxer.json`,
      marker({ id: "badexpiry", expires_at: "soon" }),
    );
    await Deno.mkdir(`${root}/sbx-garbled`);
    await Deno.writeTextFile(`${root}/sbx-garbled/.sandboxer.json`, "{nope");
    await Deno.symlink(`${root}/sbx-good`, `${root}/sbx-link`);
    await Deno.mkdir(`${root}/sbx-markerlink`);
    await Deno.symlink(
      `${root}/sbx-good/.sandboxer.json`,
      `${root}/sbx-markerlink/.sandboxer.json`,
    );
    await Deno.writeTextFile(`${root}/sbx-file`, "x");
    // Not listed at all: names that are not sbx-<id>.
    await Deno.mkdir(`${root}/sbx-UPPER`);
    await Deno.mkdir(`${root}/sbx-a b`);
    await Deno.mkdir(`${root}/sbx-$(touch pwned)`);
    await Deno.mkdir(`${root}/other`);

    const result = await list(root);
    assert.equal(result.code, 0, result.stderr);
    const scan = parseMarkedWorkspaces(result.stdout, root, "u@h:22");
    assert.deepEqual(scan.markers.map((m) => [m.id, m.expires_at, m.tombstone]), [
      ["good", expires, false],
      ["noexpiry", null, false],
      ["pretty", null, false],
      ["half", null, true],
    ]);
    assert.equal(scan.markers[1].nonce, null, "a marker made before nonces");
    assert.equal(scan.markers[3].workspace, `${root}/.sbx-half.tomb-${nonce}`);
    assert.deepEqual(scan.markers[0], {
      id: "good",
      workspace: `${root}/sbx-good`,
      nonce,
      tombstone: false,
      profile: "profile.p",
      creator: "me@there",
      created_at: null,
      expires_at: expires,
    });
    const ignored = Object.fromEntries(
      scan.ignored.map((i) => [i.workspace.slice(root.length + 1), i.reason]),
    );
    assert.deepEqual(ignored, {
      [`.sbx-empty.tomb-${nonce}`]: "no .sandboxer.json marker",
      [`.sbx-swapped.tomb-${nonce}`]: "a tombstone whose marker holds another nonce",
      "sbx-badnonce": "its .sandboxer.json marker has an unreadable nonce",
      "sbx-badexpiry": 'its .sandboxer.json marker has an unreadable expires_at ("soon")',
      "sbx-file": "not a directory",
      "sbx-foreign": 'its .sandboxer.json marker names another sandbox ("other")',
      "sbx-garbled": "its .sandboxer.json marker is not valid JSON",
      "sbx-link": "a symlink, not a workspace",
      "sbx-markerlink": "no .sandboxer.json marker",
      "sbx-unmarked": "no .sandboxer.json marker",
    });
    assert.equal(await Deno.stat(`${root}/pwned`).catch(() => undefined), undefined);
    assert.equal(scan.target, "u@h:22");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the listing of an empty root is empty; a missing root exits 90", async () => {
  const root = await Deno.makeTempDir({ prefix: "sbx-reap-" });
  try {
    const empty = await list(root);
    assert.equal(empty.code, 0, empty.stderr);
    assert.deepEqual(parseMarkedWorkspaces(empty.stdout, root, "t"), {
      target: "t",
      root,
      markers: [],
      ignored: [],
    });
    const missing = await list(`${root}/nope`);
    assert.equal(missing.code, 90);
    assert.match(missing.stderr, /does not exist/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("parseMarkedWorkspaces ignores lines it does not understand", () => {
  const scan = parseMarkedWorkspaces("junk\nM\tsbx-../x\t{}\nX\tsbx-a\n\n", "/r", "t");
  assert.deepEqual(scan, { target: "t", root: "/r", markers: [], ignored: [] });
});
