// The target's disk fills up during a sync: the workspace root is a 2 MiB tmpfs and the repo
// holds 3 MiB of random data. The CLI must fail with a clear error naming the full disk, leave
// everything outside the workspace untouched (a file in the root and a neighbouring sandbox's
// workspace), and `destroy` must then remove the workspace and give the space back.
import assert from "node:assert/strict";
import { startNetnsHost } from "../harness/netns.ts";
import { runSandboxer } from "../helpers.ts";
import { FAST, faultTest, snapshot, waitForRecord, writeRepo } from "./fault_helpers.ts";

async function usedKiB(path: string): Promise<number> {
  const out = await new Deno.Command("df", { args: ["-k", "--output=used", path], stdout: "piped" })
    .output();
  return Number(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1));
}

faultTest(
  "faults: remote disk full during sync: clear error, nothing outside the workspace touched",
  async () => {
    await using host = await startNetnsHost({ tmpfsSize: "2m" });
    const profile = await host.profile("p");
    const state = host.env.SANDBOXER_HOME;

    // Things that must survive: a file in the root and another sandbox's workspace.
    const neighbour = await runSandboxer(
      ["create", "-p", profile, "--name", "neighbour", ...FAST],
      host.env,
    );
    assert.equal(neighbour.code, 0, neighbour.stderr);
    await Deno.writeTextFile(`${host.root}/KEEP`, "not a workspace\n");
    await Deno.writeTextFile(`${host.root}/sbx-neighbour/work.txt`, "neighbour's work\n");
    const before = await snapshot(host.root, (name) => name === "sbx-full");
    const usedBefore = await usedKiB(host.root);

    const repo = `${host.dir}/repo`;
    await writeRepo(repo, 3, 1024 * 1024);
    const started = performance.now();
    const result = await runSandboxer(
      ["create", "-p", profile, "--name", "full", "--repo", repo, ...FAST],
      host.env,
    );
    assert.ok(performance.now() - started < 30_000, "no hang");
    assert.equal(result.code, 1, result.stderr);
    const error = result.stderr.trim().split("\n").at(-1) ?? "";
    // rsync sometimes loses the host's own message; either way the disk is named as the cause.
    assert.match(
      error,
      /^sandboxer: error: Workspace \S+\/sbx-full could not be written on \S+.*the disk is (most likely )?full/,
    );
    assert.match(error, /free space .*sync\.exclude/);
    const record = await waitForRecord(state, "full", (r) => r.status !== "creating", "fail");
    assert.equal(record.status, "failed");
    assert.equal(record.step, "sync");
    assert.equal(record.handle?.workspace, `${host.root}/sbx-full`);

    assert.deepEqual(await snapshot(host.root, (name) => name === "sbx-full"), before);

    const destroyed = await runSandboxer(["destroy", "full"], host.env);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.deepEqual(await host.rootEntries(), ["KEEP", "sbx-neighbour"]);
    assert.deepEqual(await snapshot(host.root), before);
    assert.ok(await usedKiB(host.root) <= usedBefore + 4, "the space is given back");

    const last = await runSandboxer(["destroy", "neighbour"], host.env);
    assert.equal(last.code, 0, last.stderr);
    assert.deepEqual(await host.rootEntries(), ["KEEP"]);
  },
);
