import assert from "node:assert/strict";
import { RsyncTooOldError, RsyncVersionError } from "../core/errors.ts";
import { shellQuote } from "../transport/quote.ts";
import { buildRsyncArgv, buildRsyncRelayArgv } from "./rsync.ts";
import { parseProgressLine, parseRsyncStats } from "./rsync_output.ts";
import type { RsyncCapabilities, RsyncPlan } from "./rsync_types.ts";
import { parseRsyncVersion } from "./rsync_version.ts";

const MODERN: RsyncCapabilities = { version: "3.2.7", protectsArgsByDefault: true };
const OLD: RsyncCapabilities = { version: "3.1.3", protectsArgsByDefault: false };

function plan(overrides: Partial<RsyncPlan> = {}): RsyncPlan {
  return {
    source: "/src/app",
    target: {
      host: "10.0.0.5",
      port: 12222,
      user: "dev",
      identityFile: "/keys/id_ed25519",
      knownHostsFile: "/state/known_hosts",
    },
    remoteDir: "/build/sbx-1",
    exclude: [],
    gitignore: false,
    delete: false,
    progress: false,
    ...overrides,
  };
}

const SSH_E = "ssh -F /dev/null -p 12222 -o 'IdentityFile=\"/keys/id_ed25519\"' " +
  "-o IdentitiesOnly=yes -o BatchMode=yes " +
  `-o StrictHostKeyChecking=yes -o 'UserKnownHostsFile="/state/known_hosts"' ` +
  "-o GlobalKnownHostsFile=/dev/null -o CheckHostIP=no -o UpdateHostKeys=no " +
  "-o ConnectTimeout=15 -o ServerAliveInterval=5 -o ServerAliveCountMax=3";

Deno.test("buildRsyncArgv() builds a full push", () => {
  assert.deepEqual(
    buildRsyncArgv(
      plan({ gitignore: true, delete: true, progress: true, exclude: ["node_modules/", "*.o"] }),
      MODERN,
    ),
    [
      "rsync",
      "-e",
      SSH_E,
      "--archive",
      "--delete",
      "--filter=:- .gitignore",
      "--exclude=node_modules/",
      "--exclude=*.o",
      "--stats",
      "--no-human-readable",
      "--info=progress2",
      "--no-inc-recursive",
      "--",
      "/src/app/",
      "dev@10.0.0.5:/build/sbx-1/",
    ],
  );
});

Deno.test("buildRsyncArgv() swaps operands for a pull", () => {
  const argv = buildRsyncArgv(plan({ direction: "pull", remoteDir: "/build/sbx-1/dist/" }), MODERN);
  assert.deepEqual(argv.slice(-3), ["--", "dev@10.0.0.5:/build/sbx-1/dist/", "/src/app/"]);
});

Deno.test("buildRsyncArgv() never lets the local path become an option", () => {
  assert.equal(buildRsyncArgv(plan({ source: "-rf" }), MODERN).at(-2), "./-rf/");
  assert.equal(buildRsyncArgv(plan({ source: "app dir/" }), MODERN).at(-2), "./app dir/");
  assert.equal(buildRsyncArgv(plan({ source: "./x" }), MODERN).at(-2), "./x/");
  assert.equal(buildRsyncArgv(plan({ source: "/a/" }), MODERN).at(-2), "/a/");
});

Deno.test("buildRsyncArgv() adapts to the rsync version", () => {
  const old = buildRsyncArgv(plan({ progress: true }), OLD);
  assert.ok(old.includes("--protect-args"));
  assert.ok(old.includes("--info=progress2"));
  const older = buildRsyncArgv(plan({ progress: true }), {
    version: "3.0.9",
    protectsArgsByDefault: false,
  });
  assert.ok(older.includes("--protect-args"));
  assert.ok(!older.includes("--info=progress2"), "progress2 needs 3.1");
  assert.ok(!buildRsyncArgv(plan(), MODERN).includes("--protect-args"));
  assert.throws(
    () => buildRsyncArgv(plan(), { version: "2.6.9", protectsArgsByDefault: false }),
    (error: unknown) =>
      error instanceof RsyncTooOldError && error.version === "2.6.9" &&
      error.required === "3.0.0",
  );
});

Deno.test("buildRsyncArgv() quotes hostile paths for ssh and rsync's -e splitter", () => {
  const argv = buildRsyncArgv(
    plan({
      target: {
        host: "::1",
        port: 22,
        user: "dev",
        identityFile: "/k e y/id%h",
        knownHostsFile: `/it's "q"/k\\h`,
        connectTimeoutMs: 1500,
      },
      sshConfigFile: "/cfg/ssh config",
    }),
    MODERN,
  );
  assert.equal(
    argv[2],
    "ssh -F '/cfg/ssh config' -p 22 -o 'IdentityFile=\"/k e y/id%%h\"' " +
      "-o IdentitiesOnly=yes -o BatchMode=yes " +
      `-o StrictHostKeyChecking=yes -o 'UserKnownHostsFile="/it'"'"'s \\"q\\"/k\\\\h"' ` +
      "-o GlobalKnownHostsFile=/dev/null -o CheckHostIP=no -o UpdateHostKeys=no " +
      "-o ConnectTimeout=2 -o ServerAliveInterval=5 -o ServerAliveCountMax=3",
  );
  assert.equal(argv.at(-1), "dev@[::1]:/build/sbx-1/");
});

Deno.test("buildRsyncArgv() hops through a jump host with its own key and known_hosts", () => {
  const argv = buildRsyncArgv(
    plan({
      target: {
        host: "10.0.0.5",
        port: 12222,
        user: "dev",
        knownHostsFile: "/state/kh",
        jump: {
          host: "bastion",
          port: 2200,
          user: "j",
          identityFile: "/k/j%",
          knownHostsFile: "/state/kh",
        },
      },
    }),
    MODERN,
  );
  const proxy = "ssh -F /dev/null -p 2200 -o 'IdentityFile=\"/k/j%%%%\"' " +
    "-o IdentitiesOnly=yes -o BatchMode=yes " +
    `-o StrictHostKeyChecking=yes -o 'UserKnownHostsFile="/state/kh"' ` +
    "-o GlobalKnownHostsFile=/dev/null -o CheckHostIP=no -o UpdateHostKeys=no " +
    "-o ConnectTimeout=15 -o ServerAliveInterval=5 -o ServerAliveCountMax=3 " +
    "-W '[%h]:%p' -l j -- bastion";
  assert.ok(argv[2].endsWith(` -o 'ProxyCommand=${proxy.replaceAll("'", `'"'"'`)}'`), argv[2]);
});

Deno.test("buildRsyncArgv() refuses unsafe targets and remote paths", () => {
  const bad: Partial<RsyncPlan>[] = [
    { remoteDir: "build/x" },
    { remoteDir: "/" },
    { remoteDir: "/build/../etc" },
    { remoteDir: "/build/./x" },
    { remoteDir: "/build/*" },
    { remoteDir: "/build/a[1]" },
    { remoteDir: "/build/a\nb" },
    { remoteDir: ".." },
    { remoteDir: "./../etc" },
    { remoteDir: "./a/../../b" },
    { remoteDir: ".//a" },
    { remoteDir: "./a/./b" },
    { remoteDir: "./*" },
    { remoteDir: ".hidden" },
    { target: { host: "-oProxyCommand=x", port: 22, user: "u", knownHostsFile: "/k" } },
    { target: { host: "h", port: 22, user: "u@x", knownHostsFile: "/k" } },
    { target: { host: "h", port: 22, user: "u", knownHostsFile: "relative/kh" } },
    { target: { host: "h", port: 22, user: "u", knownHostsFile: "/k", identityFile: "~/.ssh/id" } },
    {
      target: {
        host: "h",
        port: 22,
        user: "u",
        knownHostsFile: "/k",
        jump: {
          host: "j",
          port: 22,
          user: "u",
          knownHostsFile: "/k",
          jump: { host: "j2", port: 22, user: "u", knownHostsFile: "/k" },
        },
      },
    },
  ];
  for (const overrides of bad) {
    assert.throws(
      () => buildRsyncArgv(plan(overrides), MODERN),
      TypeError,
      JSON.stringify(overrides),
    );
  }
});

Deno.test("buildRsyncArgv() runs the remote rsync through rsyncPath, in ./ paths", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sbx-rsync-path-" });
  try {
    await Deno.writeTextFile(
      `${dir}/ssh`,
      '#!/bin/sh\nprintf "%s\\0" "$@" > "$SBX_ARGV_OUT"\nexit 255\n',
      { mode: 0o755 },
    );
    // What a workspace wrapper gets: hostile words stay words, then rsync's own.
    const wrapper = ["sh", "-c", 'printf "%s\\0" "$@"', "sh", "/b/sbx 1", "$(x) 'q'", "rsync"];
    for (const [remoteDir, last] of [[".", "./"], ["./dist/a b.tar", "./dist/a b.tar"]]) {
      const argv = buildRsyncArgv(
        plan({
          source: dir,
          remoteDir,
          rsyncPath: wrapper,
          direction: remoteDir === "." ? "push" : "pull",
          remoteEntry: true,
        }),
        MODERN,
      );
      assert.ok(argv.includes(`--rsync-path=${shellQuote(wrapper)}`), JSON.stringify(argv));
      await new Deno.Command(argv[0], {
        args: argv.slice(1),
        env: {
          PATH: `${dir}:${Deno.env.get("PATH")}`,
          SBX_ARGV_OUT: `${dir}/argv`,
          RSYNC_OLD_ARGS: "0",
        },
        stdout: "null",
        stderr: "null",
      }).output();
      const seen = (await Deno.readTextFile(`${dir}/argv`)).split("\0").slice(0, -1);
      // ssh joins the words after the host for the remote shell, as a real remote sh reads them.
      const command = seen.slice(seen.indexOf("10.0.0.5") + 1).join(" ");
      const remote = await new Deno.Command("sh", { args: ["-c", command], stdout: "piped" })
        .output();
      const words = new TextDecoder().decode(remote.stdout).split("\0").slice(0, -1);
      assert.deepEqual(words.slice(0, 4), ["/b/sbx 1", "$(x) 'q'", "rsync", "--server"]);
      assert.equal(words.at(-1), last);
      assert.equal(words.at(-2), ".");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseRsyncVersion() reads rsync, older rsync and openrsync banners", () => {
  assert.deepEqual(parseRsyncVersion("rsync  version 3.5.0  protocol version 32\n"), {
    version: "3.5.0",
    protectsArgsByDefault: true,
  });
  assert.deepEqual(parseRsyncVersion("rsync  version v3.2.3  protocol version 31\n"), {
    version: "3.2.3",
    protectsArgsByDefault: false,
  });
  assert.equal(
    parseRsyncVersion("openrsync: protocol version 29\nrsync version 2.6.9 compatible\n").version,
    "2.6.9",
  );
  assert.throws(
    () => parseRsyncVersion("nothing here"),
    (error: unknown) => error instanceof RsyncVersionError && error.output === "nothing here",
  );
});

Deno.test("parseRsyncStats() and parseProgressLine() read rsync's output", () => {
  const stats = [
    "Number of files: 33 (reg: 31, dir: 2)",
    "Number of created files: 32 (reg: 31, dir: 1)",
    "Number of deleted files: 4 (reg: 4)",
    "Number of regular files transferred: 31",
    "Total file size: 3,000,002 bytes",
    "Total transferred file size: 3000002 bytes",
  ].join("\n");
  assert.deepEqual(parseRsyncStats(stats), { files: 31, deleted: 4, bytes: 3000002 });
  assert.deepEqual(parseRsyncStats(""), { files: 0, deleted: 0, bytes: 0 });
  assert.deepEqual(
    parseProgressLine("      1234567  45%   12.34MB/s    0:00:01 (xfr#3, to-chk=10/20)"),
    { bytes: 1234567, percent: 45, files: 3 },
  );
  assert.deepEqual(parseProgressLine("  1,000,002  33%   73.36MB/s    0:00:00"), {
    bytes: 1000002,
    percent: 33,
  });
  assert.equal(parseProgressLine("Number of files: 3"), undefined);
});

Deno.test("buildRsyncArgv()'s -e survives the real rsync splitter and ssh's option parser", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sbx-rsync-e-" });
  try {
    // A fake ssh first on PATH records the argv rsync gives it.
    await Deno.writeTextFile(
      `${dir}/ssh`,
      '#!/bin/sh\nprintf "%s\\0" "$@" > "$SBX_ARGV_OUT"\nexit 255\n',
      { mode: 0o755 },
    );
    const knownHosts = `${dir}/it's "q" 100%/kh`;
    const key = `${dir}/k e y/%id`;
    const argv = buildRsyncArgv(
      plan({
        source: dir,
        target: {
          host: "127.0.0.1",
          port: 2222,
          user: "dev",
          identityFile: key,
          knownHostsFile: knownHosts,
          jump: {
            host: "jump",
            port: 2200,
            user: "j",
            identityFile: key,
            knownHostsFile: knownHosts,
          },
        },
      }),
      MODERN,
    );
    const out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      env: { PATH: `${dir}:${Deno.env.get("PATH")}`, SBX_ARGV_OUT: `${dir}/argv` },
      stdout: "null",
      stderr: "null",
    }).output();
    assert.notEqual(out.code, 0);
    const seen = (await Deno.readTextFile(`${dir}/argv`)).split("\0").slice(0, -1);
    // The splitter gave ssh exactly our words, then rsync's user/host/command.
    const hostAt = seen.indexOf("127.0.0.1");
    assert.ok(hostAt > 0, JSON.stringify(seen));
    const ours = seen.slice(0, hostAt).filter((_, i, a) => !(a[i] === "-l" || a[i - 1] === "-l"));
    assert.ok(ours.includes(`IdentityFile="${key.replaceAll("%", "%%")}"`), JSON.stringify(ours));

    // The real ssh reads the options as intended (ssh -G prints the result, no connection).
    // A rejected option is exactly the regression this catches, so a failing ssh -G fails the
    // test (tools/test.sh installs openssh-client).
    const g = await new Deno.Command("ssh", {
      args: ["-G", ...ours, "127.0.0.1"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(
      g.success,
      `ssh -G rejected the generated options: ${new TextDecoder().decode(g.stderr)}`,
    );
    const config = new TextDecoder().decode(g.stdout);
    assert.match(config, /^batchmode yes$/m);
    assert.match(config, /^stricthostkeychecking true$/m);
    assert.ok(config.includes(`\nuserknownhostsfile ${knownHosts}\n`), config);
    // ssh -G shows identity files before their % expansion, which happens at connect time
    // (the rsync integration test connects with a key named "id %h key").
    assert.ok(config.includes(`\nidentityfile ${key.replaceAll("%", "%%")}\n`), config);
    const proxy = /^proxycommand (.*)$/m.exec(config)?.[1] ?? "";
    assert.ok(proxy.includes("-W '[%h]:%p' -l j -- jump"), proxy);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildRsyncRelayArgv() runs the constant relay as -e and keeps stdout free", () => {
  const argv = buildRsyncRelayArgv(plan({ progress: true }), MODERN);
  assert.equal(argv[1], "-e");
  // The script is one single-quoted word (it has no single quote of its own to escape).
  assert.match(argv[2], /^sh -c '[^']*' relay$/s);
  assert.ok(argv.includes("--stderr=all"));
  assert.ok(argv.includes("--blocking-io"));
  assert.ok(argv.includes("--stats"));
  assert.ok(!argv.includes("--protect-args"));
  assert.ok(!argv.some((a) => a.includes("ssh -F")));
  assert.deepEqual(argv.slice(-2), ["/src/app/", "dev@10.0.0.5:/build/sbx-1/"]);
});

Deno.test("buildRsyncRelayArgv() refuses rsync before 3.2.4 and an option-like host", () => {
  assert.throws(() => buildRsyncRelayArgv(plan(), OLD), RsyncTooOldError);
  assert.throws(
    () => buildRsyncRelayArgv(plan({ target: { ...plan().target, host: "-oProxy" } }), MODERN),
    TypeError,
  );
});

Deno.test("buildRsyncArgv() with rsh: -e is that argv, quoted; the host names its alias", () => {
  const rsh = ["ssh", "-F", "/state/mux/ab cd.config", "-S", "/state/mux/ab cd"] as const;
  const target = { ...plan().target, host: "sbx-mux-abcd" };
  const argv = buildRsyncArgv(plan({ rsh, target }), MODERN);
  assert.deepEqual(argv.slice(0, 3), ["rsync", "-e", shellQuote(rsh)]);
  assert.equal(argv.at(-1), "dev@sbx-mux-abcd:/build/sbx-1/");
  assert.throws(
    () => buildRsyncArgv(plan({ rsh, target: { ...target, host: "-oProxyCommand=x" } }), MODERN),
    TypeError,
  );
});
