/**
 * Checks the Docker test harness against a real engine:
 * `deno test --allow-all tests/harness/docker_test.ts`.
 */
import { exists, skipIf } from "../helpers.ts";
import assert from "node:assert/strict";
import { dockerUnavailableReason, processesMentioning, startDocker } from "./docker/engine.ts";
import { strictSshArgs } from "./sshd.ts";

const COMPOSE_FILE = new URL("../fixtures/compose/sshd.compose.yaml", import.meta.url).pathname;
const PROJECT = "sbxh-test";
const decoder = new TextDecoder();

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
  timeoutMs = 120_000,
): Promise<Result> {
  const output = await new Deno.Command(cmd, {
    args,
    env,
    clearEnv: env !== undefined,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function runOk(cmd: string, args: string[], env?: Record<string, string>): Promise<Result> {
  const result = await run(cmd, args, env);
  assert.equal(
    result.code,
    0,
    `${[cmd, ...args].join(" ")} failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`,
  );
  return result;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const reason = await dockerUnavailableReason();

Deno.test({
  ...skipIf(reason, "docker harness: private dockerd, ssh image, compose sshd over real ssh"),
}, async () => {
  const work = await Deno.makeTempDir({ prefix: "sbxh-test-" });
  try {
    const t0 = performance.now();
    await using docker = await startDocker();
    // deno-lint-ignore no-console
    console.error(
      `startDocker: ${((performance.now() - t0) / 1000).toFixed(1)} s, ` +
        `compose: ${docker.composeCommand.join(" ")}`,
    );
    assert.match(docker.dockerHost, /^unix:\/\/\/.+\/docker\.sock$/);
    assert.equal(docker.env.DOCKER_HOST, docker.dockerHost);
    assert.ok(docker.env.PATH && docker.env.HOME);
    const engineDir = docker.dockerHost.slice("unix://".length).replace(/\/docker\.sock$/, "");
    assert.ok((await processesMentioning(`${engineDir}/`)).length > 0, "dockerd runs");
    await runOk("docker", ["image", "inspect", docker.sshImage], docker.env);

    // Throwaway client key and host key.
    const clientKey = `${work}/id_ed25519`;
    const hostKey = `${work}/ssh_host_ed25519_key`;
    await runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "sbxh", "-f", clientKey]);
    await runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", hostKey]);
    const port = freePort();
    const hostPub = (await Deno.readTextFile(`${hostKey}.pub`)).trim().split(/\s+/);
    const knownHosts = `${work}/known_hosts`;
    await Deno.writeTextFile(knownHosts, `[127.0.0.1]:${port} ${hostPub[0]} ${hostPub[1]}\n`);

    const [composeCmd, ...composeArgs] = docker.composeCommand;
    const composeEnv = {
      ...docker.env,
      SBX_SSH_PORT: String(port),
      SBX_AUTHORIZED_KEY: (await Deno.readTextFile(`${clientKey}.pub`)).trim(),
      SBX_HOST_KEY_FILE: hostKey,
      SBX_SSH_IMAGE: docker.sshImage,
    };
    const compose = (...args: string[]) =>
      run(composeCmd, [...composeArgs, "-p", PROJECT, "-f", COMPOSE_FILE, ...args], composeEnv);
    const up = await compose("up", "-d");
    assert.equal(up.code, 0, `compose up failed:\n${up.stdout}\n${up.stderr}`);

    const bridges = await runOk("docker", [
      "network",
      "ls",
      "-q",
      "--filter",
      "driver=bridge",
    ], docker.env);
    assert.equal(bridges.stdout.trim(), "", "compose must not create bridge networks");

    const ssh = (...command: string[]) =>
      run(
        "ssh",
        [
          ...strictSshArgs({
            destination: "sbx@127.0.0.1",
            port,
            identityFile: clientKey,
            knownHostsFile: knownHosts,
          }),
          ...command,
        ],
        undefined,
        30_000,
      );

    // sshd needs a moment to create the user and start listening.
    const deadline = Date.now() + 30_000;
    let hi = await ssh("echo", "hi");
    while (hi.stdout.trim() !== "hi" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      hi = await ssh("echo", "hi");
    }
    if (hi.stdout.trim() !== "hi") {
      const logs = await compose("logs", "--no-color");
      assert.fail(`ssh echo hi failed: ${hi.stderr}\ncontainer logs:\n${logs.stdout}`);
    }

    const rsync = await ssh("rsync", "--version");
    assert.equal(rsync.code, 0, rsync.stderr);
    assert.match(rsync.stdout, /rsync\s+version/);
    const whoami = await ssh("id", "-un");
    assert.equal(whoami.stdout.trim(), "sbx");

    const down = await compose("down", "-v", "--remove-orphans");
    assert.equal(down.code, 0, `compose down failed:\n${down.stdout}\n${down.stderr}`);
    const ps = await runOk("docker", ["ps", "-aq"], docker.env);
    assert.equal(ps.stdout.trim(), "", "no containers after down");

    await docker.stop();
    await docker.stop(); // idempotent
    assert.deepEqual(await processesMentioning(`${engineDir}/`), [], "no dockerd left");
    assert.equal(await exists(engineDir), false, "engine directory removed");
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
