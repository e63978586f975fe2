/**
 * `SshConnection.openRawExec` and rsync relayed over it (`runRsyncOverConnection`), against a
 * REAL OpenSSH server (tests/harness/sshd.ts). Linux only, like the relay.
 * Run with: deno test --allow-all tests/transport
 */
import { skipIf } from "../helpers.ts";
import assert from "node:assert/strict";
import { sshdUnavailableReason, startSshd, type TestSshd } from "../harness/sshd.ts";
import { SshError } from "../../src/core/errors.ts";
import { type RawExecOpener, runRsyncOverConnection } from "../../src/sync/rsync_relay.ts";
import { rsyncRelaySupported } from "../../src/sync/rsync_version.ts";
import { connectSsh } from "../../src/transport/ssh/connection.ts";
import type { SshTarget } from "../../src/transport/ssh/types.ts";
import { shellQuote } from "../../src/transport/quote.ts";
import { listRemote, ODD_NAMES, writeTree } from "./tree_fixture.ts";

const unavailable = (await sshdUnavailableReason()) ??
  (await rsyncRelaySupported() ? undefined : "no rsync relay here (Linux and rsync 3.2.4+)");

function targetOf(sshd: TestSshd): SshTarget {
  return {
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    identityFile: sshd.identityFile,
    knownHostsFile: sshd.knownHostsFile,
    connectTimeoutMs: 5_000,
  };
}

/** Local processes whose command line mentions `needle` (this test process excluded). */
async function processesMentioning(needle: string): Promise<string[]> {
  const out = await new Deno.Command("ps", { args: ["-e", "-ww", "-o", "pid=,args="] }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((line) => {
    const match = /^\s*(\d+)\s(.*)$/.exec(line);
    return match !== null && Number(match[1]) !== Deno.pid && match[2].includes(needle);
  });
}

async function until(what: string, check: () => Promise<boolean>, ms = 5_000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  ...skipIf(unavailable, "SshConnection.openRawExec() streams both ways with backpressure"),
  async fn(t) {
    await using sshd = await startSshd();
    await using conn = await connectSsh(targetOf(sshd));

    await t.step("8 MiB through cat, read slowly, arrive intact", async () => {
      const channel = await conn.openRawExec("cat");
      const size = 8 * 1024 * 1024;
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i++) data[i] = (i * 7 + (i >> 11)) & 0xff;
      const writing = (async () => {
        const writer = channel.stdin.getWriter();
        for (let i = 0; i < size; i += 100_000) await writer.write(data.subarray(i, i + 100_000));
        await writer.close();
      })();
      const received = new Uint8Array(size);
      let at = 0;
      for await (const chunk of channel.stdout) {
        received.set(chunk, at);
        at += chunk.length;
        if (at < 1024 * 1024) await new Promise((r) => setTimeout(r, 1));
      }
      await writing;
      assert.equal(await new Response(channel.stderr).text(), "");
      assert.equal(await channel.exit, 0);
      assert.equal(at, size);
      assert.deepEqual(received, data);
    });

    await t.step("exit status and stderr of a pre-quoted command", async () => {
      const command = shellQuote(["sh", "-c", 'echo "$1" >&2; exit 3', "sh", "it's $(x)"]);
      const channel = await conn.openRawExec(command);
      await channel.stdin.close();
      const [out, err] = await Promise.all([
        new Response(channel.stdout).text(),
        new Response(channel.stderr).text(),
      ]);
      assert.equal(out, "");
      assert.equal(err, "it's $(x)\n");
      assert.equal(await channel.exit, 3);
    });

    await t.step("abort kills the command and rejects exit; the slot is freed", async () => {
      const controller = new AbortController();
      const channel = await conn.openRawExec("sleep 30", { signal: controller.signal });
      const drained = Promise.all([channel.stdout.cancel(), channel.stderr.cancel()]);
      setTimeout(() => controller.abort(new Error("stop")), 100);
      const started = performance.now();
      await assert.rejects(channel.exit, /stop/);
      await drained;
      assert.ok(performance.now() - started < 3_000);
      // All 8 slots come back: 8 more channels open at once.
      const all = await Promise.all(
        Array.from({ length: 8 }, () => conn.openRawExec("true")),
      );
      for (const c of all) {
        await Promise.all([c.stdin.close(), c.stdout.cancel(), c.stderr.cancel()]);
        assert.equal(await c.exit, 0);
      }
    });
  },
});

Deno.test({
  ...skipIf(unavailable, "runRsyncOverConnection() against a real sshd"),
  async fn(t) {
    await using sshd = await startSshd();
    await using conn = await connectSsh(targetOf(sshd));
    const local = await Deno.makeTempDir({ prefix: "sbx relay it's $(x) " });
    const remote = `${sshd.homeDir}/sbx relay it's $(x) & ;`;
    const base = {
      source: local,
      target: targetOf(sshd),
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
        "new\nline": "6",
        ".gitignore": "ignored.log\n",
      });

      await t.step("push keeps hostile names literal, honours filters, reports", async () => {
        const progress: number[] = [];
        const report = await runRsyncOverConnection(base, conn, {
          onProgress: (p) => progress.push(p.percent ?? -1),
        });
        assert.deepEqual(await listRemote(conn, remote), [
          "-dash-leading",
          ".gitignore",
          "a file with spaces.txt",
          "dir with space",
          'dir with space/nested "quoted".txt',
          "héllo 漢.txt",
          "it's $(weird) ; & | `name`",
          "new\nline",
        ]);
        assert.equal(report.method, "rsync");
        assert.equal(report.files, 7);
        assert.equal(report.bytes, 6 + "ignored.log\n".length);
        assert.equal(progress.at(-1), 100);
      });

      await t.step("a second push deletes and sends nothing else", async () => {
        await Deno.remove(`${local}/a file with spaces.txt`);
        const report = await runRsyncOverConnection(base, conn);
        assert.deepEqual({ files: report.files, deleted: report.deleted }, {
          files: 0,
          deleted: 1,
        });
      });

      await t.step("pull copies a remote entry back", async () => {
        await conn.run(["sh", "-c", 'printf artifact > "$1/$2"', "sh", remote, "out $x.bin"]);
        const into = `${local}-pulled`;
        try {
          await runRsyncOverConnection({
            ...base,
            source: into,
            remoteDir: `${remote}/out $x.bin`,
            delete: false,
            gitignore: false,
            exclude: [],
            progress: false,
            direction: "pull",
            remoteEntry: true,
          }, conn);
          assert.equal(await Deno.readTextFile(`${into}/out $x.bin`), "artifact");
        } finally {
          await Deno.remove(into, { recursive: true }).catch(() => {});
        }
      });

      await t.step("no rsync on the remote side: SshError saying so", async () => {
        // The command rsync built, run under a program name that does not exist.
        const missing: RawExecOpener = {
          openRawExec: (command, options) =>
            conn.openRawExec(command.replace(/^rsync /, "no-such-rsync-xyz "), options),
        };
        await assert.rejects(runRsyncOverConnection(base, missing), (error: unknown) => {
          assert.ok(error instanceof SshError, String(error));
          assert.match(error.message, /rsync is not installed on the remote host/);
          return true;
        });
      });

      await t.step("abort mid-transfer: rejects fast, leaves no rsync behind", async () => {
        const big = await Deno.open(`${local}/big.bin`, { write: true, create: true });
        await big.truncate(0);
        const block = crypto.getRandomValues(new Uint8Array(65_536));
        for (let i = 0; i < 64 * 16; i++) await big.write(block);
        big.close();
        const controller = new AbortController();
        const started = performance.now();
        let aborted = 0;
        await assert.rejects(
          runRsyncOverConnection({ ...base, remoteDir: `${remote}/slow` }, conn, {
            signal: controller.signal,
            onProgress: () => {
              if (aborted === 0) {
                aborted = performance.now();
                controller.abort(new Error("user abort"));
              }
            },
          }),
          /user abort/,
        );
        assert.ok(performance.now() - started < 10_000);
        await until(
          "no relay processes",
          async () => (await processesMentioning(sshd.homeDir)).length === 0,
        );
        await until(
          "no remote rsync server",
          async () =>
            (await processesMentioning("rsync --server")).filter((l) => l.includes(sshd.homeDir))
              .length === 0,
        );
      });

      await t.step("64 MiB out and back again: backpressure both ways, bytes intact", async () => {
        await runRsyncOverConnection({ ...base, remoteDir: `${remote}/big` }, conn);
        const into = `${local}-big`;
        try {
          const report = await runRsyncOverConnection({
            ...base,
            source: into,
            remoteDir: `${remote}/big/big.bin`,
            delete: false,
            gitignore: false,
            exclude: [],
            progress: false,
            direction: "pull",
            remoteEntry: true,
          }, conn);
          assert.equal(report.files, 1);
          assert.deepEqual(
            await Deno.readFile(`${into}/big.bin`),
            await Deno.readFile(`${local}/big.bin`),
          );
        } finally {
          await Deno.remove(into, { recursive: true }).catch(() => {});
        }
      });

      await t.step(
        "the connection closing mid-transfer fails as lost, without hanging",
        async () => {
          const own = await connectSsh(targetOf(sshd));
          let closing: Promise<void> | undefined;
          // The remote side stalls first, so the connection surely closes while rsync waits on it.
          const stalled: RawExecOpener = {
            openRawExec: async (command, options) => {
              const channel = await own.openRawExec(`sleep 5; ${command}`, options);
              setTimeout(() => closing = own.close(), 300);
              return channel;
            },
          };
          const started = performance.now();
          await assert.rejects(
            runRsyncOverConnection({ ...base, remoteDir: `${remote}/lost` }, stalled),
            (error: unknown) => {
              assert.ok(error instanceof SshError, String(error));
              assert.match(error.message, /connection was lost during the transfer/);
              return true;
            },
          );
          await closing;
          assert.ok(performance.now() - started < 4_000, "no hang");
          await until(
            "no relay processes",
            async () =>
              // The remote shell sleeps on (sshd does not signal a session's orphans): only ours count.
              (await processesMentioning(sshd.homeDir)).filter((l) => !l.includes("sleep 5"))
                .length === 0,
          );
        },
      );
    } finally {
      await Deno.remove(local, { recursive: true }).catch(() => {});
    }
  },
});
