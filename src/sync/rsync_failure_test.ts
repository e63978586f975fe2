import assert from "node:assert/strict";
import { SshError } from "../core/errors.ts";
import { isPreAuthDrop } from "../transport/ssh/errors.ts";
import { rsyncFailure } from "./rsync_failure.ts";
import type { RsyncPlan } from "./rsync_types.ts";

const PLAN: RsyncPlan = {
  source: "/src/app",
  target: { host: "10.0.0.5", port: 12222, user: "dev", knownHostsFile: "/state/known_hosts" },
  remoteDir: "/build/sbx-1",
  exclude: [],
  gitignore: false,
  delete: false,
  progress: false,
};

Deno.test("rsync's ssh dropped before the handshake is the transport's retryable pre-auth drop", () => {
  const error = rsyncFailure(
    PLAN,
    ["rsync"],
    255,
    "kex_exchange_identification: read: Connection reset by peer\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\n",
  );
  assert.ok(error instanceof SshError);
  assert.equal(error.stage, "connect");
  assert.ok(isPreAuthDrop(error), "runRsync retries it");
  assert.equal(
    error.message,
    "Cannot connect dev@10.0.0.5:12222: the server dropped the connection before the SSH handshake (kex_exchange_identification: read: Connection reset by peer); it may be at its MaxStartups limit, so retry shortly",
  );
});

Deno.test("other ssh failures are not retried as pre-auth drops", () => {
  const error = rsyncFailure(
    PLAN,
    ["rsync"],
    255,
    "dev@10.0.0.5: Permission denied (publickey).\n",
  );
  assert.ok(error instanceof SshError);
  assert.equal(isPreAuthDrop(error), false);
});
