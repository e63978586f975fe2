// Fault: the Docker daemon stops under a compose sandbox (issue 7). The real CLI (the
// `deno task sandboxer` flags) against a private, real Docker engine from tests/harness/docker.ts,
// whose daemon is stopped and started again on the same data-root, so the project survives it.
//
// While the daemon is down: exec fails fast with one line that says SSH to the service failed and
// why (the Docker daemon does not answer); create and destroy fail with one line naming the daemon
// and what to do; the records keep their handles (a failed destroy is status failed, step
// destroy), and gc does not lose them. Once the daemon is back, destroy removes everything: no
// container, network or volume of the project, no key directory.
import assert from "node:assert/strict";
import {
  dockerCli,
  type DockerResult,
  dockerUnavailableReason,
  projectLeftovers,
  startDocker,
} from "../harness/docker/engine.ts";
import { denoDir, exists, runSandboxer, skipIf, tempDir } from "../helpers.ts";
import { readRecord, type RecordJson } from "./fault_helpers.ts";

/** How long a command may take to fail while the daemon is down. */
const FAIL_WITHIN_S = 30;

type Result = DockerResult;

/** Every distinct docker CLI on PATH, first the one PATH finds, with its `--version` line. */
async function dockerClis(): Promise<{ path: string; version: string }[]> {
  const found: { path: string; version: string }[] = [];
  const seen = new Set<string>();
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "")) {
    const real = await Deno.realPath(`${dir}/docker`).catch(() => undefined);
    if (real === undefined || seen.has(real)) continue;
    seen.add(real);
    const out = await new Deno.Command(real, { args: ["--version"], stdout: "piped" }).output()
      .catch(() => undefined);
    if (!out?.success) continue;
    const version = new TextDecoder().decode(out.stdout).trim().replace(/,.*/, "");
    found.push({ path: real, version });
  }
  return found;
}

function ok(result: Result, what: string): Result {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}):\n${result.stderr}`);
  return result;
}

/**
 * The one error line of a failed CLI run, after checking the output is clean: every stderr line
 * is sandboxer's own ("sandboxer: …"), exactly one is the error, and nothing looks like a stack
 * trace (JS or Python) or a raw docker CLI dump.
 */
function oneErrorLine(result: Result, what: string): string {
  // exec exits 125 for sandboxer's own failures, every other verb 1.
  const expected = what === "exec" ? 125 : 1;
  assert.equal(
    result.code,
    expected,
    `${what}: expected exit ${expected}, got ${result.code}:\n${result.stderr}`,
  );
  const lines = result.stderr.split("\n").filter((line) => line.trim() !== "");
  for (const line of lines) assert.match(line, /^sandboxer: /, `${what}: stray line in:\n${line}`);
  const errors = lines.filter((line) => line.startsWith("sandboxer: error: "));
  assert.equal(errors.length, 1, `${what}: expected one error line:\n${result.stderr}`);
  assertNoDump(result.stderr, what);
  return errors[0];
}

function assertNoDump(text: string, what: string): void {
  assert.doesNotMatch(text, /^\s+at .*[:(]/m, `${what}: JS stack trace:\n${text}`);
  assert.doesNotMatch(
    text,
    /Traceback|File "\/|\.py", line/,
    `${what}: Python traceback:\n${text}`,
  );
  assert.doesNotMatch(text, /Uncaught|\bat file:\/\//, `${what}: uncaught error:\n${text}`);
  assert.doesNotMatch(text, /\(docker \S+ exited with/, `${what}: raw docker failure:\n${text}`);
}

function elapsedS(since: number): number {
  return (performance.now() - since) / 1000;
}

function note(message: string): void {
  // deno-lint-ignore no-console
  console.error(`  [docker fault] ${message}`);
}

const reason = await dockerUnavailableReason();

Deno.test({
  ...skipIf(
    reason,
    "Docker daemon stopped under a compose sandbox: clear errors, destroy once back",
  ),
}, async (t) => {
  const startedAt = performance.now();
  await using engine = await startDocker();
  await using tmp = await tempDir("sbx-docker-fault-");
  const state = `${tmp.path}/state`;
  const env = {
    SANDBOXER_HOME: state,
    DOCKER_HOST: engine.dockerHost,
    HOME: tmp.path,
    DENO_DIR: await denoDir(),
  };
  const cli = (...args: string[]) => runSandboxer(args, env);
  const timed = async (...args: string[]) => {
    const t0 = performance.now();
    const result = await cli(...args);
    const seconds = elapsedS(t0);
    note(`sandboxer ${args.join(" ")}: exit ${result.code} after ${seconds.toFixed(1)} s`);
    return { ...result, seconds };
  };
  // The shipped sample profile, pointed at the test image. A 1 s ttl makes the sandbox
  // expired by the time gc runs, so gc really tries (and fails) to destroy it.
  const profile = [
    "-p",
    "compose-sshd",
    "--set",
    `compose.env=[SBX_SSH_IMAGE=${engine.sshImage}]`,
  ];
  const id = "dockerfault";
  const project = `sbx-${id}`;
  const keyDir = `${state}/keys/${id}`;
  const record = async (name: string): Promise<RecordJson> => {
    const found = await readRecord(state, name);
    assert.ok(found, `no record of ${name}`);
    return found;
  };
  // The daemon named the way the errors must name it.
  const daemon = `the Docker daemon at ${engine.dockerHost}`;
  let handle: Record<string, unknown> = {};

  await t.step("a ready compose sandbox", async () => {
    const created = ok(await timed("create", ...profile, "--name", id, "--ttl", "1s"), "create");
    assert.equal(created.stdout.trim(), id);
    const box = await record(id);
    assert.equal(box.status, "ready");
    assert.ok(box.handle);
    handle = box.handle;
    assert.equal(handle.project, project);
    assert.equal(handle.docker_host, engine.dockerHost);
    assert.ok(await exists(keyDir));
    ok(await cli("exec", id, "--", "true"), "exec while the daemon runs");
  });

  await t.step("the daemon stops, and its containers with it", async () => {
    const t0 = performance.now();
    await engine.stopDaemon();
    note(`stopDaemon ${elapsedS(t0).toFixed(1)} s`);
    // Only the exit code: docker's wording differs between versions (see dockerClis()).
    const version = await dockerCli(engine, "version", "--format", "{{.Server.Version}}");
    assert.notEqual(version.code, 0, `the engine still answers: ${version.stdout}`);
  });

  await t.step("exec fails fast, naming SSH to the service and the daemon", async () => {
    const result = await timed("exec", id, "--", "true");
    assert.ok(result.seconds < FAIL_WITHIN_S, `exec took ${result.seconds} s to fail`);
    const error = oneErrorLine(result, "exec");
    assert.equal(result.stdout, "");
    assert.match(
      error,
      new RegExp(
        `^sandboxer: error: Cannot connect sbx@127\\.0\\.0\\.1:${handle.ssh_port}: connection refused: `,
      ),
    );
    assert.ok(
      error.includes(`nothing answers SSH for service "sshd" of compose project ${project}`),
      error,
    );
    assert.ok(error.includes(`${daemon} does not answer`), error);
    assert.ok(error.includes(`run "sandboxer destroy ${id}"`), error);
    // Not the vm-packer advice about profile fields compose sandboxes do not have.
    assert.doesNotMatch(error, /target\.host|target\.port/);
    assert.equal((await record(id)).status, "ready", "a failed exec changes nothing");
  });

  await t.step("destroy fails with what to do; the record keeps its handle", async () => {
    const result = await timed("destroy", id);
    assert.ok(result.seconds < FAIL_WITHIN_S, `destroy took ${result.seconds} s to fail`);
    const error = oneErrorLine(result, "destroy");
    assert.equal(
      error,
      `sandboxer: error: Compose project ${project} cannot be removed: ${daemon} does not ` +
        `answer; start it (e.g. systemctl start docker) and run "sandboxer destroy ${id}" again`,
    );
    const left = await record(id);
    assert.equal(left.status, "failed");
    assert.equal(left.step, "destroy");
    assert.match(left.error ?? "", /cannot be removed: the Docker daemon at .* does not answer/);
    assert.deepEqual(left.handle, handle, "the handle is kept for a later destroy");
    assert.ok(await exists(keyDir), "the keys are kept for a later destroy");
  });

  await t.step("gc tries the expired sandbox, fails clearly, and keeps the record", async () => {
    const result = await timed("gc");
    assert.equal(result.code, 1, result.stderr);
    assertNoDump(`${result.stdout}\n${result.stderr}`, "gc");
    assert.match(
      result.stdout,
      new RegExp(`^could not destroy ${id}: Compose project ${project} cannot be removed: `, "m"),
    );
    assert.ok(result.stdout.includes(`${daemon} does not answer`), result.stdout);
    const left = await record(id);
    assert.equal(left.status, "failed");
    assert.equal(left.step, "destroy");
    assert.deepEqual(left.handle, handle);
    assert.ok(await exists(keyDir));
    const listed = ok(await cli("list"), "list");
    assert.match(listed.stdout, new RegExp(`^${id}\\s+failed \\(destroy\\)`, "m"));
  });

  await t.step("create fails with the daemon named, not compose's traceback", async () => {
    const result = await timed("create", ...profile, "--name", "whiledown");
    assert.ok(result.seconds < FAIL_WITHIN_S, `create took ${result.seconds} s to fail`);
    const error = oneErrorLine(result, "create");
    assert.ok(
      error.startsWith(
        `sandboxer: error: Compose project sbx-whiledown could not start: ${daemon} does not answer; start it`,
      ),
      error,
    );
    assert.doesNotMatch(error, /fix .*compose\.yaml/, "not blamed on the compose file");
    const left = await record("whiledown");
    assert.equal(left.status, "failed");
    assert.equal(left.handle?.project, "sbx-whiledown", "the handle is kept for destroy");
  });

  // The same failures through every other docker CLI on this machine (Debian's docker.io 20.10
  // in /usr/bin beside a current one in /usr/local/bin, as here): sandboxer's message must not
  // depend on the CLI's wording.
  for (const docker of (await dockerClis()).slice(1)) {
    await t.step(`with ${docker.version} first on PATH: the same errors`, async () => {
      const bin = `${tmp.path}/bin-${docker.version.replace(/\W+/g, "_")}`;
      await Deno.mkdir(bin);
      await Deno.symlink(docker.path, `${bin}/docker`);
      const withCli = { ...env, PATH: `${bin}:${Deno.env.get("PATH") ?? ""}` };
      const destroyed = await runSandboxer(["destroy", id], withCli);
      assert.equal(
        oneErrorLine(destroyed, "destroy"),
        `sandboxer: error: Compose project ${project} cannot be removed: ${daemon} does not ` +
          `answer; start it (e.g. systemctl start docker) and run "sandboxer destroy ${id}" again`,
      );
      const created = await runSandboxer(
        ["create", ...profile, "--name", "whiledown2"],
        withCli,
      );
      assert.ok(
        oneErrorLine(created, "create").startsWith(
          `sandboxer: error: Compose project sbx-whiledown2 could not start: ${daemon} does not answer; start it`,
        ),
        created.stderr,
      );
    });
  }

  await t.step("the daemon comes back: the project is there, its container stopped", async () => {
    const t0 = performance.now();
    await engine.startDaemon();
    note(`startDaemon ${elapsedS(t0).toFixed(1)} s`);
    const ps = ok(
      await dockerCli(
        engine,
        "ps",
        "-a",
        "--filter",
        `label=com.docker.compose.project=${project}`,
        "--format",
        "{{.Status}}",
      ),
      "docker ps",
    );
    assert.match(
      ps.stdout,
      /^Exited /,
      `the container survived the restart, stopped:\n${ps.stdout}`,
    );
  });

  await t.step("destroy succeeds and leaves nothing", async () => {
    const result = await timed("destroy", id);
    ok(result, "destroy after the daemon is back");
    assert.match(result.stderr, new RegExp(`destroyed ${id}`));
    assert.deepEqual(await projectLeftovers(engine, project), []);
    const all = ok(await dockerCli(engine, "ps", "-a", "--format", "{{.Names}}"), "docker ps -a");
    assert.doesNotMatch(all.stdout, new RegExp(project));
    assert.equal(await exists(keyDir), false, "key dir removed");
    const done = await record(id);
    assert.equal(done.status, "destroyed");
    assert.equal(done.error, null);

    ok(await cli("destroy", "whiledown"), "destroy the create that failed");
    for (const left of ["whiledown2"]) {
      if (await readRecord(state, left)) ok(await cli("destroy", left), `destroy ${left}`);
    }
    assert.deepEqual(await projectLeftovers(engine, "sbx-whiledown"), []);
    assert.equal(await exists(`${state}/keys/whiledown`), false);
    assert.equal((await record("whiledown")).status, "destroyed");

    const gc = ok(await cli("gc"), "gc");
    assert.match(gc.stdout, /Nothing to collect/);
  });

  note(`whole test ${elapsedS(startedAt).toFixed(1)} s`);
});
