import assert from "node:assert/strict";
import { ConfigError } from "../core/errors.ts";
import { resolveSshConfig } from "./ssh_config.ts";

const CONFIG = `
# Specific hosts first; the first value found wins, as in OpenSSH.
Host devbox
  HostName 10.0.0.5
  Port 12222
  User builder
  IdentityFile ~/.ssh/id_dev
  IdentityFile "/keys/with space/id_%h_%r"
  ProxyJump jump@bastion:2200
  UserKnownHostsFile ~/.ssh/known_hosts.sbx ~/.ssh/other

Host *.corp !skip.corp
  HostName %h.internal
  User corp

Host bare
  ProxyJump none

Match host 10.0.0.5
  Port 9999
  User ignored-because-set-earlier

Host *
  User fallback
  Port 2022
  IdentityFile %d/.ssh/id_default
`;

async function withConfig(text: string, fn: (file: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sbx-sshcfg-" });
  try {
    await Deno.writeTextFile(`${dir}/config`, text);
    await fn(`${dir}/config`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("resolveSshConfig() applies Host blocks first-match-wins and expands paths", async () => {
  await withConfig(CONFIG, async (file) => {
    assert.deepEqual(await resolveSshConfig("devbox", { file, home: "/home/me" }), {
      hostName: "10.0.0.5",
      port: 12222,
      user: "builder",
      identityFile: [
        "/home/me/.ssh/id_dev",
        "/keys/with space/id_10.0.0.5_builder",
        "/home/me/.ssh/id_default",
      ],
      proxyJump: "jump@bastion:2200",
      userKnownHostsFile: "/home/me/.ssh/known_hosts.sbx",
    });
  });
});

Deno.test("resolveSshConfig() handles wildcards, negation and %h in HostName", async () => {
  await withConfig(CONFIG, async (file) => {
    const corp = await resolveSshConfig("build.corp", { file, home: "/h" });
    assert.equal(corp.hostName, "build.corp.internal");
    assert.equal(corp.user, "corp");
    assert.equal(corp.port, 2022);
    const skipped = await resolveSshConfig("skip.corp", { file, home: "/h" });
    assert.equal(skipped.hostName, undefined);
    assert.equal(skipped.user, "fallback");
    const bare = await resolveSshConfig("bare", { file, home: "/h" });
    assert.equal(bare.proxyJump, undefined);
    assert.deepEqual(bare.identityFile, ["/h/.ssh/id_default"]);
  });
});

Deno.test("resolveSshConfig() agrees with ssh -G on host, port, user and jump", async () => {
  await withConfig(CONFIG, async (file) => {
    for (const alias of ["devbox", "build.corp", "bare", "other"]) {
      const out = await new Deno.Command("ssh", {
        args: ["-G", "-F", file, alias],
        stdout: "piped",
      })
        .output();
      assert.ok(out.success, `ssh -G ${alias} failed`);
      const g = new Map(
        new TextDecoder().decode(out.stdout).split("\n").map((l) => {
          const at = l.indexOf(" ");
          return [l.slice(0, at), l.slice(at + 1)] as const;
        }),
      );
      const ours = await resolveSshConfig(alias, { file, home: "/h" });
      assert.equal(ours.hostName ?? alias, g.get("hostname"), alias);
      assert.equal(String(ours.port ?? 22), g.get("port"), alias);
      assert.equal(ours.user, g.get("user"), alias);
      assert.equal(ours.proxyJump, g.get("proxyjump"), alias);
    }
  });
});

Deno.test("resolveSshConfig() returns nothing for a missing file", async () => {
  assert.deepEqual(
    await resolveSshConfig("x", { file: "/nonexistent/sbx/config", home: "/h" }),
    {},
  );
  assert.deepEqual(await resolveSshConfig("x", { home: "/nonexistent/sbx-home" }), {});
});

Deno.test("resolveSshConfig() refuses a bad Port with the file named", async () => {
  await withConfig("Host x\n  Port 70000\n", async (file) => {
    await assert.rejects(resolveSshConfig("x", { file, home: "/h" }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /config: Port: must be an integer/);
      return true;
    });
  });
});
