import assert from "node:assert/strict";
import { ConfigError } from "../../core/errors.ts";
import { Manager } from "../../sandbox/manager.ts";
import { tempDir } from "../../testing/temp_dir.ts";
import { writeProfile } from "../../testing/write_profile.ts";
import type { ComposeSshConfig } from "./config.ts";

const COMPOSE = "services:\n  sshd:\n    image: x\n";

/** Validate a profile through the manager, exactly as `create` does before recording anything. */
async function parse(
  dir: string,
  body: string,
  overrides: string[] = [],
): Promise<ComposeSshConfig> {
  await writeProfile(dir, "p", `extension: ext.compose-ssh\n${body}`);
  await using manager = await Manager.open({ stateDir: `${dir}/state`, env: () => undefined });
  const { config } = await manager.resolveProfile(`${dir}/p.yaml`, overrides);
  return config as ComposeSshConfig;
}

async function rejects(dir: string, body: string, pattern: RegExp): Promise<void> {
  await assert.rejects(
    parse(dir, body),
    (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
  );
}

Deno.test("compose-ssh config: defaults, and a compose.file resolved from the profile", async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/c`);
  await Deno.writeTextFile(`${tmp.path}/c/compose.yaml`, COMPOSE);
  const config = await parse(tmp.path, "compose: {file: c/compose.yaml, service: sshd}\n");
  assert.equal(config.compose.file, `${tmp.path}/c/compose.yaml`);
  assert.equal(config.compose.project_directory, undefined);
  assert.deepEqual(config.compose.env, []);
  assert.equal(config.ssh.host, "127.0.0.1");
  assert.equal(config.ssh.user, "sbx");
  assert.equal(config.ssh.port, undefined);
  assert.equal(config.ssh.known_hosts, undefined);
  assert.equal(config.ssh.connect_timeout, 15);
  assert.equal(config.workspace.root, "/build");
  assert.equal(config.ready_timeout, 60);
});

Deno.test("compose-ssh config: inline compose resolves relative paths against the profile", async () => {
  await using tmp = await tempDir();
  const config = await parse(
    tmp.path,
    `compose:\n  service: sshd\n  inline: |\n    ${COMPOSE.replaceAll("\n", "\n    ")}\n`,
    ["ssh.port=40022", "ready_timeout=5s", "compose.env=[SBX_SSH_IMAGE=img:1]"],
  );
  assert.equal(config.compose.inline?.trimEnd(), COMPOSE.trimEnd());
  assert.equal(config.compose.project_directory, tmp.path);
  assert.equal(config.ssh.port, 40022);
  assert.equal(config.ready_timeout, 5);
  assert.deepEqual(config.compose.env, ["SBX_SSH_IMAGE=img:1"]);
});

Deno.test("compose-ssh config: mistakes are reported with their field and a fix", async () => {
  await using tmp = await tempDir();
  await Deno.writeTextFile(`${tmp.path}/c.yaml`, COMPOSE);
  await rejects(tmp.path, "compose: {service: sshd}\n", /compose: needs the compose project/);
  await rejects(
    tmp.path,
    "compose: {service: sshd, file: c.yaml, inline: x}\n",
    /compose\.inline: cannot be set together with compose\.file/,
  );
  await rejects(
    tmp.path,
    "compose: {service: sshd, file: nope.yaml}\n",
    /compose\.file: is not a file/,
  );
  await rejects(tmp.path, "compose: {file: c.yaml}\n", /compose\.service: is required/);
  await rejects(
    tmp.path,
    "compose: {service: sshd, file: c.yaml, env: [NOEQUALS]}\n",
    /compose\.env: has "NOEQUALS", which is not NAME=value/,
  );
  await rejects(
    tmp.path,
    "compose: {service: sshd, file: c.yaml, env: [SBX_SSH_PORT=1]}\n",
    /compose\.env: sets SBX_SSH_PORT, which sandboxer sets itself/,
  );
  await rejects(
    tmp.path,
    "compose: {service: sshd, file: c.yaml}\nssh: {passphrase_env: SANDBOXER_PW}\n",
    /ssh\.passphrase_env: only applies to ssh\.identity_file/,
  );
  await rejects(
    tmp.path,
    "compose: {service: sshd, file: c.yaml}\nworkspace: {root: /}\n",
    /workspace\.root: must not be the filesystem root/,
  );
  await rejects(
    tmp.path,
    "compose: {service: sshd, file: c.yaml}\nready_timeout: 0s\n",
    /ready_timeout: must be at least/,
  );
});
