import assert from "node:assert/strict";
import {
  ERROR_CODES,
  isErrorCode,
  RsyncTooOldError,
  RsyncVersionError,
  SandboxerError,
  SftpSyncError,
  SshError,
} from "./errors.ts";

Deno.test("every error code belongs to exactly one class in errors.ts, and each is listed", async () => {
  const source = await Deno.readTextFile(new URL("./errors.ts", import.meta.url));
  const used = [...source.matchAll(/super\(\s*"([A-Z_]+)"/g)].map((m) => m[1]);
  assert.deepEqual([...used].sort(), [...ERROR_CODES].sort());
  assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length);
});

Deno.test("isErrorCode() tells a code from any other string", () => {
  assert.equal(isErrorCode("SSH"), true);
  assert.equal(isErrorCode("SSH_TYPO"), false);
  assert.equal(isErrorCode(undefined), false);
});

Deno.test("SshError keeps its problem and fix apart from the message", () => {
  const error = new SshError("u@h:22", "connect", "connection refused", { fix: "check the port" });
  assert.equal(error.message, "Cannot connect u@h:22: connection refused; check the port");
  assert.equal(error.problem, "connection refused");
  assert.equal(error.fix, "check the port");
  const bare = new SshError("u@h:22", "exec", "channel closed");
  assert.equal(bare.message, "Cannot exec u@h:22: channel closed");
  assert.equal(bare.fix, undefined);
});

Deno.test("the rsync and SFTP sync errors are classes with fields", () => {
  const version = new RsyncVersionError("openrsync: protocol 29 " + "x".repeat(100));
  assert.ok(version instanceof SandboxerError);
  assert.equal(version.code, "RSYNC_VERSION");
  assert.equal(version.output.length, 80);
  const old = new RsyncTooOldError("2.6.9", "3.0.0", "Cannot sync with rsync 2.6.9: …");
  assert.deepEqual([old.code, old.version, old.required], ["RSYNC_TOO_OLD", "2.6.9", "3.0.0"]);
  const sftp = new SftpSyncError("a/../b", "is not a plain relative path, so it is refused");
  assert.equal(sftp.code, "SFTP_SYNC");
  assert.equal(sftp.path, "a/../b");
  assert.equal(
    sftp.message,
    'Cannot sync "a/../b" over SFTP: it is not a plain relative path, so it is refused',
  );
});
