// The workspace scripts, run by a real `sh` on real directory trees in a temp dir (the remote side
// is a POSIX shell too): what they accept, what they refuse, and that a refusal touches nothing.
// The isolated-host tests (tests/vm_packer/) run the same scripts over SSH on a host of their own.
import assert from "node:assert/strict";
import {
  MAKE_WORKSPACE,
  MARKER_FILE,
  PROCESS_MARK,
  REMOVE_WORKSPACE,
  SCRIPT_EXIT,
  tombstoneName,
  WORKSPACE_EXEC,
  WORKSPACE_RSYNC,
} from "./remote_scripts.ts";
import { newNonce } from "./workspace_path.ts";
import { exists } from "../../core/fs.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function sh(script: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const out = await new Deno.Command("sh", {
    args: ["-c", script, "sh", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** A root with one workspace made by MAKE_WORKSPACE, holding a file. */
async function fixture(id = "box") {
  const dir = await Deno.makeTempDir({ prefix: "sbx-scripts-" });
  const root = `${dir}/build`;
  await Deno.mkdir(root);
  const nonce = newNonce();
  const ws = `${root}/sbx-${id}`;
  const made = await sh(MAKE_WORKSPACE, [root, ws, markerJson(id, nonce)]);
  assert.equal(made.code, 0, made.stderr);
  await Deno.writeTextFile(`${ws}/work.txt`, "work\n");
  return {
    dir,
    root,
    ws,
    id,
    nonce,
    precious: async () => {
      await Deno.mkdir(`${dir}/precious`, { recursive: true });
      await Deno.writeTextFile(`${dir}/precious/thesis.tex`, "keep\n");
      return `${dir}/precious`;
    },
    entries: async () => (await Array.fromAsync(Deno.readDir(root))).map((e) => e.name).sort(),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}

function markerJson(id: string, nonce: string | null): string {
  const fields = nonce === null
    ? { id, profile: "profile.p", creator: "me@here", expires_at: null }
    : { id, nonce, profile: "profile.p", creator: "me@here", expires_at: null };
  return JSON.stringify(fields);
}

Deno.test("MAKE_WORKSPACE claims the path with mkdir and refuses anything already there", async () => {
  await using f = await fixture();
  assert.equal(
    (await Deno.readTextFile(`${f.ws}/${MARKER_FILE}`)).trim(),
    markerJson(f.id, f.nonce),
  );
  assert.equal(((await Deno.stat(f.ws)).mode ?? 0) & 0o777, 0o700);
  const again = await sh(MAKE_WORKSPACE, [f.root, f.ws, markerJson(f.id, newNonce())]);
  assert.equal(again.code, SCRIPT_EXIT.exists);
  assert.equal(await Deno.readTextFile(`${f.ws}/work.txt`), "work\n");
  await Deno.symlink(await f.precious(), `${f.root}/sbx-link`);
  const onLink = await sh(MAKE_WORKSPACE, [f.root, `${f.root}/sbx-link`, markerJson("link", "x")]);
  assert.equal(onLink.code, SCRIPT_EXIT.exists);
  assert.equal(await exists(`${f.dir}/precious/${MARKER_FILE}`), false);
});

Deno.test("WORKSPACE_EXEC runs the program in the checked workspace, marked, after one byte", async () => {
  await using f = await fixture();
  const run = await sh(WORKSPACE_EXEC, [
    f.ws,
    f.id,
    f.nonce,
    "sh",
    "-c",
    `pwd; echo "$${PROCESS_MARK}"; exit 7`,
  ]);
  assert.equal(run.code, 7);
  assert.equal(run.stdout, `\x06${f.ws}\n${f.id}:${f.nonce}\n`);
});

// Each case damages a fresh workspace; every verb's wrapper must refuse it with the given code
// before running anything, and removal must leave everything that is not provably ours.
const REFUSALS: {
  name: string;
  damage: (f: Awaited<ReturnType<typeof fixture>>) => Promise<void>;
  code: number;
  removal: number;
}[] = [
  {
    name: "the workspace is a symlink to a precious directory",
    damage: async (f) => {
      await Deno.rename(f.ws, `${f.dir}/old`);
      await Deno.symlink(await f.precious(), f.ws);
    },
    code: SCRIPT_EXIT.notOurs,
    removal: SCRIPT_EXIT.notOurs,
  },
  {
    name: "the marker names another sandbox",
    damage: (f) => Deno.writeTextFile(`${f.ws}/${MARKER_FILE}`, markerJson("other", newNonce())),
    code: SCRIPT_EXIT.notOurs,
    removal: SCRIPT_EXIT.notOurs,
  },
  {
    name: "the marker holds this id with another nonce",
    damage: (f) => Deno.writeTextFile(`${f.ws}/${MARKER_FILE}`, markerJson(f.id, newNonce())),
    code: SCRIPT_EXIT.otherNonce,
    removal: SCRIPT_EXIT.otherNonce,
  },
  {
    name: "the marker is missing",
    damage: (f) => Deno.remove(`${f.ws}/${MARKER_FILE}`),
    code: SCRIPT_EXIT.noMarker,
    removal: SCRIPT_EXIT.noMarker,
  },
  {
    name: "the marker is a symlink to a good marker",
    damage: async (f) => {
      await Deno.rename(`${f.ws}/${MARKER_FILE}`, `${f.dir}/good-marker`);
      await Deno.symlink(`${f.dir}/good-marker`, `${f.ws}/${MARKER_FILE}`);
    },
    code: SCRIPT_EXIT.notOurs,
    removal: SCRIPT_EXIT.notOurs,
  },
  {
    name: "the marker is a FIFO (nothing may block on it)",
    damage: async (f) => {
      await Deno.remove(`${f.ws}/${MARKER_FILE}`);
      const made = await new Deno.Command("mkfifo", { args: [`${f.ws}/${MARKER_FILE}`] }).output();
      assert.equal(made.code, 0);
    },
    code: SCRIPT_EXIT.notOurs,
    removal: SCRIPT_EXIT.notOurs,
  },
  {
    name: "the marker is huge and not ours",
    damage: (f) => Deno.writeTextFile(`${f.ws}/${MARKER_FILE}`, " ".repeat(1 << 20)),
    code: SCRIPT_EXIT.notOurs,
    removal: SCRIPT_EXIT.notOurs,
  },
  {
    name: "the workspace is a file",
    damage: async (f) => {
      await Deno.remove(f.ws, { recursive: true });
      await Deno.writeTextFile(f.ws, "a file\n");
    },
    code: SCRIPT_EXIT.notOurs,
    removal: SCRIPT_EXIT.notOurs,
  },
];

for (const refusal of REFUSALS) {
  Deno.test(`workspace scripts refuse when ${refusal.name}`, async () => {
    await using f = await fixture();
    await refusal.damage(f);
    const precious = await exists(`${f.dir}/precious/thesis.tex`);
    const before = await Array.fromAsync(Deno.readDir(f.dir));
    for (const script of [WORKSPACE_EXEC, WORKSPACE_RSYNC]) {
      const run = await sh(script, [f.ws, f.id, f.nonce, "touch", "ran"]);
      assert.equal(run.code, refusal.code, run.stdout + run.stderr);
      for (const place of [f.ws, `${f.dir}/precious`, f.dir]) {
        assert.equal(await exists(`${place}/ran`), false, `${place}/ran`);
      }
    }
    const removal = await sh(REMOVE_WORKSPACE, [f.ws, f.id, f.nonce]);
    assert.equal(removal.code, refusal.removal, removal.stderr);
    assert.ok(await exists(f.ws), "what is at the workspace's path stays");
    assert.equal((await Array.fromAsync(Deno.readDir(f.dir))).length, before.length);
    if (precious) assert.equal(await Deno.readTextFile(`${f.dir}/precious/thesis.tex`), "keep\n");
  });
}

Deno.test("workspace scripts say 'missing' for a removed workspace, and removal is then a no-op", async () => {
  await using f = await fixture();
  await Deno.remove(f.ws, { recursive: true });
  const run = await sh(WORKSPACE_RSYNC, [f.ws, f.id, f.nonce, "mkdir", "-p", f.ws]);
  assert.equal(run.code, SCRIPT_EXIT.missing);
  assert.match(run.stderr, /^sandboxer-workspace-check: 95 .* does not exist$/m);
  assert.equal(await exists(f.ws), false, "not recreated");
  assert.equal((await sh(REMOVE_WORKSPACE, [f.ws, f.id, f.nonce])).code, 0);
  assert.equal(
    (await sh(REMOVE_WORKSPACE, [`${f.dir}/nothing/sbx-${f.id}`, f.id, f.nonce])).code,
    0,
  );
});

Deno.test("a handle's path must be <root>/sbx-<id> of the id given", async () => {
  await using f = await fixture();
  for (const script of [WORKSPACE_EXEC, REMOVE_WORKSPACE]) {
    const run = await sh(script, [f.ws, "other", f.nonce, "true"]);
    assert.equal(run.code, SCRIPT_EXIT.notOurs);
  }
  assert.equal(await Deno.readTextFile(`${f.ws}/work.txt`), "work\n");
});

Deno.test("REMOVE_WORKSPACE removes a marked workspace through a tombstone, read-only dirs included", async () => {
  await using f = await fixture();
  await Deno.mkdir(`${f.ws}/ro/deeper`, { recursive: true });
  await Deno.writeTextFile(`${f.ws}/ro/deeper/f`, "x");
  await Deno.chmod(`${f.ws}/ro/deeper`, 0o555);
  await Deno.chmod(`${f.ws}/ro`, 0o555);
  await Deno.symlink(await f.precious(), `${f.ws}/escape`);
  const removal = await sh(REMOVE_WORKSPACE, [f.ws, f.id, f.nonce]);
  assert.equal(removal.code, 0, removal.stderr);
  assert.deepEqual(await f.entries(), []);
  assert.equal(await Deno.readTextFile(`${f.dir}/precious/thesis.tex`), "keep\n");
});

Deno.test("REMOVE_WORKSPACE finishes a tombstone a cut-short removal left, marker last", async () => {
  await using f = await fixture();
  const tomb = `${f.root}/${tombstoneName(f.id, f.nonce)}`;
  await Deno.rename(f.ws, tomb);
  // A tombstone whose nonce is someone else's is not ours to finish.
  const stranger = await sh(REMOVE_WORKSPACE, [f.ws, f.id, newNonce()]);
  assert.equal(stranger.code, 0, stranger.stderr);
  assert.ok(await exists(`${tomb}/work.txt`));
  const removal = await sh(REMOVE_WORKSPACE, [f.ws, f.id, f.nonce]);
  assert.equal(removal.code, 0, removal.stderr);
  assert.deepEqual(await f.entries(), []);
});

Deno.test("REMOVE_WORKSPACE refuses a tombstone that is a symlink or lost its marker", async () => {
  await using f = await fixture();
  const tomb = `${f.root}/${tombstoneName(f.id, f.nonce)}`;
  await Deno.symlink(await f.precious(), tomb);
  const linked = await sh(REMOVE_WORKSPACE, [f.ws, f.id, f.nonce]);
  assert.equal(linked.code, SCRIPT_EXIT.notOurs, linked.stderr);
  assert.equal(await Deno.readTextFile(`${f.dir}/precious/thesis.tex`), "keep\n");
  assert.ok(await exists(`${f.ws}/work.txt`), "the workspace is not renamed onto the link");
  await Deno.remove(tomb);
  await Deno.mkdir(tomb);
  await Deno.writeTextFile(`${tomb}/stray`, "x");
  const unmarked = await sh(REMOVE_WORKSPACE, [f.ws, f.id, f.nonce]);
  assert.equal(unmarked.code, SCRIPT_EXIT.notOurs, unmarked.stderr);
  assert.ok(await exists(`${tomb}/stray`));
});

Deno.test("REMOVE_WORKSPACE: an empty unmarked directory goes, a marker without nonce needs an old handle", async () => {
  await using f = await fixture();
  await Deno.remove(f.ws, { recursive: true });
  await Deno.mkdir(f.ws);
  assert.equal((await sh(REMOVE_WORKSPACE, [f.ws, f.id, f.nonce])).code, 0);
  assert.deepEqual(await f.entries(), []);

  // Made before nonces: only a handle without a nonce matches it.
  await Deno.mkdir(f.ws);
  await Deno.writeTextFile(`${f.ws}/${MARKER_FILE}`, markerJson(f.id, null) + "\n");
  await Deno.writeTextFile(`${f.ws}/work.txt`, "old\n");
  const byNew = await sh(REMOVE_WORKSPACE, [f.ws, f.id, f.nonce]);
  assert.equal(byNew.code, SCRIPT_EXIT.otherNonce, byNew.stderr);
  assert.ok(await exists(`${f.ws}/work.txt`));
  const byOld = await sh(REMOVE_WORKSPACE, [f.ws, f.id, ""]);
  assert.equal(byOld.code, 0, byOld.stderr);
  assert.deepEqual(await f.entries(), []);
});

Deno.test("REMOVE_WORKSPACE ends the sandbox's processes (TERM, then KILL) and no others", async () => {
  await using f = await fixture();
  const mark = { [PROCESS_MARK]: `${f.id}:${f.nonce}` };
  const spawn = (args: string[], env: Record<string, string>, cwd: string) =>
    new Deno.Command("sh", { args, env, cwd, stdout: "null", stderr: "null" }).spawn();
  // Marked, elsewhere; marked and deaf to TERM; unmarked but working in the workspace; a stranger.
  const marked = spawn(["-c", "exec sleep 300"], mark, f.dir);
  const stubborn = spawn(["-c", "trap '' TERM; sleep 300 & wait; sleep 300"], mark, f.dir);
  const inside = spawn(["-c", "exec sleep 300"], {}, f.ws);
  const other = spawn(["-c", "exec sleep 300"], { [PROCESS_MARK]: `${f.id}:${newNonce()}` }, f.dir);
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const removal = await sh(REMOVE_WORKSPACE, [f.ws, f.id, f.nonce]);
    assert.equal(removal.code, 0, removal.stderr);
    assert.deepEqual(await f.entries(), []);
    assert.equal((await marked.status).signal, "SIGTERM");
    assert.equal((await stubborn.status).signal, "SIGKILL");
    assert.equal((await inside.status).signal, "SIGTERM");
    const alive = await Promise.race([
      other.status.then(() => false),
      new Promise((resolve) => setTimeout(() => resolve(true), 300)),
    ]);
    assert.equal(alive, true, "another sandbox's process is left alone");
  } finally {
    for (const child of [marked, stubborn, inside, other]) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.status;
    }
  }
});
