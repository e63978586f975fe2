// ext.compose-ssh end to end: the real CLI (the `deno task sandboxer` flags) against a private,
// real Docker engine from tests/harness/docker.ts. One engine for the whole file, shared by the
// steps of one Deno.test (the harness owns a child process for its lifetime).
import assert from "node:assert/strict";
import { commandsOf, fencedBlocks, readDoc, runScript } from "../docs/markdown.ts";
import { spawnCli, waitForRecord } from "../faults/fault_helpers.ts";
import {
  dockerCli,
  type DockerResult,
  dockerUnavailableReason,
  projectLeftovers,
  startDocker,
} from "../harness/docker/engine.ts";
import {
  denoDir,
  exists,
  makeHeartbeatsStale,
  runSandboxer,
  sandboxerOnPath,
  skipIf,
  spawnSandboxer,
  tempDir,
  writeProfile,
} from "../helpers.ts";

const decoder = new TextDecoder();
const NEVER_READY_MARKER = "sbx-never-ready-marker";

type Result = DockerResult;

function ok(result: Result, what: string): Result {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}):\n${result.stderr}`);
  return result;
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}

function note(message: string): void {
  // deno-lint-ignore no-console
  console.error(`  [compose] ${message}`);
}

const reason = await dockerUnavailableReason();

Deno.test({ ...skipIf(reason, "ext.compose-ssh against a real Docker engine") }, async (t) => {
  const startedAt = performance.now();
  await using engine = await startDocker();
  note(`engine up in ${seconds(startedAt)} (${engine.composeCommand.join(" ")})`);
  await using tmp = await tempDir("sbx-compose-test-");
  const state = `${tmp.path}/state`;
  const env = {
    SANDBOXER_HOME: state,
    SANDBOXER_PROFILE_PATH: tmp.path,
    DOCKER_HOST: engine.dockerHost,
    HOME: tmp.path,
    DENO_DIR: await denoDir(),
  };
  const cli = (...args: string[]) => runSandboxer(args, env);
  // The shipped sample profile, pointed at the test image.
  const sample = [
    "-p",
    "compose-sshd",
    "--set",
    `compose.env=[SBX_SSH_IMAGE=${engine.sshImage}]`,
  ];
  const record = async (id: string) =>
    JSON.parse(await Deno.readTextFile(`${state}/sandboxes/${id}.json`));

  await t.step(
    "a record from before ssh_target (its target in vm_target) still destroys",
    async () => {
      ok(await cli("create", ...sample, "--name", "old"), "create");
      const file = `${state}/sandboxes/old.json`;
      const stored = await record("old");
      stored.handle.vm_target = stored.handle.ssh_target;
      delete stored.handle.ssh_target;
      await Deno.writeTextFile(file, JSON.stringify(stored, null, 2));
      const where = ok(await cli("exec", "old", "--", "pwd"), "exec on the old record");
      assert.equal(where.stdout, "/build/sbx-old\n");
      ok(await cli("destroy", "old"), "destroy the old record");
      assert.equal((await record("old")).status, "destroyed");
      assert.deepEqual(await projectLeftovers(engine, "sbx-old"), []);
    },
  );

  await t.step("full lifecycle: create, exec, sync, destroy leaves nothing", async () => {
    const t0 = performance.now();
    const created = ok(await cli("create", ...sample, "--name", "life", "--json"), "create");
    note(`create ${seconds(t0)}`);
    const box = JSON.parse(created.stdout);
    assert.equal(box.status, "ready");
    assert.equal(box.workspace, "/build/sbx-life");
    const handle = box.handle;
    assert.equal(handle.project, "sbx-life");
    assert.equal(handle.service, "sshd");
    assert.equal(handle.workspace, "/build/sbx-life");
    // A compose service is no VM: the target is recorded as ssh_target.
    assert.equal(handle.ssh_target, "sbx@127.0.0.1");
    assert.equal(handle.vm_target, undefined);
    assert.ok(Number.isInteger(handle.ssh_port) && handle.ssh_port > 0);
    assert.match(handle.compose_file, /\/profiles\/compose-sshd\/compose\.yaml$/);
    assert.equal(handle.key_dir, `${state}/keys/life`);
    assert.equal(handle.docker_host, engine.dockerHost);
    assert.match(handle.host_key_fingerprint, /^SHA256:/);
    const knownHosts = await Deno.readTextFile(`${state}/keys/life/known_hosts`);
    assert.match(
      knownHosts,
      new RegExp(`^\\[127\\.0\\.0\\.1\\]:${handle.ssh_port} ssh-ed25519 `),
    );
    assert.equal((await Deno.stat(`${state}/keys/life`)).mode! & 0o777, 0o700);

    const uname = ok(await cli("exec", "life", "--", "uname", "-a"), "exec uname");
    assert.match(uname.stdout, /^Linux /);
    const where = ok(await cli("exec", "life", "--", "sh", "-c", "pwd; id -un"), "exec pwd");
    assert.equal(where.stdout, "/build/sbx-life\nsbx\n");
    assert.equal((await cli("exec", "life", "--", "sh", "-c", "exit 7")).code, 7);

    const repo = `${tmp.path}/repo`;
    await Deno.mkdir(`${repo}/src`, { recursive: true });
    await Deno.writeTextFile(`${repo}/src/main.c`, "int main(void) { return 0; }\n");
    await Deno.writeTextFile(`${repo}/it's $HOME.txt`, "hostile name\n");
    ok(await cli("sync", "life", "--repo", repo), "sync");
    const listed = ok(await cli("exec", "life", "--", "sh", "-c", "ls -A; cat src/main.c"), "ls");
    assert.match(listed.stdout, /^it's \$HOME\.txt$/m);
    assert.match(listed.stdout, /int main\(void\)/);

    const t1 = performance.now();
    ok(await cli("destroy", "life"), "destroy");
    note(`destroy ${seconds(t1)}`);
    assert.deepEqual(await projectLeftovers(engine, "sbx-life"), []);
    const all = ok(await dockerCli(engine, "ps", "-a", "--format", "{{.Names}}"), "docker ps");
    assert.doesNotMatch(all.stdout, /sbx-life/);
    assert.equal(await exists(`${state}/keys/life`), false, "key dir removed");
    assert.equal((await record("life")).status, "destroyed");
    const again = ok(await cli("destroy", "life"), "second destroy");
    assert.match(again.stderr, /already destroyed/);
  });

  await t.step("docs/compose-ssh.md: its commands run as written", async () => {
    const [block] = fencedBlocks(await readDoc("docs/compose-ssh.md")).filter((b) =>
      b.lang === "sh"
    );
    const commands = commandsOf(block);
    assert.deepEqual(commands.map((c) => c.text.split(" ")[1]), ["create", "exec", "destroy"]);
    const bin = await sandboxerOnPath(`${tmp.path}/bin`);
    let id = "";
    for (const command of commands) {
      const text = command.text
        .replace("my/sshd:bookworm", engine.sshImage)
        .replaceAll("<id>", id);
      const result = await runScript(text, {
        cwd: tmp.path,
        env: { ...env, PATH: `${bin}:${Deno.env.get("PATH") ?? ""}`, NO_COLOR: "1" },
      });
      assert.equal(result.code, command.exit, `${text}\n${result.stderr}`);
      if (id === "") id = result.stdout.trim();
      if (text.includes(" exec ")) assert.match(result.stdout, /^Linux /);
    }
    assert.match(id, /^[a-z0-9][a-z0-9-]*$/);
    assert.equal((await record(id)).status, "destroyed");
    assert.deepEqual(await projectLeftovers(engine, `sbx-${id}`), []);
  });

  await t.step("two sandboxes from one profile run side by side", async () => {
    const t0 = performance.now();
    const [a, b] = await Promise.all(
      ["pair-a", "pair-b"].map((name) => cli("create", ...sample, "--name", name, "--json")),
    );
    note(`two creates ${seconds(t0)}`);
    const boxA = JSON.parse(ok(a, "create pair-a").stdout);
    const boxB = JSON.parse(ok(b, "create pair-b").stdout);
    assert.notEqual(boxA.handle.ssh_port, boxB.handle.ssh_port);
    assert.notEqual(boxA.handle.host_key_fingerprint, boxB.handle.host_key_fingerprint);
    const running = ok(await dockerCli(engine, "ps", "--format", "{{.Names}}"), "docker ps");
    assert.match(running.stdout, /sbx-pair-a/);
    assert.match(running.stdout, /sbx-pair-b/);
    // Each sandbox reaches its own service: the workspace it sees is its own.
    for (const name of ["pair-a", "pair-b"]) {
      const pwd = ok(await cli("exec", name, "--", "sh", "-c", "pwd; ls /build"), `exec ${name}`);
      assert.equal(pwd.stdout, `/build/sbx-${name}\nsbx-${name}\n`);
    }
    const destroyed = await Promise.all(["pair-a", "pair-b"].map((n) => cli("destroy", n)));
    for (const result of destroyed) ok(result, "destroy");
    assert.deepEqual(await projectLeftovers(engine, "sbx-pair-a"), []);
    assert.deepEqual(await projectLeftovers(engine, "sbx-pair-b"), []);
  });

  await t.step("destroy finishes a create whose CLI was killed", async () => {
    // sshd starts 30 s late, so the CLI is surely still waiting for it when it is killed.
    await writeProfile(
      tmp.path,
      "slow",
      `extension: ext.compose-ssh
compose:
  service: sshd
  inline: |
    services:
      sshd:
        image: ${engine.sshImage}
        network_mode: host
        entrypoint: ["/bin/sh", "-c", "sleep 30; exec /usr/local/bin/sbx-sshd-entrypoint"]
        environment: ["SSHD_PORT=\${SBX_SSH_PORT}", "SSH_AUTHORIZED_KEY=\${SBX_AUTHORIZED_KEY}"]
ready_timeout: 120s
`,
    );
    const child = await spawnSandboxer(["create", "-p", "slow", "--name", "killed"], env, {
      stdout: "null",
      stderr: "null",
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const recorded = await record("killed").catch(() => undefined);
      const containers = await dockerCli(
        engine,
        "ps",
        "-q",
        "--filter",
        "label=com.docker.compose.project=sbx-killed",
      );
      if (recorded?.handle && containers.stdout.trim() !== "") break;
      assert.ok(Date.now() < deadline, "create never got as far as a running container");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    child.kill("SIGKILL");
    await child.status;
    const left = await record("killed");
    assert.equal(left.status, "creating");
    assert.equal(left.handle.project, "sbx-killed");
    assert.ok(await exists(`${state}/keys/killed`));
    // The dead creator's heartbeat protects the record until it is stale (aged here, no sleep).
    assert.ok(await makeHeartbeatsStale(state, "killed") >= 1, "no heartbeat to age");
    ok(await cli("destroy", "killed"), "destroy after kill");
    assert.deepEqual(await projectLeftovers(engine, "sbx-killed"), []);
    assert.equal(await exists(`${state}/keys/killed`), false, "key dir removed");
    assert.equal((await record("killed")).status, "destroyed");
  });

  await t.step(
    "a service that never opens SSH fails within ready_timeout, with its logs",
    async () => {
      await writeProfile(
        tmp.path,
        "mute",
        `extension: ext.compose-ssh
compose:
  service: app
  inline: |
    services:
      app:
        image: ${engine.sshImage}
        network_mode: host
        entrypoint: ["/bin/sh", "-c", "echo ${NEVER_READY_MARKER}; exec sleep 600"]
ready_timeout: 5s
`,
      );
      const child = await spawnCli(["create", "-p", "mute", "--name", "mute"], env);
      // Timed from the start of the wait to the record's failure, both read from the journal:
      // compose up before it and the rollback after it take what a loaded machine makes them.
      await waitForRecord(state, "mute", (r) => r.step === "wait-ssh", "wait for SSH", 120_000);
      const waitAt = performance.now();
      await waitForRecord(state, "mute", (r) => r.status !== "creating", "fail", 120_000);
      const elapsed = (performance.now() - waitAt) / 1000;
      const result = await child.done;
      note(`never-ready create failed ${elapsed.toFixed(1)} s into the wait`);
      assert.equal(result.code, 1, result.stderr);
      assert.ok(elapsed >= 4.5, `gave up after ${elapsed} s, before ready_timeout`);
      // Each attempt is bounded by what is left of ready_timeout; then the service's logs are
      // read (a docker call, which a machine at load 50 slowed to 10 s). Far below what an
      // unbounded attempt would take (ssh's own connect timeout, then the next attempt).
      assert.ok(elapsed < 30, `took ${elapsed} s`);
      const error = result.stderr.split("\n").find((line) => line.startsWith("sandboxer: error:"));
      assert.ok(error, result.stderr);
      assert.match(error, /Service "app" of compose project sbx-mute did not answer SSH/);
      // Under load the last attempt may time out instead of being refused; both say why.
      assert.match(error, /within 5s \((connection refused|[^)]*timed out[^)]*)\)/);
      assert.match(error, new RegExp(`last log lines: .*${NEVER_READY_MARKER}`));
      // The half-made sandbox was rolled back: nothing is left of it, its record included.
      assert.deepEqual(await projectLeftovers(engine, "sbx-mute"), []);
      assert.equal(await exists(`${state}/keys/mute`), false);
      assert.equal(await exists(`${state}/sandboxes/mute.json`), false, "no record left");
    },
  );

  await t.step(
    "a service with a host key of its own is refused: the generated key is pinned",
    async () => {
      // The image makes a fresh host key when SSH_HOST_KEY_FILE is not given.
      await writeProfile(
        tmp.path,
        "ownkey",
        `extension: ext.compose-ssh
compose:
  service: sshd
  inline: |
    services:
      sshd:
        image: ${engine.sshImage}
        network_mode: host
        environment: ["SSHD_PORT=\${SBX_SSH_PORT}", "SSH_AUTHORIZED_KEY=\${SBX_AUTHORIZED_KEY}"]
ready_timeout: 30s
`,
      );
      // Even --accept-new-host-key does not make sandboxer trust a key other than the one it made.
      const result = await cli(
        "--accept-new-host-key",
        "create",
        "-p",
        "ownkey",
        "--name",
        "ownkey",
      );
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stderr,
        /Service "sshd" of compose project sbx-ownkey offers host key SHA256:\S+, not the one sandboxer generated \(SHA256:/,
      );
      assert.deepEqual(await projectLeftovers(engine, "sbx-ownkey"), []);
    },
  );

  await t.step("a broken compose file is reported with compose's own error", async () => {
    await writeProfile(
      tmp.path,
      "broken",
      `extension: ext.compose-ssh
compose:
  service: app
  inline: |
    services:
      app:
        image: ${engine.sshImage}
        network_mode: host
        bogus_option: 1
`,
    );
    const result = await cli("create", "-p", "broken", "--name", "broken");
    assert.equal(result.code, 1);
    assert.match(result.stderr, /Compose project sbx-broken could not start/);
    assert.match(result.stderr, /Unsupported config option for services\.app: 'bogus_option'/);
    assert.match(result.stderr, /fix compose\.inline in the profile/);
    assert.deepEqual(await projectLeftovers(engine, "sbx-broken"), []);
    assert.equal(await exists(`${state}/keys/broken`), false);
    // Rolled back: no record is left either, so the name is free again.
    assert.equal(await exists(`${state}/sandboxes/broken.json`), false, "no record left");
  });

  await t.step("destroy succeeds when the project was removed by hand", async () => {
    const box = JSON.parse(
      ok(await cli("create", ...sample, "--name", "byhand", "--json"), "create").stdout,
    );
    const [program, ...rest] = engine.composeCommand;
    const down = await new Deno.Command(program, {
      args: [...rest, "-p", "sbx-byhand", "-f", box.handle.compose_file, "down", "-t", "1"],
      // The CLI prints compose.env values as ***: the journal record holds them.
      env: { ...engine.env, ...(await record("byhand")).handle.compose_env },
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(down.code, 0, decoder.decode(down.stderr));
    assert.deepEqual(await projectLeftovers(engine, "sbx-byhand"), []);
    ok(await cli("destroy", "byhand"), "destroy after manual down");
    assert.equal(await exists(`${state}/keys/byhand`), false);
    assert.equal((await record("byhand")).status, "destroyed");
  });

  note(`whole file ${seconds(startedAt)}`);
});
