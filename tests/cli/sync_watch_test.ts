// `sandboxer sync ID --watch` against a real sshd: a new file reaches the workspace on its own,
// a change to a git-ignored or profile-excluded path starts no sync, and SIGINT ends the watch
// with exit 0 and no process left behind.
import assert from "node:assert/strict";
import { exists, processTable, spawnSandboxer } from "../helpers.ts";
import { createOk, startTestVm } from "../harness/test_vm.ts";
import { run } from "../../src/process/run.ts";
import { watchSync } from "../../src/cli/watch.ts";
import type { SyncReport } from "../../src/core/types.ts";

/** Collects a child's stdout lines as they come. */
function lineReader(child: Deno.ChildProcess) {
  const lines: string[] = [];
  const done = (async () => {
    let text = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const parts = text.split("\n");
      text = parts.pop()!;
      lines.push(...parts);
    }
  })();
  return { lines, done };
}

/** Wait until `check` holds, or fail after `ms`. */
async function until(what: string, check: () => boolean | Promise<boolean>, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const SYNC_LINE = /^synced \d+ file\(s\), \d+ deleted, in \d+ ms$/;

Deno.test("sync --watch: changes are synced, ignored paths are not, SIGINT exits 0", async () => {
  await using vm = await startTestVm();
  const repo = `${vm.dir}/repo`;
  await Deno.mkdir(`${repo}/build`, { recursive: true });
  await run(["git", "init", "-q", repo]);
  await Deno.writeTextFile(`${repo}/.gitignore`, "build/\n*.tmp\n");
  await Deno.writeTextFile(`${repo}/first.txt`, "first\n");
  const profile = await vm.profile("p", { extra: ["sync:", '  exclude: ["*.secret"]'] });
  const { id, workspace } = await createOk(vm, ["-p", profile, "--name", "wt1", "--repo", repo]);
  assert.ok(workspace);
  const child = await spawnSandboxer(["sync", id, "--repo", repo, "--watch"], vm.env);
  const out = lineReader(child);
  const stderr = new Response(child.stderr).text();
  try {
    await until("the first sync line", () => out.lines.length >= 1);
    assert.match(out.lines[0], SYNC_LINE);
    // The watcher opens right after the first line; give it a moment to be in place.
    await new Promise((resolve) => setTimeout(resolve, 500));

    await Deno.writeTextFile(`${repo}/second.txt`, "second\n");
    await until("second.txt in the workspace", () => exists(`${workspace}/second.txt`));
    assert.equal(await Deno.readTextFile(`${workspace}/second.txt`), "second\n");
    await until("the second sync line", () => out.lines.length >= 2);
    assert.match(out.lines[1], /^synced 1 file\(s\), 0 deleted, in \d+ ms$/);

    // A deletion is a change too: rsync's --delete takes the file off the workspace.
    await Deno.remove(`${repo}/second.txt`);
    await until(
      "second.txt gone from the workspace",
      async () => !(await exists(`${workspace}/second.txt`)),
    );
    await until("the deletion's sync line", () => out.lines.length >= 3);
    assert.match(out.lines[2], /^synced 0 file\(s\), 1 deleted, in \d+ ms$/);

    // Git-ignored and excluded paths: wait well past the debounce, no sync line may follow.
    await Deno.writeTextFile(`${repo}/build/out.o`, "ignored\n");
    await Deno.writeTextFile(`${repo}/scratch.tmp`, "ignored\n");
    await Deno.writeTextFile(`${repo}/key.secret`, "excluded\n");
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assert.equal(out.lines.length, 3, out.lines.join("\n"));
    assert.equal(await exists(`${workspace}/scratch.tmp`), false);

    // A burst of changes is one sync, not one per file.
    for (let i = 0; i < 5; i++) await Deno.writeTextFile(`${repo}/burst-${i}.txt`, `${i}\n`);
    await until("the burst in the workspace", () => exists(`${workspace}/burst-4.txt`));
    await until("the burst's sync line", () => out.lines.length >= 4);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(out.lines.length, 4, out.lines.join("\n"));
    assert.match(out.lines[3], /^synced 5 file\(s\)/);
  } finally {
    child.kill("SIGINT");
  }
  const status = await child.status;
  await out.done;
  const errors = await stderr;
  assert.equal(status.code, 0, errors);
  assert.match(errors, /watch stopped/);
  // The CLI and any rsync it started name the repo on their command lines.
  assert.deepEqual((await processTable()).filter((p) => p.args.includes(repo)), []);

  // --json: each sync is one JSON report with its duration.
  const jsonChild = await spawnSandboxer(["sync", id, "--repo", repo, "--watch", "--json"], vm.env);
  const jsonOut = lineReader(jsonChild);
  const jsonErrors = new Response(jsonChild.stderr).text();
  try {
    await until("the first JSON line", () => jsonOut.lines.length >= 1);
  } finally {
    jsonChild.kill("SIGINT");
  }
  assert.equal((await jsonChild.status).code, 0, await jsonErrors);
  await jsonOut.done;
  const first = JSON.parse(jsonOut.lines[0]);
  assert.equal(first.files, 0);
  assert.equal(typeof first.ms, "number");
  assert.equal((await vm.cli(["destroy", id])).code, 0);
});

Deno.test("sync --watch loop: changes during a sync schedule exactly one more; a failure is reported and the watch goes on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sbx-watch-" });
  const stop = new AbortController();
  const started: number[] = [];
  const failures: unknown[] = [];
  let inSync = false;
  let overlapped = false;
  const report: SyncReport = { method: "rsync", files: 0, deleted: 0, bytes: 0 };
  try {
    const watching = watchSync({
      repo: dir,
      settings: { gitignore: false, exclude: [] },
      debounceMs: 100,
      sync: async () => {
        overlapped ||= inSync;
        inSync = true;
        started.push(Date.now());
        // The third sync fails: the watch reports it and keeps going.
        if (started.length === 3) {
          inSync = false;
          throw new Error("connection lost");
        }
        await new Promise((resolve) => setTimeout(resolve, started.length === 2 ? 1_500 : 0));
        inSync = false;
        return report;
      },
      onSync: () => {},
      onError: (error) => failures.push(error),
      signal: stop.signal,
    });
    await until("the first sync", () => started.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the watcher opens
    await Deno.writeTextFile(`${dir}/a.txt`, "a");
    await until("the second sync", () => started.length === 2);
    // Three separate changes while the second (slow) sync runs.
    for (const name of ["b", "c", "d"]) {
      await Deno.writeTextFile(`${dir}/${name}.txt`, name);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    await until("the one sync that follows", () => started.length === 3, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(started.length, 3, "exactly one more sync for all changes during the slow one");
    assert.equal(overlapped, false, "never two syncs at once");
    assert.deepEqual(failures.map((e) => (e as Error).message), ["connection lost"]);
    await Deno.writeTextFile(`${dir}/e.txt`, "e");
    await until("a sync after the failure", () => started.length === 4, 5_000);
    stop.abort();
    await watching;
  } finally {
    stop.abort();
    await Deno.remove(dir, { recursive: true });
  }
});
