// The target misbehaves under a running CLI: its sshd is killed mid-create, mid-sync and
// mid-exec, or its link is cut mid-sync and mid-exec. Each time the CLI must fail within its
// configured timeout (no hang), the record must say which step failed and keep the handle, and
// once the host is back `destroy` must remove exactly what was made — nothing else in the root.
//
// Hosts are network namespaces (tests/harness/netns.ts). A rate limit on the link (tc tbf)
// stretches the connect and workspace steps to seconds so the fault lands inside them.
import assert from "node:assert/strict";
import { type NetnsHost, startNetnsHost } from "../harness/netns.ts";
import { runSandboxer } from "../helpers.ts";
import {
  type CliOutcome,
  FAST,
  faultTest,
  readRecord,
  type RecordJson,
  sleep,
  spawnCli,
  until,
  waitForRecord,
  writeRepo,
} from "./fault_helpers.ts";

/** Slack for process start-up and exit on a busy CI machine. */
const SLACK_MS = 4_000;
/** Connect 3 s (FAST), plus the pool's retries of a dropped connection (~2 s). */
const CONNECT_BOUND_MS = 3_000 + 2_000 + SLACK_MS;
/** Three missed 1 s keepalives (FAST). */
const KEEPALIVE_BOUND_MS = 3 * 1_000 + 1_000 + SLACK_MS;

/** From the fault to the CLI's own error line (process exit is not part of the bound). */
function tookSince(faultAt: number, result: CliOutcome): number {
  assert.ok(result.errorAt !== undefined, `no error line:\n${result.stderr}`);
  return result.errorAt - faultAt;
}

async function withSentinel(host: NetnsHost): Promise<void> {
  await Deno.writeTextFile(`${host.root}/KEEP`, "not a workspace\n");
}

async function assertOnlySentinelLeft(host: NetnsHost): Promise<void> {
  assert.deepEqual(await host.rootEntries(), ["KEEP"]);
  assert.equal(await Deno.readTextFile(`${host.root}/KEEP`), "not a workspace\n");
}

function assertFailedAt(record: RecordJson, step: string, workspace: string | null): void {
  assert.equal(record.status, "failed", JSON.stringify(record));
  assert.equal(record.step, step, JSON.stringify(record));
  assert.ok(record.error && !record.error.includes("\n"), `one-line error: ${record.error}`);
  if (workspace === null) assert.equal(record.handle, null);
  else assert.equal(record.handle?.workspace, workspace);
}

async function destroyOk(host: NetnsHost, id: string): Promise<void> {
  const result = await runSandboxer(["destroy", id], host.env);
  assert.equal(result.code, 0, result.stderr);
}

faultTest("faults: sshd killed mid-create (at connect, at workspace)", async (t) => {
  await using host = await startNetnsHost();
  await withSentinel(host);
  const profile = await host.profile("p");
  const state = host.env.SANDBOXER_HOME;
  for (const step of ["connect", "workspace"]) {
    await t.step(
      `killed at ${step}: fails fast, record failed at ${step}; destroy cleans`,
      async () => {
        const id = `kill-${step}`;
        // 8 kbit/s makes the handshake take ~2 s and the workspace script ~1 s: the kill lands
        // inside the step. Connect gets 10 s here because the throttled handshake needs more than 3.
        await host.throttle("8kbit");
        // No shared connection (SANDBOXER_SSH_MUX=0): the master a create launches beside its own
        // connection would share the 8 kbit/s link, doubling the handshake (8-9 s, not 4 s, here)
        // toward the 10 s connect timeout.
        const cli = await spawnCli(
          ["create", "-p", profile, "--name", id, ...FAST, "--set", "target.connect_timeout=10s"],
          { ...host.env, SANDBOXER_SSH_MUX: "0" },
        );
        await waitForRecord(state, id, (r) => r.step === step, `reach ${step}`);
        // At connect, wait for the TCP connection so the kill lands inside the SSH handshake.
        if (step === "connect") {
          await until(async () => await host.connections() > 0, "the CLI's TCP connection");
        }
        const killedAt = performance.now();
        await host.killSshd();
        const result = await cli.done;
        const took = tookSince(killedAt, result);
        assert.equal(result.code, 1, result.stderr);
        assert.ok(took < CONNECT_BOUND_MS, `took ${Math.round(took)} ms after the kill`);
        assert.match(result.stderr, /^sandboxer: error: Cannot .*(connect|exec)/m);
        await host.unthrottle();
        await host.sshd.restart();
        if (step === "connect") {
          // Nothing was made on the host: no record is left and the name is free.
          assert.equal(await readRecord(state, id), undefined);
        } else {
          const record = await waitForRecord(state, id, (r) => r.status !== "creating", "fail");
          assertFailedAt(record, step, `${host.root}/sbx-${id}`);
          await destroyOk(host, id);
        }
        await assertOnlySentinelLeft(host);
      },
    );
  }
});

faultTest("faults: sshd killed and link cut mid-sync", async (t) => {
  await using host = await startNetnsHost();
  await withSentinel(host);
  const profile = await host.profile("p");
  const state = host.env.SANDBOXER_HOME;
  const repo = `${host.dir}/repo`;
  // 1 MiB over a 256 kbit/s link takes ~30 s: the fault always hits a transfer in progress.
  await writeRepo(repo, 4, 256 * 1024);
  for (const fault of ["sshd killed", "link cut"]) {
    await t.step(
      `${fault}: fails within the timeout, record failed at sync; destroy cleans`,
      async () => {
        const id = fault === "link cut" ? "sync-cut" : "sync-kill";
        await host.throttle("256kbit");
        const cli = await spawnCli(
          ["create", "-p", profile, "--name", id, "--repo", repo, ...FAST],
          host.env,
        );
        await waitForRecord(state, id, (r) => r.step === "sync", "reach sync");
        await sleep(1_000);
        const faultAt = performance.now();
        if (fault === "link cut") await host.cut();
        else await host.killSshd();
        const result = await cli.done;
        const took = tookSince(faultAt, result);
        assert.equal(result.code, 1, result.stderr);
        assert.ok(
          took < (fault === "link cut" ? KEEPALIVE_BOUND_MS : SLACK_MS),
          `took ${Math.round(took)} ms after the fault`,
        );
        assert.match(result.stderr, /^sandboxer: error: .+/m);
        const record = await waitForRecord(state, id, (r) => r.status !== "creating", "fail");
        assertFailedAt(record, "sync", `${host.root}/sbx-${id}`);

        if (fault === "link cut") await host.restore();
        else await host.sshd.restart();
        await host.unthrottle();
        await destroyOk(host, id);
        await assertOnlySentinelLeft(host);
      },
    );
  }
});

faultTest("faults: sshd killed mid-exec (setup and exec), link cut mid-exec", async (t) => {
  await using host = await startNetnsHost();
  await withSentinel(host);
  const state = host.env.SANDBOXER_HOME;

  await t.step("sshd killed during a setup command: record failed at setup", async () => {
    const profile = await host.profile("slow", ["setup:", "  - sleep 30"]);
    const cli = await spawnCli(
      ["create", "-p", profile, "--name", "setup-kill", ...FAST],
      host.env,
    );
    await waitForRecord(state, "setup-kill", (r) => r.step === "setup", "reach setup");
    await sleep(500);
    const killedAt = performance.now();
    await host.killSshd();
    const result = await cli.done;
    const took = tookSince(killedAt, result);
    assert.equal(result.code, 1, result.stderr);
    assert.ok(took < SLACK_MS, `took ${Math.round(took)} ms after the kill`);
    assert.match(result.stderr, /connection was lost while sh ran/);
    const record = await waitForRecord(state, "setup-kill", (r) => r.status !== "creating", "fail");
    assertFailedAt(record, "setup", `${host.root}/sbx-setup-kill`);
    await host.sshd.restart();
    await destroyOk(host, "setup-kill");
    await assertOnlySentinelLeft(host);
  });

  const profile = await host.profile("p");
  const created = await runSandboxer(["create", "-p", profile, "--name", "ex", ...FAST], host.env);
  assert.equal(created.code, 0, created.stderr);

  for (const fault of ["sshd killed", "link cut"]) {
    await t.step(
      `${fault} during exec: the exec fails fast; the sandbox stays usable`,
      async () => {
        const cli = await spawnCli(
          ["exec", "ex", "--", "sh", "-c", "echo started; exec sleep 30"],
          host.env,
        );
        await cli.waitForStdout(/started/);
        const faultAt = performance.now();
        if (fault === "link cut") await host.cut();
        else await host.killSshd();
        const result = await cli.done;
        const took = tookSince(faultAt, result);
        assert.equal(result.code, 125, result.stderr); // sandboxer's own failure, not the command's
        assert.ok(
          took < (fault === "link cut" ? KEEPALIVE_BOUND_MS : SLACK_MS),
          `took ${Math.round(took)} ms after the fault`,
        );
        assert.match(result.stderr, /connection was lost while sh ran/);
        // exec is not a lifecycle step: the sandbox itself is still ready.
        assert.equal((await waitForRecord(state, "ex", () => true, "exist")).status, "ready");
        if (fault === "link cut") await host.restore();
        else await host.sshd.restart();
        const again = await runSandboxer(["exec", "ex", "--", "true"], host.env);
        assert.equal(again.code, 0, again.stderr);
      },
    );
  }
  await destroyOk(host, "ex");
  await assertOnlySentinelLeft(host);
});
