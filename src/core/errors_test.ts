import assert from "node:assert/strict";
import {
  ERROR_CODES,
  InvalidIdError,
  isErrorCode,
  JournalError,
  LocalFileError,
  OwnershipLostError,
  PermissionError,
  ProfileNotFoundError,
  RsyncTooOldError,
  RsyncVersionError,
  SandboxerError,
  SandboxExistsError,
  SandboxNotFoundError,
  SandboxStateError,
  SetupFailedError,
  SftpSyncError,
  SshError,
  StateDirError,
  TimeoutError,
  WorkspaceError,
  WorkspaceGoneError,
} from "./errors.ts";

Deno.test("every error code belongs to exactly one class in errors/, and each is listed", async () => {
  const directory = new URL("./errors/", import.meta.url);
  const used: string[] = [];
  for await (const entry of Deno.readDir(directory)) {
    const source = await Deno.readTextFile(new URL(entry.name, directory));
    used.push(...[...source.matchAll(/super\(\s*"([A-Z_]+)"/g)].map((m) => m[1]));
  }
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

Deno.test("errors carry their parts as fields, so no caller parses a message", () => {
  const state = new SandboxStateError("box", "is failed; destroy it");
  assert.deepEqual([state.id, state.problem], ["box", "is failed; destroy it"]);
  const lost = new OwnershipLostError("box", "was taken over by gc");
  assert.deepEqual([lost.id, lost.problem], ["box", "was taken over by gc"]);
  assert.equal(new SandboxNotFoundError("nope").id, "nope");
  assert.equal(new SandboxExistsError("dup").id, "dup");
  assert.equal(new InvalidIdError("../x").id, "../x");
  const missing = new ProfileNotFoundError("dev", ["/a", "/b"]);
  assert.deepEqual([missing.profile, missing.searched], ["dev", ["/a", "/b"]]);
  const workspace = new WorkspaceError("/build/sbx-a", "is a symlink; inspect it");
  assert.deepEqual([workspace.path, workspace.problem], [
    "/build/sbx-a",
    "is a symlink; inspect it",
  ]);
  const gone = new WorkspaceGoneError("/build/sbx-a", "was removed on the host");
  assert.deepEqual([gone.path, gone.problem], ["/build/sbx-a", "was removed on the host"]);
  const journal = new JournalError("/s/a.json", "is not JSON");
  assert.deepEqual([journal.path, journal.problem], ["/s/a.json", "is not JSON"]);
  assert.equal(new StateDirError("/s", "is a file").problem, "is a file");
  assert.equal(new LocalFileError("/k", "is a directory").problem, "is a directory");
  const denied = new PermissionError("net", "h:22", "--allow-net=h:22");
  assert.deepEqual([denied.permission, denied.what, denied.flag], [
    "net",
    "h:22",
    "--allow-net=h:22",
  ]);
  assert.equal(new TimeoutError("connect to u@h:22", 1000).what, "connect to u@h:22");
  const setup = new SetupFailedError("make", 2, "no rule");
  assert.deepEqual([setup.command, setup.exitCode, setup.hint], ["make", 2, "no rule"]);
});
