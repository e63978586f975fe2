import assert from "node:assert/strict";
import { gcTarget } from "./gc_target.ts";
import type { TargetScan, WorkspaceMarker } from "../extensions/types.ts";
import type { SandboxRecord } from "./record.ts";

const NOW = new Date("2030-01-01T12:00:00.000Z");
const PAST = "2030-01-01T11:00:00.000Z";
const FUTURE = "2030-01-01T13:00:00.000Z";

function marker(
  id: string,
  expires_at: string | null,
  more: Partial<WorkspaceMarker> = {},
): WorkspaceMarker {
  return {
    id,
    workspace: `/build/sbx-${id}`,
    nonce: `${id.length}`.padStart(32, "a"),
    tombstone: false,
    profile: "profile.p",
    creator: "me@elsewhere",
    created_at: "2030-01-01T10:00:00.000Z",
    expires_at,
    ...more,
  };
}

function record(
  id: string,
  status: SandboxRecord["status"],
  nonce?: string,
): SandboxRecord {
  return { id, status, handle: nonce === undefined ? null : { nonce } } as SandboxRecord;
}

/** A reaper over a fixed scan that records what it was asked to remove. */
function fakeReaper(scan: TargetScan, fail: Set<string> = new Set()) {
  const removed: string[] = [];
  return {
    removed,
    listMarkedWorkspaces: () => Promise.resolve(scan),
    removeMarkedWorkspace: (_config: unknown, m: WorkspaceMarker) => {
      if (fail.has(m.id)) return Promise.reject(new Error(`cannot remove ${m.id}\nsecond line`));
      removed.push(m.id);
      return Promise.resolve();
    },
  };
}

Deno.test("gcTarget removes expired unknown workspaces and keeps the rest, saying why", async () => {
  const scan: TargetScan = {
    target: "u@h:22",
    root: "/build",
    markers: [
      marker("old", PAST),
      marker("fresh", FUTURE),
      marker("forever", null),
      marker("mine", PAST),
      marker("gone-here", PAST),
    ],
    ignored: [{ workspace: "/build/sbx-x", reason: "no .sandboxer.json marker" }],
  };
  const reaper = fakeReaper(scan);
  const journal = {
    list: () => Promise.resolve([record("mine", "ready"), record("gone-here", "destroyed")]),
  };
  const report = await gcTarget({ journal, extension: reaper, config: {}, now: NOW });
  assert.deepEqual(reaper.removed, ["old", "gone-here"]);
  assert.deepEqual(report.removed.map((r) => [r.id, r.reason]), [
    ["old", `expired at ${PAST}`],
    ["gone-here", `expired at ${PAST}`],
  ]);
  assert.deepEqual(report.kept.map((k) => [k.id, k.reason]), [
    ["fresh", `it expires at ${FUTURE}`],
    ["forever", "it has no expiry"],
    ["mine", "this machine's journal has it (ready); plain gc and destroy handle it"],
  ]);
  assert.deepEqual(report.ignored, scan.ignored);
  assert.deepEqual(report.failed, []);
  assert.equal(report.target, "u@h:22");
  assert.equal(report.root, "/build");
});

Deno.test("gcTarget reports a failed removal with a one-line error and goes on", async () => {
  const scan: TargetScan = {
    target: "u@h:22",
    root: "/build",
    markers: [marker("a", PAST), marker("b", PAST)],
    ignored: [],
  };
  const reaper = fakeReaper(scan, new Set(["a"]));
  const journal = { list: () => Promise.resolve([]) };
  const report = await gcTarget({ journal, extension: reaper, config: {}, now: NOW });
  assert.deepEqual(report.failed.map((f) => [f.id, f.error]), [["a", "cannot remove a"]]);
  assert.deepEqual(report.removed.map((r) => r.id), ["b"]);
});

Deno.test("gcTarget treats expiry exactly at now as expired", async () => {
  const scan: TargetScan = {
    target: "u@h:22",
    root: "/build",
    markers: [marker("edge", NOW.toISOString())],
    ignored: [],
  };
  const reaper = fakeReaper(scan);
  await gcTarget({
    journal: { list: () => Promise.resolve([]) },
    extension: reaper,
    config: {},
    now: NOW,
  });
  assert.deepEqual(reaper.removed, ["edge"]);
});

Deno.test("gcTarget stops before removing anything once aborted", async () => {
  const scan: TargetScan = {
    target: "u@h:22",
    root: "/b",
    markers: [marker("a", PAST)],
    ignored: [],
  };
  const reaper = fakeReaper(scan);
  const controller = new AbortController();
  controller.abort(new Error("stop"));
  await assert.rejects(
    gcTarget({
      journal: { list: () => Promise.resolve([]) },
      extension: reaper,
      config: {},
      now: NOW,
      signal: controller.signal,
    }),
    /stop/,
  );
  assert.deepEqual(reaper.removed, []);
});

Deno.test("gcTarget: nonces tell this machine's sandbox from another's of the same name", async () => {
  const scan: TargetScan = {
    target: "u@h:22",
    root: "/build",
    markers: [
      marker("same", PAST, { nonce: "1".repeat(32) }),
      marker("other", PAST, { nonce: "2".repeat(32) }),
      marker("old", PAST, { nonce: null }),
      marker("mine-old", PAST, { nonce: null }),
    ],
    ignored: [],
  };
  const reaper = fakeReaper(scan);
  const journal = {
    list: () =>
      Promise.resolve([
        record("same", "ready", "1".repeat(32)),
        record("other", "ready", "9".repeat(32)),
        record("mine-old", "ready"),
      ]),
  };
  const report = await gcTarget({ journal, extension: reaper, config: {}, now: NOW });
  // "other" has the same name as a sandbox here, but another nonce: it is another machine's.
  assert.deepEqual(reaper.removed, ["other"]);
  assert.deepEqual(report.kept.map((k) => [k.id, k.reason]), [
    ["same", "this machine's journal has it (ready); plain gc and destroy handle it"],
    [
      "old",
      "its marker has no creation nonce (made by an older sandboxer); only a destroy of its own record removes it",
    ],
    ["mine-old", "this machine's journal has it (ready); plain gc and destroy handle it"],
  ]);
});

Deno.test("gcTarget finishes tombstones whatever their expiry, unless the journal has them", async () => {
  const scan: TargetScan = {
    target: "u@h:22",
    root: "/build",
    markers: [
      marker("half", FUTURE, { tombstone: true, workspace: "/build/.sbx-half.tomb-x" }),
      marker("forever", null, { tombstone: true, workspace: "/build/.sbx-forever.tomb-x" }),
      marker("busy", null, { tombstone: true, workspace: "/build/.sbx-busy.tomb-x" }),
    ],
    ignored: [],
  };
  const reaper = fakeReaper(scan);
  const journal = { list: () => Promise.resolve([record("busy", "destroying")]) };
  const report = await gcTarget({ journal, extension: reaper, config: {}, now: NOW });
  assert.deepEqual(reaper.removed, ["half", "forever"]);
  assert.deepEqual(
    report.removed.map((r) => r.reason),
    ["a removal that was cut short (tombstone)", "a removal that was cut short (tombstone)"],
  );
  assert.deepEqual(report.kept.map((k) => k.id), ["busy"]);
});
