/**
 * Host keys against a REAL OpenSSH server (tests/harness/sshd.ts): a known_hosts file with a
 * hyphenated host name works, and a key that is not the pinned one — or is `@revoked` — is
 * refused BEFORE authentication, over ssh2 and over rsync's own ssh. "Before authentication" is
 * read from the server's own log: no publickey attempt, accepted or failed, for that connection.
 */
import { skipIf } from "../helpers.ts";
import assert from "node:assert/strict";
import { sshdUnavailableReason, startSshd, type TestSshd } from "../harness/sshd.ts";
import { assertNoAuthentication, logAfter, newKey, replaceHostKey } from "./host_key_helpers.ts";
import { HostKeyError } from "../../src/core/errors.ts";
import { runRsync } from "../../src/sync/rsync_run.ts";
import { pinnedKnownHostsFile } from "../../src/transport/known_hosts.ts";
import { connectSsh } from "../../src/transport/ssh/connection.ts";
import { SshPool } from "../../src/transport/ssh/pool.ts";
import type { SshTarget } from "../../src/transport/ssh/types.ts";

const unavailable = await sshdUnavailableReason();

function targetOf(sshd: TestSshd, overrides: Partial<SshTarget> = {}): SshTarget {
  return {
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    identityFile: sshd.identityFile,
    knownHostsFile: sshd.knownHostsFile,
    connectTimeoutMs: 5_000,
    ...overrides,
  };
}

Deno.test({
  ...skipIf(
    unavailable,
    "a known_hosts file with a hyphenated host name connects (it once broke every connection)",
  ),
  async fn() {
    await using sshd = await startSshd();
    const other = await newKey(sshd.dir, "other");
    const file = `${sshd.dir}/hyphen_known_hosts`;
    await Deno.writeTextFile(
      file,
      `build-vm ${other.line}\nci-runner-01.corp-net ${other.line}\n` +
        (await Deno.readTextFile(sshd.knownHostsFile)),
    );
    await using conn = await connectSsh(targetOf(sshd, { knownHostsFile: file }));
    assert.equal(conn.hostKeyFingerprint, sshd.hostKeyFingerprint);
    assert.equal((await conn.run(["echo", "hi"])).stdout, "hi\n");
  },
});

Deno.test({
  ...skipIf(unavailable, "a host key that is not the pinned one is refused before authentication"),
  async fn(t) {
    await using sshd = await startSshd();
    const other = await newKey(sshd.dir, "pin_other");

    await t.step("control: the right pin logs in, and the log shows it", async () => {
      const offset = (await sshd.log()).length;
      const conn = await connectSsh(targetOf(sshd, { pinnedHostKey: sshd.hostKeyFingerprint }));
      await conn.close();
      assert.match(await logAfter(sshd, offset), /Accepted publickey/);
    });

    await t.step("a wrong pin: HostKeyError 'pinned', no authentication", async () => {
      const offset = (await sshd.log()).length;
      const error = await connectSsh(targetOf(sshd, { pinnedHostKey: other.fingerprint })).then(
        () => undefined,
        (e) => e,
      );
      assert.ok(error instanceof HostKeyError, String(error));
      assert.equal(error.reason, "pinned");
      assert.equal(error.fingerprint, sshd.hostKeyFingerprint);
      assert.equal(error.pinned, other.fingerprint);
      assert.match(error.message, /not the one pinned when the sandbox was created/);
      assert.match(error.message, /nothing was sent/);
      assert.ok(!error.message.includes("refuses it too"), "known_hosts accepts this key");
      assertNoAuthentication(await logAfter(sshd, offset), "wrong pin");
    });

    await t.step("a pooled connection is not handed to a target with another pin", async () => {
      await using pool = new SshPool();
      const first = await pool.get(targetOf(sshd, { pinnedHostKey: sshd.hostKeyFingerprint }));
      const offset = (await sshd.log()).length;
      await assert.rejects(
        pool.get(targetOf(sshd, { pinnedHostKey: other.fingerprint })),
        (e: unknown) => e instanceof HostKeyError && e.reason === "pinned",
      );
      assert.ok(!first.closed, "the pooled connection stays open for its own users");
      // No second connection was even attempted.
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await sshd.log()).slice(offset).includes("Connection from"), false);
    });
  },
});

Deno.test({
  ...skipIf(unavailable, "an @revoked host key gets its own message, before authentication"),
  async fn() {
    await using sshd = await startSshd();
    const file = `${sshd.dir}/revoked_known_hosts`;
    const plain = await Deno.readTextFile(sshd.knownHostsFile);
    const revokedLine = `@revoked * ${sshd.hostPublicKeyLine}`;
    await Deno.writeTextFile(file, `${plain}${revokedLine}\n`);
    const offset = (await sshd.log()).length;
    const error = await connectSsh(targetOf(sshd, { knownHostsFile: file })).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(error instanceof HostKeyError, String(error));
    assert.equal(error.reason, "revoked");
    assert.match(error.message, /is marked @revoked in .* \(line 2\)/);
    assert.match(error.message, /delete the @revoked line/);
    assertNoAuthentication(await logAfter(sshd, offset), "revoked key");
    // The fix it names, literally: without the @revoked line the key is accepted again.
    await Deno.writeTextFile(file, plain);
    const conn = await connectSsh(targetOf(sshd, { knownHostsFile: file }));
    await conn.close();
  },
});

Deno.test({
  ...skipIf(
    unavailable,
    "rsync's own ssh accepts only the pinned key, whatever the user's known_hosts holds",
  ),
  async fn() {
    await using sshd = await startSshd();
    const local = await Deno.makeTempDir({ prefix: "sbx-pin-rsync-" });
    try {
      await Deno.writeTextFile(`${local}/a.txt`, "a");
      const conn = await connectSsh(targetOf(sshd));
      const pinnedKey = conn.hostKey;
      const pinnedFingerprint = conn.hostKeyFingerprint;
      await conn.close();
      await using pinned = await pinnedKnownHostsFile({
        host: sshd.host,
        port: sshd.port,
        keyType: pinnedKey.type,
        keyBase64: pinnedKey.base64,
      });
      assert.equal(
        await Deno.readTextFile(pinned.path),
        `[${sshd.host}]:${sshd.port} ${sshd.hostPublicKeyLine}\n`,
      );
      assert.equal((await Deno.stat(pinned.path)).mode! & 0o777, 0o600);

      // The host is re-keyed; the user's known_hosts trusts both keys (a pool of rebuilt VMs).
      const rekeyed = await replaceHostKey(sshd);
      const both = `${sshd.dir}/both_known_hosts`;
      await Deno.writeTextFile(
        both,
        `[${sshd.host}]:${sshd.port} ${sshd.hostPublicKeyLine}\n` +
          `[${sshd.host}]:${sshd.port} ${rekeyed.line}\n`,
      );
      const plan = (knownHostsFile: string, pinnedHostKey?: string) => ({
        source: local,
        target: { ...targetOf(sshd), knownHostsFile, pinnedHostKey },
        remoteDir: `${sshd.homeDir}/pin_rsync`,
        exclude: [],
        gitignore: false,
        delete: false,
        progress: false,
      });

      const offset = (await sshd.log()).length;
      const error = await runRsync(plan(pinned.path, pinnedFingerprint)).then(
        () => undefined,
        (e) => e,
      );
      assert.ok(error instanceof HostKeyError, String(error));
      assert.equal(error.reason, "pinned");
      assert.equal(error.fingerprint, rekeyed.fingerprint, "ssh's banner names the offered key");
      assertNoAuthentication(await logAfter(sshd, offset), "rsync's ssh with the pin");

      // Control: the user's file alone would have let rsync in.
      const report = await runRsync(plan(both));
      assert.equal(report.files, 1);
    } finally {
      await Deno.remove(local, { recursive: true });
    }
  },
});
