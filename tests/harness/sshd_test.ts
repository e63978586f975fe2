import { exists, processTable, skipIf } from "../helpers.ts";
import assert from "node:assert/strict";
import {
  freePort,
  hashedKnownHostsFile,
  reapStaleSshds,
  sshArgs,
  sshdUnavailableReason,
  startSshd,
  type TestSshd,
  testUserName,
  wrongKnownHostsFile,
} from "./sshd.ts";

const unavailable = await sshdUnavailableReason();

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

async function cmd(name: string, args: string[], stdin?: string): Promise<Out> {
  const child = new Deno.Command(name, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const o = await child.output();
  const d = new TextDecoder();
  return { code: o.code, stdout: d.decode(o.stdout), stderr: d.decode(o.stderr) };
}

/** Run `ssh` against the server; `opts` are extra client options placed before sshArgs. */
function ssh(sshd: TestSshd, remote: string, opts: string[] = []): Promise<Out> {
  return cmd("ssh", ["-o", "ConnectTimeout=5", ...opts, ...sshArgs(sshd), remote]);
}

/** PIDs of live processes whose command line mentions `needle` (via `ps`: Deno reads /proc only with -A). */
async function pidsMentioning(needle: string): Promise<number[]> {
  return (await processTable())
    .filter((p) => p.args.includes(needle) && !p.stat.startsWith("Z"))
    .map((p) => p.pid);
}

Deno.test({ ...skipIf(unavailable, "sshd: echo over real ssh, fields look right") }, async () => {
  await using sshd = await startSshd();
  const r = await ssh(sshd, "echo hi");
  assert.equal(r.code, 0, `ssh failed: ${r.stderr}\n${await sshd.log()}`);
  assert.equal(r.stdout, "hi\n");

  assert.equal(sshd.host, "127.0.0.1");
  assert.ok(sshd.port > 0 && sshd.port < 65536);
  assert.match(sshd.hostPublicKeyLine, /^ssh-ed25519 AAAA[A-Za-z0-9+/=]+$/);
  assert.match(sshd.publicKey, /^ssh-ed25519 AAAA/);
  assert.equal(
    await Deno.readTextFile(sshd.knownHostsFile),
    `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKeyLine}\n`,
  );
  assert.ok(await exists(sshd.identityFile));
  assert.ok(sshd.dir.includes("sbx-sshd-"));

  // The login user and home dir are what the server reports.
  const who = await ssh(sshd, 'id -un; echo "$HOME"; echo "$SHELL"');
  assert.equal(who.code, 0, who.stderr);
  const [user, home] = who.stdout.trim().split("\n");
  assert.equal(user, sshd.user);
  assert.equal(home, sshd.homeDir);
  if (Deno.uid() === 0) assert.equal(sshd.user, testUserName());

  // sftp subsystem is available.
  const sftp = await cmd("sftp", [
    "-b",
    "-",
    "-P",
    String(sshd.port),
    "-i",
    sshd.identityFile,
    "-o",
    "BatchMode=yes",
    "-o",
    `UserKnownHostsFile=${sshd.knownHostsFile}`,
    `${sshd.user}@${sshd.host}`,
  ], "pwd\n");
  assert.equal(sftp.code, 0, sftp.stderr);
  assert.match(sftp.stdout, /Remote working directory: \//);

  assert.match(await sshd.log(), /Accepted publickey for /);
});

Deno.test({ ...skipIf(unavailable, "sshd: strict host key checking") }, async () => {
  await using sshd = await startSshd();
  const ok = await ssh(sshd, "true");
  assert.equal(ok.code, 0, ok.stderr);

  const wrong = await wrongKnownHostsFile(sshd.dir, sshd.host, sshd.port);
  const wrongLine = await Deno.readTextFile(wrong);
  assert.ok(wrongLine.startsWith(`[127.0.0.1]:${sshd.port} ssh-ed25519 `));
  assert.ok(!wrongLine.includes(sshd.hostPublicKeyLine));
  const bad = await ssh(sshd, "echo should-not-run", ["-o", `UserKnownHostsFile=${wrong}`]);
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stdout, "");
  assert.match(bad.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);

  const hashed = await hashedKnownHostsFile(sshd);
  const hashedText = await Deno.readTextFile(hashed);
  assert.match(hashedText, /^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+ ssh-ed25519 AAAA/);
  assert.ok(!hashedText.includes("127.0.0.1"));
  const h = await ssh(sshd, "echo hashed", ["-o", `UserKnownHostsFile=${hashed}`]);
  assert.equal(h.code, 0, h.stderr);
  assert.equal(h.stdout, "hashed\n");
});

Deno.test(
  { ...skipIf(unavailable, "sshd: host key fingerprint matches ssh-keyscan") },
  async () => {
    await using sshd = await startSshd();
    const scan = await cmd("ssh-keyscan", ["-t", "ed25519", "-p", String(sshd.port), sshd.host]);
    assert.equal(scan.code, 0, scan.stderr);
    const line = scan.stdout.split("\n").find((l) => l.includes("ssh-ed25519"));
    assert.ok(line, `no key from ssh-keyscan: ${scan.stdout} ${scan.stderr}`);
    assert.equal(line.split(" ").slice(1).join(" "), sshd.hostPublicKeyLine);
    const fp = await cmd("ssh-keygen", ["-lf", "-"], scan.stdout);
    assert.equal(fp.code, 0, fp.stderr);
    assert.equal(fp.stdout.trim().split(/\s+/)[1], sshd.hostKeyFingerprint);
    assert.match(sshd.hostKeyFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
  },
);

Deno.test(
  { ...skipIf(unavailable, "sshd: kill() breaks connections, restart() restores") },
  async () => {
    await using sshd = await startSshd();
    const port = sshd.port;
    // An open session is dropped by kill().
    const session = new Deno.Command("ssh", {
      args: ["-o", "ConnectTimeout=5", ...sshArgs(sshd), "sleep 30"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 5_000;
    while (!(await sshd.log()).includes("Starting session") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const t0 = Date.now();
    await sshd.kill();
    const st = await session.status;
    assert.notEqual(st.code, 0);
    assert.ok(Date.now() - t0 < 3_000, "open session was not dropped promptly");
    assert.deepEqual(await pidsMentioning(`${sshd.dir}/sshd_config`), []);

    const down = await ssh(sshd, "true");
    assert.notEqual(down.code, 0);
    assert.match(down.stderr, /Connection refused/);

    await sshd.restart();
    assert.equal(sshd.port, port);
    const up = await ssh(sshd, "echo back");
    assert.equal(up.code, 0, up.stderr);
    assert.equal(up.stdout, "back\n");
    await sshd.restart(); // restart of a running server also works
    assert.equal((await ssh(sshd, "echo again")).stdout, "again\n");
  },
);

Deno.test({ ...skipIf(unavailable, "sshd: stop() cleans up, is idempotent") }, async () => {
  const sshd = await startSshd();
  const config = `${sshd.dir}/sshd_config`;
  assert.ok((await pidsMentioning(config)).length >= 1, "sshd is running");
  assert.equal((await ssh(sshd, "echo x")).stdout, "x\n");
  const t0 = performance.now();
  await sshd.stop();
  const ms = performance.now() - t0;
  assert.ok(ms < 2_500, `stop took ${ms} ms`);
  assert.equal(await exists(sshd.dir), false);
  assert.deepEqual(await pidsMentioning(config), []);
  await sshd.stop();
  await sshd[Symbol.asyncDispose]();
  assert.match(await sshd.log(), /Server listening on 127\.0\.0\.1 port/);
  const r = await ssh(sshd, "true");
  assert.notEqual(r.code, 0);
});

Deno.test({ ...skipIf(unavailable, "sshd: two servers at once") }, async () => {
  await using a = await startSshd();
  await using b = await startSshd();
  assert.notEqual(a.port, b.port);
  assert.notEqual(a.dir, b.dir);
  assert.notEqual(a.hostPublicKeyLine, b.hostPublicKeyLine);
  assert.notEqual(a.publicKey, b.publicKey);
  const [ra, rb] = await Promise.all([ssh(a, "echo a"), ssh(b, "echo b")]);
  assert.equal(ra.stdout, "a\n", ra.stderr);
  assert.equal(rb.stdout, "b\n", rb.stderr);
  // Each server only accepts its own key.
  const onlyB = await cmd("ssh", [
    "-o",
    "ConnectTimeout=5",
    ...sshArgs({ ...a, identityFile: b.identityFile } as TestSshd),
    "true",
  ]);
  assert.notEqual(onlyB.code, 0);
  assert.match(onlyB.stderr, /Permission denied/);
});

Deno.test({ ...skipIf(unavailable, "sshd: keyPassphrase") }, async () => {
  await using sshd = await startSshd({ keyPassphrase: "s3cret" });
  const withPass = await cmd("ssh-keygen", ["-y", "-P", "s3cret", "-f", sshd.identityFile]);
  assert.equal(withPass.code, 0, withPass.stderr);
  assert.equal(withPass.stdout.trim(), sshd.publicKey.trim());
  const noPass = await cmd("ssh-keygen", ["-y", "-P", "", "-f", sshd.identityFile]);
  assert.notEqual(noPass.code, 0);
  // BatchMode cannot unlock the key.
  const r = await ssh(sshd, "echo hi");
  assert.notEqual(r.code, 0);
});

Deno.test({ ...skipIf(unavailable, "sshd: extraConfig is applied") }, async () => {
  await using sshd = await startSshd({ extraConfig: ["ForceCommand echo forced"] });
  const r = await ssh(sshd, "echo hi");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "forced\n");
});

Deno.test({ ...skipIf(unavailable, "sshd: bad config fails fast with the log") }, async () => {
  await assert.rejects(
    () => startSshd({ extraConfig: ["NoSuchOption yes"] }),
    /sshd exited during startup[\s\S]*NoSuchOption|Bad configuration option/,
  );
});

Deno.test(
  { ...skipIf(unavailable, "sshd: reapStaleSshds cleans up after a killed test process") },
  async () => {
    const harness = new URL("./sshd.ts", import.meta.url).href;
    const code = `import { startSshd } from ${JSON.stringify(harness)};
    const s = await startSshd();
    console.log(s.dir);
    setInterval(() => {}, 1000);`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    const dir = out.trim();
    assert.match(dir, /sbx-sshd-/);
    const config = `${dir}/sshd_config`;
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel();
    assert.ok((await pidsMentioning(config)).length >= 1, "orphaned sshd should still run");
    await reapStaleSshds();
    assert.deepEqual(await pidsMentioning(config), []);
    assert.equal(await exists(dir), false);
  },
);

Deno.test("freePort returns a bindable port", async () => {
  const port = await freePort();
  const l = Deno.listen({ hostname: "127.0.0.1", port });
  l.close();
});

const noNetns = unavailable ??
  (Deno.uid() !== 0
    ? "network namespaces need root"
    : (await cmd("ip", ["netns", "list"]).catch(() => ({ code: 1 }))).code !== 0
    ? "`ip netns list` fails (install iproute2)"
    : undefined);

Deno.test({ ...skipIf(noNetns, "sshd: inside a network namespace") }, async () => {
  const ns = `sbxh-${crypto.randomUUID().slice(0, 8)}`;
  const addr = "10.213.77.1";
  const ip = async (...args: string[]) => {
    const r = await cmd("ip", args);
    assert.equal(r.code, 0, `ip ${args.join(" ")}: ${r.stderr}`);
  };
  await ip("netns", "add", ns);
  try {
    await ip("-n", ns, "link", "set", "lo", "up");
    await ip("-n", ns, "addr", "add", `${addr}/32`, "dev", "lo");
    await using sshd = await startSshd({ netns: ns, listenAddress: addr });
    assert.equal(sshd.host, addr);
    assert.equal(
      await Deno.readTextFile(sshd.knownHostsFile),
      `[${addr}]:${sshd.port} ${sshd.hostPublicKeyLine}\n`,
    );
    // Not reachable from the root namespace...
    const direct = await ssh(sshd, "true", ["-o", "ConnectTimeout=1"]);
    assert.notEqual(direct.code, 0);
    // ...but through the namespace.
    const proxy = `ProxyCommand=ip netns exec ${ns} busybox nc %h %p`;
    const r = await ssh(sshd, "echo netns", ["-o", proxy]);
    assert.equal(r.code, 0, `${r.stderr}\n${await sshd.log()}`);
    assert.equal(r.stdout, "netns\n");
    await sshd.kill();
    assert.notEqual((await ssh(sshd, "true", ["-o", proxy])).code, 0);
    await sshd.restart();
    assert.equal((await ssh(sshd, "echo again", ["-o", proxy])).stdout, "again\n");
  } finally {
    await cmd("ip", ["netns", "delete", ns]);
  }
});
