import assert from "node:assert/strict";
import { sshConfigBlock } from "./openssh_config.ts";
import { tempDir } from "../testing/temp_dir.ts";

const refuse = (problem: string) => new Error(problem);

Deno.test("sshConfigBlock(): OpenSSH reads back paths with spaces and % exactly", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/state with space %d`;
  const block = sshConfigBlock({
    alias: "sbx-abc",
    host: "127.0.0.1",
    port: 2222,
    user: "builder",
    knownHostsFile: `${dir}/sbx-abc.known_hosts`,
    identityFile: `${dir}/key 100%`,
  }, refuse);
  const file = `${tmp.path}/config`;
  await Deno.writeTextFile(file, block);
  // ssh -G prints the configuration it would use, without connecting.
  const out = await new Deno.Command("ssh", {
    args: ["-G", "-F", file, "sbx-abc"],
    stdout: "piped",
  })
    .output();
  assert.equal(out.code, 0);
  const settings = new TextDecoder().decode(out.stdout).split("\n");
  const value = (key: string) =>
    settings.filter((l) => l.startsWith(`${key} `)).map((l) => l.slice(key.length + 1));
  assert.deepEqual(value("hostname"), ["127.0.0.1"]);
  assert.deepEqual(value("port"), ["2222"]);
  assert.deepEqual(value("user"), ["builder"]);
  assert.deepEqual(value("hostkeyalias"), ["sbx-abc"]);
  assert.deepEqual(value("stricthostkeychecking"), ["true"]);
  assert.ok(
    value("userknownhostsfile")[0].includes(`${dir}/sbx-abc.known_hosts`),
    value("userknownhostsfile")[0],
  );
  // -G shows identity files before their % expansion, which happens at connect time.
  assert.ok(
    value("identityfile")[0].includes(`${dir}/key 100%`.replaceAll("%", "%%")),
    value("identityfile")[0],
  );
});

Deno.test("sshConfigBlock(): a value no config file can hold is refused, not written", () => {
  for (const bad of ['a"b', "a\\b", "a\nProxyCommand x"]) {
    assert.throws(
      () =>
        sshConfigBlock({
          alias: "sbx-abc",
          host: "h",
          port: 22,
          user: "u",
          knownHostsFile: `/tmp/${bad}`,
        }, refuse),
      /OpenSSH config file cannot hold/,
    );
  }
});
