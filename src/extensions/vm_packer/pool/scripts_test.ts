// The pool's lease scripts, run by the local sh on a temp directory standing in for a host's
// workspace root: slots are taken lowest first up to the capacity, a dead lease is reclaimed but a
// live one (fresh heartbeat, or its workspace with the same nonce) never is, a slot holding
// anything else is never emptied, waiters are served first come, first served, and release
// removes only a lease with the same id and nonce.
import assert from "node:assert/strict";
import { tempDir } from "../../../testing/temp_dir.ts";
import { run } from "../../../process/run.ts";
import { POOL_ACQUIRE, POOL_EXIT, POOL_REAP, POOL_RELEASE } from "./scripts.ts";

const NONCE = "0123456789abcdef0123456789abcdef";

async function sh(script: string, args: string[]) {
  return await run(["sh", "-c", script, "sh", ...args], { allowFailure: true });
}

async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) found.push(entry.name);
  return found;
}

Deno.test("pool scripts: take, reclaim, queue and release leases on a host", async (t) => {
  await using dir = await tempDir("sbx-pool-scripts-");
  const root = dir.path;
  const pool = `${root}/.sbx-pool/build-1_22`;
  const acquire = (id: string, me = "", cap = 2) =>
    sh(POOL_ACQUIRE, [pool, root, "60", String(cap), id, NONCE, "-", me]);

  await t.step("slots are taken lowest first, up to the capacity", async () => {
    assert.equal((await acquire("a")).stdout, "slot 0 0 2\n");
    assert.equal((await acquire("b")).stdout, "slot 1 1 2\n");
    const full = await acquire("c");
    assert.equal(full.code, POOL_EXIT.full);
    assert.equal(full.stdout, "full 2 2 0\n");
    assert.equal(await Deno.readTextFile(`${pool}/slot-0/lease`), `a ${NONCE} -\n`);
  });

  await t.step("a lease with a stale heartbeat and no workspace is reclaimed", async () => {
    await Deno.writeTextFile(`${pool}/slot-0/heartbeat`, "1\n");
    const taken = await acquire("c");
    assert.equal(taken.stdout, "slot 0 1 2\n");
    assert.match(taken.stderr, /reclaimed slot-0 a/);
  });

  await t.step("a ready lease stays while its workspace holds the same nonce", async () => {
    await Deno.writeTextFile(`${pool}/slot-1/heartbeat`, "ready\n");
    await Deno.mkdir(`${root}/sbx-b`);
    await Deno.writeTextFile(
      `${root}/sbx-b/.sandboxer.json`,
      `{"id":"b","nonce":"${NONCE}","profile":"p"}\n`,
    );
    assert.equal((await acquire("d")).code, POOL_EXIT.full);
    // Another sandbox of the same name (another nonce) does not keep b's lease alive.
    await Deno.writeTextFile(
      `${root}/sbx-b/.sandboxer.json`,
      `{"id":"b","nonce":"ffffffffffffffffffffffffffffffff","profile":"p"}\n`,
    );
    assert.equal((await acquire("d")).stdout, "slot 1 1 2\n");
  });

  await t.step("a slot holding anything but a lease is never emptied", async () => {
    await Deno.writeTextFile(`${pool}/slot-1/heartbeat`, "1\n");
    await Deno.writeTextFile(`${pool}/slot-1/precious`, "keep\n");
    const full = await acquire("e");
    assert.equal(full.code, POOL_EXIT.full, full.stdout + full.stderr);
    assert.equal(await Deno.readTextFile(`${pool}/slot-1/precious`), "keep\n");
    assert.equal(await Deno.readTextFile(`${pool}/slot-1/lease`), `d ${NONCE} -\n`);
    await Deno.remove(`${pool}/slot-1/precious`);
    await Deno.writeTextFile(`${pool}/slot-1/heartbeat`, `${Math.floor(Date.now() / 1000)}\n`);
  });

  await t.step(
    "waiters are served first come, first served; a create without --wait is last",
    async () => {
      const first = "0000000000001-w1-aaaaaaaa";
      const second = "0000000000002-w2-bbbbbbbb";
      assert.equal((await acquire("w2", second)).stdout, "full 2 2 0\n");
      assert.equal((await acquire("w1", first)).stdout, "full 2 2 0\n");
      assert.equal((await acquire("w2", second)).stdout, "full 2 2 1\n", "w1 is ahead");
      // A slot frees: neither the later waiter nor a create without --wait may take it.
      const released = await sh(POOL_RELEASE, [pool, root, "0", "c", NONCE]);
      assert.equal(released.code, 0, released.stderr);
      assert.equal((await acquire("w2", second)).stdout, "full 1 2 1\n");
      assert.equal((await acquire("x")).stdout, "full 1 2 2\n");
      assert.equal((await acquire("w1", first)).stdout, "slot 0 1 2\n");
      assert.deepEqual(await names(`${pool}/waiters`), [
        `w-${second}`,
      ]);
    },
  );

  await t.step("release removes only a lease with the same id and nonce", async () => {
    const other = await sh(POOL_RELEASE, [pool, root, "0", "w1", "f".repeat(32)]);
    assert.equal(other.code, POOL_EXIT.notOurs);
    assert.equal(await Deno.readTextFile(`${pool}/slot-0/lease`), `w1 ${NONCE} -\n`);
    assert.equal((await sh(POOL_RELEASE, [pool, root, "0", "w1", NONCE])).code, 0);
    assert.equal((await sh(POOL_RELEASE, [pool, root, "0", "w1", NONCE])).code, 0, "idempotent");
  });

  await t.step("reap reclaims dead leases and reports live ones", async () => {
    await Deno.writeTextFile(`${pool}/slot-1/heartbeat`, "ready\n");
    await Deno.remove(`${root}/sbx-b`, { recursive: true });
    const reaped = await sh(POOL_REAP, [pool, root, "60"]);
    assert.equal(reaped.code, 0, reaped.stderr);
    assert.equal(reaped.stdout, "reaped slot-1 d\n");
    assert.deepEqual((await names(pool)).sort(), [".lock", "waiters"]);
  });

  await t.step("a symlink planted where the pool directory belongs is refused", async () => {
    await using elsewhere = await tempDir("sbx-pool-victim-");
    await Deno.mkdir(`${elsewhere.path}/waiters`);
    await Deno.writeTextFile(`${elsewhere.path}/waiters/w-1-x-y`, "0\n");
    const planted = `${root}/.sbx-pool/planted_22`;
    await Deno.symlink(elsewhere.path, planted);
    for (
      const [script, args] of [[POOL_ACQUIRE, [planted, root, "60", "2", "p", NONCE, "-", ""]], [
        POOL_REAP,
        [planted, root, "60"],
      ]] as const
    ) {
      const result = await sh(script, [...args]);
      assert.equal(result.code, POOL_EXIT.writeFailed, result.stderr);
      assert.match(
        result.stderr,
        /has a symlink at .*planted_22, where the pool's own directory belongs/,
      );
    }
    assert.deepEqual(
      await names(`${elsewhere.path}/waiters`),
      ["w-1-x-y"],
      "nothing removed through it",
    );
  });
});
