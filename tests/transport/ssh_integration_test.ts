/**
 * The SSH transport and rsync against REAL OpenSSH servers (tests/harness/sshd.ts).
 * Run with: deno test --allow-all tests/transport
 */
import { skipIf } from "../helpers.ts";
import assert from "node:assert/strict";
import {
  freePort,
  hashedKnownHostsFile,
  sshdUnavailableReason,
  startSshd,
  type TestSshd,
  wrongKnownHostsFile,
} from "../harness/sshd.ts";
import { HostKeyError, PermissionError, SshError, TimeoutError } from "../../src/core/errors.ts";
import type { Logger } from "../../src/core/types.ts";
import { runRsync } from "../../src/sync/rsync_run.ts";
import { connectSsh } from "../../src/transport/ssh/connection.ts";
import { isPreAuthDrop } from "../../src/transport/ssh/errors.ts";
import { SshPool } from "../../src/transport/ssh/pool.ts";
import type { SshTarget } from "../../src/transport/ssh/types.ts";
import { HOSTILE_WORDS, hostileStrings } from "../../src/testing/hostile_strings.ts";
import { isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { listRemote, ODD_NAMES, writeTree } from "./tree_fixture.ts";

const unavailable = await sshdUnavailableReason();

/** The fields of a test server a target needs (a TestSshd, or an isolated host). */
type ServerFields = Pick<TestSshd, "host" | "port" | "user" | "identityFile" | "knownHostsFile">;

function targetOf(sshd: ServerFields, overrides: Partial<SshTarget> = {}): SshTarget {
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

interface Recorded extends Logger {
  lines: string[];
}

function recordingLogger(): Recorded {
  const lines: string[] = [];
  return {
    lines,
    debug: (m) => lines.push(`debug ${m}`),
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
}

async function elapsed<T>(fn: () => Promise<T>): Promise<[PromiseSettledResult<T>, number]> {
  const start = performance.now();
  const [result] = await Promise.allSettled([fn()]);
  return [result, performance.now() - start];
}

function rejection<T>(result: PromiseSettledResult<T>): unknown {
  assert.equal(result.status, "rejected", "expected a failure");
  return (result as PromiseRejectedResult).reason;
}

async function acceptedLogins(sshd: TestSshd): Promise<number> {
  return (await sshd.log()).split("\n").filter((l) => l.includes("Accepted publickey")).length;
}

async function eventually(check: () => Promise<boolean>, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A TCP relay in front of sshd that can drop the first N connections (like
 * sshd's MaxStartups) or freeze (a peer that silently disappears).
 */
class TcpRelay implements AsyncDisposable {
  readonly port: number;
  accepted = 0;
  frozen = false;
  #listener: Deno.TcpListener;
  #conns = new Set<Deno.Conn>();
  #dropFirst: number;
  #upstreamPort: number;
  #served: Promise<void>;
  #tasks = new Set<Promise<void>>();

  constructor(upstreamPort: number, dropFirst = 0) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#upstreamPort = upstreamPort;
    this.#dropFirst = dropFirst;
    this.#served = this.#serve();
  }

  async #serve(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.accepted++;
        if (this.accepted <= this.#dropFirst) {
          conn.close();
          continue;
        }
        const task = this.#relay(conn);
        this.#tasks.add(task);
        task.finally(() => this.#tasks.delete(task));
      }
    } catch {
      // listener closed
    }
  }

  async #relay(client: Deno.Conn): Promise<void> {
    const upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.#upstreamPort });
    this.#conns.add(client);
    this.#conns.add(upstream);
    const pump = async (from: Deno.Conn, to: Deno.Conn) => {
      const buffer = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const n = await from.read(buffer);
          if (n === null || this.frozen) break;
          let written = 0;
          while (written < n) written += await to.write(buffer.subarray(written, n));
        }
      } catch {
        // a side closed
      }
      // A frozen relay keeps both sockets open and silent: a dead peer, not a closed one.
      if (!this.frozen) {
        for (const c of [from, to]) {
          try {
            c.close();
          } catch { /* already closed */ }
          this.#conns.delete(c);
        }
      }
    };
    await Promise.all([pump(client, upstream), pump(upstream, client)]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    await this.#served;
    await Promise.allSettled([...this.#tasks]);
  }
}

Deno.test({
  ...skipIf(unavailable, "SshConnection against a real sshd"),
  async fn(t) {
    await using sshd = await startSshd();
    await using conn = await connectSsh(targetOf(sshd));

    await t.step("connects with the expected host key and runs echo", async () => {
      assert.equal(conn.hostKeyFingerprint, sshd.hostKeyFingerprint);
      assert.deepEqual(await conn.run(["echo", "hello", "world"]), {
        code: 0,
        stdout: "hello world\n",
        stderr: "",
      });
    });

    await t.step("passes exit codes through", async () => {
      assert.equal((await conn.exec(["sh", "-c", "exit 7"])).code, 7);
      assert.equal((await conn.run(["false"])).code, 1);
    });

    await t.step("reports a remote signal as 128+N", async () => {
      assert.deepEqual(await conn.exec(["sh", "-c", "kill -TERM $$"]), {
        code: 143,
        signal: "SIGTERM",
      });
    });

    await t.step("round-trips hostile argv literally", async () => {
      const words = [...HOSTILE_WORDS, ...hostileStrings(0x2545f491, 500)];
      const { code, stdout } = await conn.run(["printf", "%s\\0", ...words]);
      assert.equal(code, 0);
      assert.deepEqual(stdout.split("\0").slice(0, -1), words);
    });

    await t.step("runs in a hostile cwd, and not at all when it is missing", async () => {
      const dir = `${sshd.homeDir}/cwd it's $(x) \`y\` ;&|*`;
      assert.equal((await conn.run(["mkdir", "-p", "--", dir])).code, 0);
      assert.equal((await conn.run(["pwd"], { cwd: dir })).stdout, `${dir}\n`);
      const missing = await conn.run(["echo", "ran"], { cwd: `${dir}/missing` });
      assert.notEqual(missing.code, 0);
      assert.equal(missing.stdout, "");
      await conn.run(["rm", "-rf", "--", dir]);
    });

    await t.step("drains silent and unobserved output", async () => {
      assert.deepEqual(await conn.exec(["true"]), { code: 0 });
      // 4 MiB with no stdout callback: completes only if the channel is drained.
      assert.deepEqual(await conn.exec(["head", "-c", "4194304", "/dev/zero"]), { code: 0 });
    });

    await t.step("feeds stdin and streams stderr", async () => {
      const bytes = new Uint8Array([0, 1, 2, 255, 10, 13]);
      const chunks: Uint8Array[] = [];
      const result = await conn.exec(["cat"], { stdin: bytes, stdout: (c) => chunks.push(c) });
      assert.equal(result.code, 0);
      assert.deepEqual(new Uint8Array(chunks.flatMap((c) => [...c])), bytes);
      const err = await conn.run(["ls", "/nonexistent-sbx"]);
      assert.match(err.stderr, /No such file/);
    });

    await t.step("runs many commands concurrently on one connection", async () => {
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => conn.run(["echo", String(i)])),
      );
      assert.deepEqual(results.map((r) => r.stdout), results.map((_, i) => `${i}\n`));
    });

    await t.step("abort kills the remote command and rejects with the reason", async () => {
      // A unique duration marks both the shell and its sleep child: the KILL must reach both.
      const marker = `sleep ${3000 + Math.floor(Math.random() * 1000)}`;
      const controller = new AbortController();
      const reason = new Error("stop");
      const running = conn.exec(["sh", "-c", `${marker}; echo not reached`], {
        signal: controller.signal,
      });
      running.catch(() => {});
      await eventually(async () =>
        (await conn.run(["pgrep", "-f", marker])).stdout.split("\n").length > 2
      );
      const [result, ms] = await elapsed(async () => {
        controller.abort(reason);
        return await running;
      });
      assert.equal(rejection(result), reason);
      assert.ok(ms < 1_000, `abort took ${ms} ms`);
      await eventually(async () => (await conn.run(["pgrep", "-f", marker])).code === 1);
    });

    await t.step("SFTP reads, writes binary data, lists and removes", async () => {
      await using sftp = await conn.sftp();
      const dir = `${sshd.homeDir}/sftp test/a/b`;
      await sftp.mkdir(dir, { recursive: true });
      await sftp.mkdir(dir, { recursive: true });
      const data = new Uint8Array(200_000).map((_, i) => (i * 7) % 256);
      await sftp.writeFile(`${dir}/bin file`, data, { mode: 0o600 });
      assert.deepEqual(await sftp.readFile(`${dir}/bin file`), data);
      const stat = await sftp.stat(`${dir}/bin file`);
      assert.equal(stat?.size, data.length);
      assert.equal(stat?.isFile, true);
      assert.equal((stat?.mode ?? 0) & 0o777, 0o600);
      assert.equal(await sftp.stat(`${dir}/missing`), undefined);
      await sftp.rename(`${dir}/bin file`, `${dir}/renamed`);
      await sftp.symlink("renamed", `${dir}/link`);
      const names = (await sftp.readdir(dir)).map((e) => e.name).sort();
      assert.deepEqual(names, ["link", "renamed"]);
      await sftp.unlink(`${dir}/link`);
      await sftp.unlink(`${dir}/renamed`);
      await sftp.rmdir(dir);
      await conn.run(["rm", "-rf", "--", `${sshd.homeDir}/sftp test`]);
    });

    await t.step("close() is idempotent and later use fails clearly", async () => {
      const other = await connectSsh(targetOf(sshd));
      await other.close();
      await other.close();
      assert.ok(other.closed);
      await assert.rejects(other.run(["true"]), (error: unknown) => {
        assert.ok(error instanceof SshError);
        assert.equal(error.stage, "exec");
        return true;
      });
    });
  },
});

Deno.test({
  ...skipIf(unavailable, "connectSsh() host key verification"),
  async fn(t) {
    await using sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "sbx-hostkey-" });
    try {
      await t.step("refuses an unknown host and shows its fingerprint", async () => {
        const target = targetOf(sshd, { knownHostsFile: `${dir}/missing/known_hosts` });
        await assert.rejects(connectSsh(target), (error: unknown) => {
          assert.ok(error instanceof HostKeyError);
          assert.equal(error.reason, "unknown");
          assert.equal(error.fingerprint, sshd.hostKeyFingerprint);
          assert.ok(error.message.includes(sshd.hostKeyFingerprint));
          return true;
        });
      });

      await t.step("refuses a changed host key, even with acceptNewHostKey", async () => {
        const wrong = await wrongKnownHostsFile(dir, sshd.host, sshd.port);
        for (const acceptNewHostKey of [false, true]) {
          await assert.rejects(
            connectSsh(targetOf(sshd, { knownHostsFile: wrong, acceptNewHostKey })),
            (error: unknown) => error instanceof HostKeyError && error.reason === "mismatch",
          );
        }
      });

      await t.step("refuses a @revoked key", async () => {
        const file = `${dir}/revoked`;
        const known = await Deno.readTextFile(sshd.knownHostsFile);
        await Deno.writeTextFile(file, `${known}@revoked * ${sshd.hostPublicKeyLine}\n`);
        await assert.rejects(
          connectSsh(targetOf(sshd, { knownHostsFile: file })),
          (error: unknown) => error instanceof HostKeyError && error.reason === "revoked",
        );
      });

      await t.step("accepts hashed known_hosts entries", async () => {
        const hashed = await hashedKnownHostsFile(sshd);
        await using conn = await connectSsh(targetOf(sshd, { knownHostsFile: hashed }));
        assert.equal(conn.hostKeyFingerprint, sshd.hostKeyFingerprint);
      });

      await t.step("acceptNewHostKey appends the key, then strict checking passes", async () => {
        const file = `${dir}/tofu/.ssh/known_hosts`;
        const logger = recordingLogger();
        const first = await connectSsh(
          targetOf(sshd, { knownHostsFile: file, acceptNewHostKey: true }),
          {
            logger,
          },
        );
        await first.close();
        assert.equal(
          await Deno.readTextFile(file),
          `[${sshd.host}]:${sshd.port} ${sshd.hostPublicKeyLine}\n`,
        );
        assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
        assert.ok(
          logger.lines.some((l) => l.startsWith("warn") && l.includes(sshd.hostKeyFingerprint)),
        );
        await using again = await connectSsh(targetOf(sshd, { knownHostsFile: file }));
        assert.equal((await again.run(["true"])).code, 0);
        // No second line: the key was already known.
        assert.equal((await Deno.readTextFile(file)).split("\n").length, 2);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  ...skipIf(unavailable, "connectSsh() fails fast and clearly"),
  async fn(t) {
    await using sshd = await startSshd();

    await t.step("a port with nothing listening is an SshError at once", async () => {
      const port = await freePort();
      const [result, ms] = await elapsed(() => connectSsh(targetOf(sshd, { port })));
      const error = rejection(result);
      assert.ok(error instanceof SshError, String(error));
      assert.equal(error.stage, "connect");
      assert.match(error.message, /connection refused/);
      assert.ok(ms < 2_000, `took ${ms} ms`);
    });

    await t.step("a server that never speaks SSH times out at connectTimeoutMs", async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const held: Deno.Conn[] = [];
      const accepting = (async () => {
        try {
          for await (const conn of listener) held.push(conn);
        } catch { /* closed */ }
      })();
      try {
        const port = (listener.addr as Deno.NetAddr).port;
        const [result, ms] = await elapsed(() =>
          connectSsh(targetOf(sshd, { port, connectTimeoutMs: 1_500 }))
        );
        assert.ok(rejection(result) instanceof TimeoutError);
        assert.ok(ms >= 1_400 && ms < 5_000, `took ${ms} ms`);
      } finally {
        listener.close();
        for (const c of held) c.close();
        await accepting;
      }
    });

    await t.step("a key the server does not know fails authentication", async () => {
      await using other = await startSshd();
      await assert.rejects(
        connectSsh(targetOf(sshd, { identityFile: other.identityFile })),
        (error: unknown) => {
          assert.ok(error instanceof SshError);
          assert.equal(error.stage, "authenticate");
          assert.match(error.message, /authorized_keys/);
          return !isPreAuthDrop(error);
        },
      );
    });

    await t.step("a missing identity file is named", async () => {
      await assert.rejects(
        connectSsh(targetOf(sshd, { identityFile: "/nonexistent/sbx/id" })),
        /identity file \/nonexistent\/sbx\/id does not exist/,
      );
    });

    await t.step("an abort cancels a connect", async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const held: Deno.Conn[] = [];
      const accepting = (async () => {
        try {
          for await (const conn of listener) held.push(conn);
        } catch { /* closed */ }
      })();
      try {
        const port = (listener.addr as Deno.NetAddr).port;
        const [result, ms] = await elapsed(() =>
          connectSsh(targetOf(sshd, { port }), { signal: AbortSignal.timeout(200) })
        );
        assert.ok(ms < 1_000);
        // AbortSignal.timeout() aborts with a DOMException named TimeoutError.
        assert.equal((rejection(result) as Error).name, "TimeoutError");
        assert.ok(!(rejection(result) instanceof TimeoutError));
      } finally {
        listener.close();
        for (const c of held) c.close();
        await accepting;
      }
    });
  },
});

Deno.test({
  ...skipIf(unavailable, "connectSsh() with an encrypted key"),
  async fn(t) {
    const passphrase = "correct horse ' $battery";
    await using sshd = await startSshd({ keyPassphrase: passphrase });

    await t.step("without the passphrase names the env var to set", async () => {
      await assert.rejects(
        connectSsh(targetOf(sshd, { passphraseEnv: "SBX_KEY_PASSPHRASE" })),
        (error: unknown) => {
          assert.ok(error instanceof SshError);
          assert.match(error.message, /is encrypted; set \$SBX_KEY_PASSPHRASE/);
          return true;
        },
      );
    });

    await t.step("with a wrong passphrase says so, without printing it", async () => {
      await assert.rejects(
        connectSsh(
          targetOf(sshd, { passphrase: "nope-secret", passphraseEnv: "SBX_KEY_PASSPHRASE" }),
        ),
        (error: unknown) => {
          assert.ok(error instanceof SshError);
          assert.match(error.message, /passphrase .* is wrong/);
          assert.ok(!error.message.includes("nope-secret"));
          return true;
        },
      );
    });

    await t.step("with the passphrase connects, and never logs it", async () => {
      const logger = recordingLogger();
      await using conn = await connectSsh(targetOf(sshd, { passphrase }), { logger });
      assert.equal((await conn.run(["true"])).code, 0);
      assert.ok(!logger.lines.join("\n").includes(passphrase));
    });
  },
});

Deno.test({
  ...skipIf(unavailable, "connectSsh() authenticates through ssh-agent"),
  async fn() {
    await using sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "sbx-agent-" });
    const sock = `${dir}/agent.sock`;
    const agent = new Deno.Command("ssh-agent", {
      args: ["-D", "-a", sock],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await eventually(async () => {
        try {
          return (await Deno.lstat(sock)).isSocket === true;
        } catch {
          return false;
        }
      });
      const add = await new Deno.Command("ssh-add", {
        args: [sshd.identityFile],
        env: { SSH_AUTH_SOCK: sock },
        stdout: "null",
        stderr: "null",
      }).output();
      assert.ok(add.success);
      await using conn = await connectSsh(targetOf(sshd, { identityFile: undefined, agent: sock }));
      assert.equal((await conn.run(["echo", "via agent"])).stdout, "via agent\n");
    } finally {
      agent.kill("SIGTERM");
      await agent.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const PERMISSION_PORT = await freePort();

Deno.test({
  name: "connectSsh() names the missing --allow-net flag",
  permissions: { read: true, env: true, net: false },
  async fn() {
    const target = {
      host: "127.0.0.1",
      port: PERMISSION_PORT,
      user: "u",
      agent: "/nonexistent/agent.sock",
      knownHostsFile: "/nonexistent/sbx/known_hosts",
    };
    await assert.rejects(connectSsh(target), (error: unknown) => {
      assert.ok(error instanceof PermissionError, String(error));
      assert.equal(error.flag, `--allow-net=127.0.0.1:${PERMISSION_PORT}`);
      return true;
    });
  },
});

Deno.test({
  name: "connectSsh() names the missing --allow-read flag for the key",
  permissions: { read: ["/nonexistent"], env: true, net: true },
  async fn() {
    const target = {
      host: "127.0.0.1",
      port: PERMISSION_PORT,
      user: "u",
      identityFile: "/etc/sbx-test/id_key",
      knownHostsFile: "/nonexistent/sbx/known_hosts",
    };
    await assert.rejects(connectSsh(target), (error: unknown) => {
      assert.ok(error instanceof PermissionError, String(error));
      assert.equal(error.flag, "--allow-read=/etc/sbx-test/id_key");
      return true;
    });
  },
});

Deno.test({
  ...skipIf(unavailable, "SshPool shares, replaces and retries connections"),
  async fn(t) {
    await using sshd = await startSshd();

    await t.step("reuses one connection for every step, and dedupes concurrent gets", async () => {
      await using pool = new SshPool();
      const before = await acceptedLogins(sshd);
      const [a, b] = await Promise.all([pool.get(targetOf(sshd)), pool.get(targetOf(sshd))]);
      assert.equal(a, b);
      await a.run(["true"]);
      const c = await pool.get(targetOf(sshd));
      assert.equal(c, a);
      await c.run(["true"]);
      assert.equal(pool.size, 1);
      await eventually(async () => (await acceptedLogins(sshd)) === before + 1);
    });

    await t.step("replaces a closed connection", async () => {
      await using pool = new SshPool();
      const first = await pool.get(targetOf(sshd));
      await first.close();
      const second = await pool.get(targetOf(sshd));
      assert.notEqual(second, first);
      assert.equal((await second.run(["true"])).code, 0);
    });

    await t.step("retries connections dropped before the handshake", async () => {
      await using relay = new TcpRelay(sshd.port, 2);
      const target = targetOf(sshd, { port: relay.port });
      // The relay's port is not in known_hosts; pin the same key for it.
      const known = `${sshd.dir}/relay_known_hosts`;
      await Deno.writeTextFile(known, `[127.0.0.1]:${relay.port} ${sshd.hostPublicKeyLine}\n`);
      target.knownHostsFile = known;
      await assert.rejects(connectSsh(target), (error: unknown) => isPreAuthDrop(error));
      const logger = recordingLogger();
      await using pool = new SshPool({ retryBaseDelayMs: 20, logger });
      const conn = await pool.get(target);
      assert.equal((await conn.run(["echo", "ok"])).stdout, "ok\n");
      assert.equal(relay.accepted, 3);
      assert.ok(logger.lines.some((l) => l.includes("attempt 2")));
    });

    await t.step("does not retry an authentication failure", async () => {
      await using relay = new TcpRelay(sshd.port);
      await using other = await startSshd();
      const known = `${sshd.dir}/relay2_known_hosts`;
      await Deno.writeTextFile(known, `[127.0.0.1]:${relay.port} ${sshd.hostPublicKeyLine}\n`);
      await using pool = new SshPool({ retryBaseDelayMs: 20 });
      await assert.rejects(
        pool.get(
          targetOf(sshd, {
            port: relay.port,
            knownHostsFile: known,
            identityFile: other.identityFile,
          }),
        ),
        SshError,
      );
      assert.equal(relay.accepted, 1);
      assert.equal(pool.size, 0);
    });
  },
});

Deno.test({
  ...skipIf(unavailable, "SshConnection notices a dead or crashed server"),
  async fn(t) {
    await using sshd = await startSshd();

    await t.step("a silent peer is detected by keepalive", async () => {
      await using relay = new TcpRelay(sshd.port);
      const known = `${sshd.dir}/dead_known_hosts`;
      await Deno.writeTextFile(known, `[127.0.0.1]:${relay.port} ${sshd.hostPublicKeyLine}\n`);
      await using conn = await connectSsh(
        targetOf(sshd, { port: relay.port, knownHostsFile: known, keepaliveIntervalMs: 300 }),
      );
      // Short: once the relay freezes, sshd never hears of the close and the sleep outlives it.
      const running = conn.exec(["sleep", "5"]);
      running.catch(() => {});
      await new Promise((r) => setTimeout(r, 100));
      relay.frozen = true;
      const [result, ms] = await elapsed(() => running);
      const error = rejection(result);
      assert.ok(error instanceof SshError, String(error));
      assert.match(error.message, /connection was lost/);
      assert.ok(ms < 3_000, `took ${ms} ms`);
      assert.ok(conn.closed);
    });

    await t.step("a killed server ends running commands with an SshError", async () => {
      const conn = await connectSsh(targetOf(sshd));
      try {
        const running = conn.exec(["sleep", "30"]);
        const failed = assert.rejects(running, /connection was lost/);
        await new Promise((r) => setTimeout(r, 200));
        await sshd.kill();
        await failed;
      } finally {
        await conn.close();
        await sshd.restart();
      }
    });
  },
});

/**
 * Copies of a server's key and known_hosts under names ssh must read literally
 * (spaces, a quote, "%" and a "%h" token), for the rsync tests.
 */
async function hostileKeyCopies(
  sshd: ServerFields,
  dir: string,
): Promise<{ identityFile: string; knownHostsFile: string }> {
  const knownHostsFile = `${dir}/known hosts ${sshd.host} ${sshd.port}`;
  const identityFile = `${dir}/id %h key ${sshd.host} ${sshd.port}`;
  await Deno.copyFile(sshd.knownHostsFile, knownHostsFile);
  await Deno.copyFile(sshd.identityFile, identityFile);
  await Deno.chmod(identityFile, 0o600);
  return { identityFile, knownHostsFile };
}

Deno.test({
  ...skipIf(unavailable, "runRsync() against a real sshd"),
  async fn(t) {
    await using sshd = await startSshd();
    await using conn = await connectSsh(targetOf(sshd));
    const local = await Deno.makeTempDir({ prefix: "sbx rsync it's $(x) " });
    const remote = `${sshd.homeDir}/sbx rsync it's $(x) & ;`;
    // Paths ssh must read literally: spaces, a quote, a percent sign.
    const keys = await Deno.makeTempDir({ prefix: "sbx keys it's 100% " });
    const target = targetOf(sshd, await hostileKeyCopies(sshd, keys));
    const base = {
      source: local,
      target,
      remoteDir: remote,
      exclude: ["secret.env"],
      gitignore: true,
      delete: true,
      progress: true,
    };
    try {
      assert.equal((await conn.run(["mkdir", "-p", "--", remote])).code, 0);
      await writeTree(local, {
        ...ODD_NAMES,
        ".gitignore": "ignored.log\nbuild/\n",
        "build/out.o": "x",
      });

      await t.step("push honours .gitignore and excludes and keeps odd names literal", async () => {
        const progress: number[] = [];
        const report = await runRsync(base, { onProgress: (p) => progress.push(p.percent ?? -1) });
        assert.deepEqual(await listRemote(conn, remote), [
          "-dash-leading",
          ".gitignore",
          "a file with spaces.txt",
          "dir with space",
          'dir with space/nested "quoted".txt',
          "héllo 漢.txt",
          "it's $(weird) ; & | `name`",
        ]);
        assert.equal(report.method, "rsync");
        assert.equal(report.files, 6);
        assert.equal(report.deleted, 0);
        assert.equal(report.bytes, 5 + "ignored.log\nbuild/\n".length);
        assert.equal(progress.at(-1), 100);
      });

      await t.step(
        "a second push deletes removed files but keeps ignored remote ones",
        async () => {
          await Deno.remove(`${local}/a file with spaces.txt`);
          assert.equal((await conn.run(["mkdir", "-p", "--", `${remote}/build`])).code, 0);
          assert.equal(
            (await conn.run(["touch", "--", `${remote}/build/remote-artifact`])).code,
            0,
          );
          const report = await runRsync(base);
          assert.equal(report.deleted, 1);
          assert.equal(report.files, 0);
          const listed = await listRemote(conn, remote);
          assert.ok(!listed.includes("a file with spaces.txt"));
          assert.ok(listed.includes("build/remote-artifact"), "ignored paths are not deleted");
        },
      );

      await t.step("pull copies remote artifacts back", async () => {
        const dist = `${remote}/dist out`;
        await conn.run(["mkdir", "-p", "--", dist]);
        await conn.run(["sh", "-c", 'printf artifact > "$1/$2"', "sh", dist, "result $x.bin"]);
        const into = `${local}-pulled`;
        try {
          const report = await runRsync({
            ...base,
            source: into,
            remoteDir: dist,
            delete: false,
            gitignore: false,
            exclude: [],
            direction: "pull",
          });
          assert.equal(report.files, 1);
          assert.equal(await Deno.readTextFile(`${into}/result $x.bin`), "artifact");
        } finally {
          await Deno.remove(into, { recursive: true }).catch(() => {});
        }
      });

      await t.step(
        "a wrong host key fails as an SshError naming the known_hosts file",
        async () => {
          const wrong = await wrongKnownHostsFile(keys, sshd.host, sshd.port);
          await assert.rejects(
            runRsync({ ...base, target: { ...target, knownHostsFile: wrong } }),
            (error: unknown) => {
              assert.ok(error instanceof SshError, String(error));
              assert.match(error.message, /host key verification failed against .*known_hosts/);
              return true;
            },
          );
        },
      );
    } finally {
      await conn.run(["rm", "-rf", "--", remote]);
      await Deno.remove(local, { recursive: true });
      await Deno.remove(keys, { recursive: true });
    }
  },
});

// The target is an isolated host behind another one: it is reachable only through the jump host,
// so a connection that skipped the hop could not succeed.
isolatedTest("jump hosts: ssh2 ProxyJump and rsync ProxyCommand", async (t) => {
  await using bastion = await startIsolatedHost();
  await using inner = await startIsolatedHost({ behind: bastion });
  const target = targetOf(inner, { jump: targetOf(bastion) });

  await t.step("connectSsh() tunnels through the jump host and verifies both keys", async () => {
    await using conn = await connectSsh(target);
    assert.equal(conn.hostKeyFingerprint, inner.hostKeyFingerprint);
    assert.equal((await conn.run(["echo", "inside"])).stdout, "inside\n");
    await conn.close();
    // The jump connection was owned and is gone too.
    await eventually(async () => {
      const log = await bastion.log();
      return /Disconnected from user|Received disconnect/.test(log);
    });
  });

  await t.step("a wrong key for the target behind the jump is refused", async () => {
    const wrong = await wrongKnownHostsFile(inner.dir, inner.host, inner.port);
    await assert.rejects(
      connectSsh({ ...target, knownHostsFile: wrong }),
      (error: unknown) => error instanceof HostKeyError && error.reason === "mismatch",
    );
  });

  await t.step("the pool shares the jump connection", async () => {
    await using pool = new SshPool();
    const conn = await pool.get(target);
    const jump = await pool.get(target.jump!);
    assert.equal(pool.size, 2);
    assert.equal((await conn.run(["true"])).code, 0);
    assert.equal((await jump.run(["true"])).code, 0);
  });

  await t.step("rsync pushes through the jump host, both hops with odd key paths", async () => {
    await using conn = await connectSsh(target);
    const local = await Deno.makeTempDir({ prefix: "sbx-jump-" });
    const remote = `${inner.homeDir}/sbx jump push`;
    assert.equal(
      await Deno.connect({ hostname: inner.host, port: inner.port }).then(
        (c) => c.close(),
        () => "unreachable",
      ),
      "unreachable",
      "the target must not be reachable without the hop",
    );
    const keys = await Deno.makeTempDir({ prefix: "sbx jump keys it's 100% " });
    const hostileTarget = targetOf(inner, {
      ...await hostileKeyCopies(inner, keys),
      jump: targetOf(bastion, await hostileKeyCopies(bastion, keys)),
    });
    try {
      await Deno.writeTextFile(`${local}/via jump.txt`, "hop");
      await conn.run(["mkdir", "-p", "--", remote]);
      const report = await runRsync({
        source: local,
        target: hostileTarget,
        remoteDir: remote,
        exclude: [],
        gitignore: false,
        delete: true,
        progress: false,
      });
      assert.equal(report.files, 1);
      assert.equal((await conn.run(["cat", "--", `${remote}/via jump.txt`])).stdout, "hop");
    } finally {
      await conn.run(["rm", "-rf", "--", remote]);
      await Deno.remove(local, { recursive: true });
      await Deno.remove(keys, { recursive: true });
    }
  });
});
