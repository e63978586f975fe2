// The journal's ownership rules, heartbeats and housekeeping, on a real state directory. Two
// Journal handles on one directory behave like two processes: each has its own owner token.
import assert from "node:assert/strict";
import type { SandboxRecord } from "../../mod.ts";
import { JournalError, OwnershipLostError, SandboxStateError } from "../../errors.ts";
import { Journal } from "../../src/sandbox/journal.ts";
import { listDir, makeHeartbeatsStale, tempDir } from "../helpers.ts";

function record(id: string, status: SandboxRecord["status"] = "creating"): SandboxRecord {
  const now = new Date().toISOString();
  return {
    id,
    status,
    profile: "profile.p",
    profile_file: "/p.yaml",
    extension: "ext.local-dir",
    workspace: null,
    handle: null,
    created_at: now,
    updated_at: now,
    expires_at: null,
    step: "create",
    error: null,
    sync: { exclude: [], gitignore: true },
    owner: { pid: 0, host: "h", user: "u" },
  };
}

Deno.test("each journal handle has its own random owner token, not the pid", () => {
  const a = new Journal("/nonexistent");
  const b = new Journal("/nonexistent");
  assert.match(a.token, /^[0-9a-f]{16}$/);
  assert.notEqual(a.token, b.token);
  assert.notEqual(a.token, String(Deno.pid));
  assert.equal(a.owner.pid, Deno.pid);
});

Deno.test("only the owner changes a record; a reused id is out of the old owner's reach", async () => {
  await using tmp = await tempDir();
  const creator = new Journal(tmp.path);
  const collector = new Journal(tmp.path);
  const reuser = new Journal(tmp.path);
  const inserted = await creator.insert(record("box"));
  assert.equal(inserted.owner.token, creator.token, "insert stamps the owner's token");
  await creator.update("box", { step: "setup" }, { expect: ["creating"] });

  await assert.rejects(collector.update("box", { status: "ready" }), OwnershipLostError);
  const { claimed } = await collector.claim("box", () => Promise.resolve({ status: "destroying" }));
  assert.ok(claimed);
  await collector.update("box", { status: "destroyed" }, { expect: ["destroying"] });

  // The stopped creator wakes up: it must not write `ready` over `destroyed`.
  await assert.rejects(
    creator.update("box", { status: "ready" }, { expect: ["creating"] }),
    (error: unknown) =>
      error instanceof OwnershipLostError && /taken over .* is destroyed now/.test(error.message),
  );
  assert.equal((await creator.get("box")).status, "destroyed");
  assert.deepEqual(await listDir(`${tmp.path}/sandboxes`), ["box.json"], "no lock left behind");

  // A new sandbox with the same id: still not the old creator's to change.
  await reuser.insert(record("box"));
  await assert.rejects(creator.update("box", { status: "ready" }), OwnershipLostError);
  const now = await reuser.get("box");
  assert.equal(now.status, "creating");
  assert.equal(now.owner.token, reuser.token);
});

Deno.test("update checks the state too; claim decides under the lock", async () => {
  await using tmp = await tempDir();
  const journal = new Journal(tmp.path);
  await journal.insert(record("s1", "ready"));
  await assert.rejects(
    journal.update("s1", { status: "ready" }, { expect: ["creating"] }),
    SandboxStateError,
  );
  const other = new Journal(tmp.path);
  const left = await other.claim("s1", () => Promise.resolve(undefined));
  assert.equal(left.claimed, false);
  assert.equal(left.record.owner.token, journal.token, "a declined claim changes nothing");
  await assert.rejects(
    other.claim("s1", () => Promise.reject(new Error("refused"))),
    /refused/,
  );
});

Deno.test("heartbeats are per owner; staleness is the file's mtime", async () => {
  await using tmp = await tempDir();
  const a = new Journal(tmp.path);
  const b = new Journal(tmp.path);
  const inserted = await a.insert(record("hb"));
  {
    await using _beat = await a.heartbeat("hb");
    await using _nested = await a.heartbeat("hb");
    await using _other = await b.heartbeat("hb");
    assert.equal(await a.ownerAlive(inserted), true);
    assert.deepEqual(
      (await listDir(`${tmp.path}/sandboxes`)).filter((f) => f.endsWith(".alive")).sort(),
      [`hb.${a.token}.alive`, `hb.${b.token}.alive`].sort(),
    );
    assert.equal(await makeHeartbeatsStale(tmp.path, "hb"), 2);
    assert.equal(await a.ownerAlive(inserted), false, "an hour-old heartbeat is stale");
  }
  assert.deepEqual(
    (await listDir(`${tmp.path}/sandboxes`)).filter((f) => f.endsWith(".alive")),
    [],
    "each owner removes its own heartbeat when done",
  );
});

Deno.test("use() marks a ready sandbox in use, refuses any other state", async () => {
  await using tmp = await tempDir();
  const journal = new Journal(tmp.path);
  await journal.insert({ ...record("u1", "ready"), handle: { workspace: "/w" } });
  await journal.insert(record("u2", "creating"));
  {
    await using use = await journal.use("u1", "exec", "run commands in");
    assert.equal(use.record.id, "u1");
    const users = await new Journal(tmp.path).users("u1");
    assert.equal(users.length, 1);
    assert.equal(users[0].what, "exec");
    assert.equal(users[0].pid, Deno.pid);
    assert.deepEqual(await journal.users("u2"), []);
  }
  assert.deepEqual(await journal.users("u1"), [], "the use ends with its disposable");
  await assert.rejects(journal.use("u2", "exec", "run commands in"), /is creating/);
});

Deno.test("destroyed records leave no lock or stale heartbeat; prune() tidies older leftovers", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/sandboxes`;
  const journal = new Journal(tmp.path);
  await journal.insert(record("gone"));
  await journal.insert(record("live", "ready"));
  await journal.update("gone", { status: "destroyed" });
  assert.deepEqual(await listDir(dir), ["gone.json", "live.json", "live.lock"]);

  // What older versions (or a crash) left: locks of destroyed or missing records, old heartbeats.
  for (const name of ["gone.lock", "orphan.lock", "gone.alive", "gone.0123456789abcdef.inuse"]) {
    await Deno.writeTextFile(`${dir}/${name}`, "");
  }
  assert.equal(await makeHeartbeatsStale(tmp.path, "gone"), 2);
  assert.ok(await journal.prune() >= 4);
  assert.deepEqual(await listDir(dir), ["gone.json", "live.json", "live.lock"]);
});

Deno.test("a corrupt record is reported, the others listed; get() says what is wrong", async () => {
  await using tmp = await tempDir();
  const journal = new Journal(tmp.path);
  await journal.insert(record("good"));
  await Deno.writeTextFile(`${tmp.path}/sandboxes/bad.json`, "{not json");
  await Deno.writeTextFile(`${tmp.path}/sandboxes/other.json`, JSON.stringify(record("good")));
  const reported: JournalError[] = [];
  const records = await journal.list({ onCorrupt: (e) => reported.push(e) });
  assert.deepEqual(records.map((r) => r.id), ["good"]);
  assert.equal(reported.length, 2);
  await assert.rejects(journal.list(), JournalError, "without onCorrupt the error is thrown");
  await assert.rejects(
    journal.get("bad"),
    (e: unknown) =>
      e instanceof JournalError && /bad\.json is corrupt: it is not valid JSON/.test(e.message) &&
      /move it aside/.test(e.message),
  );
  await assert.rejects(journal.get("other"), /names sandbox "good", not "other"/);
});

Deno.test("records are mode 0600 in a 0700 directory", async () => {
  await using tmp = await tempDir();
  const journal = new Journal(`${tmp.path}/state`);
  await journal.insert(record("m1"));
  await journal.update("m1", { status: "ready" });
  const mode = async (path: string) => ((await Deno.stat(path)).mode ?? 0) & 0o777;
  assert.equal(await mode(`${tmp.path}/state/sandboxes/m1.json`), 0o600);
  assert.equal(await mode(`${tmp.path}/state/sandboxes`), 0o700);
});
