// The CLI through the very entry point and permission flags of `deno task sandboxer`.
import assert from "node:assert/strict";
import {
  denoDir,
  denoNetworkEnv,
  FIXTURE_EXTENSIONS,
  listDir,
  makeHeartbeatsFresh,
  makeHeartbeatsStale,
  ROOT,
  runProgram,
  runSandboxer,
  sandboxerTaskArgv,
  tempDir,
  writeProfile,
} from "../helpers.ts";

async function envFor(dir: string): Promise<Record<string, string>> {
  return {
    DENO_DIR: await denoDir(),
    SANDBOXER_HOME: `${dir}/state`,
    SANDBOXER_PROFILE_PATH: dir,
    SANDBOXER_EXTENSION_PATH: FIXTURE_EXTENSIONS,
    // Not `dir` nor inside it: the profiles' workspace root is `dir`, and a confined extension
    // may not be granted the home directory or one of its ancestors.
    HOME: "/nonexistent",
  };
}

/** Every verb: one file per verb in src/cli/commands/ (so a new verb cannot be left out here). */
async function verbs(): Promise<string[]> {
  const names = (await listDir(`${ROOT}/src/cli/commands`))
    .filter((name) => name.endsWith(".ts") && !name.endsWith("_test.ts"))
    .map((name) => name.slice(0, -3))
    .filter((name) => !NOT_VERBS.includes(name));
  for (const verb of ["create", "exec", "run", "destroy"]) assert.ok(names.includes(verb), verb);
  return names;
}

/** Files of src/cli/commands/ that are helpers of the verbs, not verbs. */
const NOT_VERBS = ["progress"];

Deno.test("sandboxer --help lists every verb and exits 0", async () => {
  const result = await runSandboxer(["--help"]);
  assert.equal(result.code, 0);
  for (const verb of await verbs()) {
    assert.match(result.stdout, new RegExp(`^\\s+${verb}\\b`, "m"), verb);
  }
});

Deno.test("--help works in a bare environment (no NO_COLOR, nothing but PATH and HOME)", async () => {
  const [program, ...args] = await sandboxerTaskArgv();
  const output = await new Deno.Command(program, {
    args: [...args, "--help"],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: "/nonexistent",
      DENO_DIR: await denoDir(),
      ...denoNetworkEnv(),
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(new TextDecoder().decode(output.stdout), /Usage: sandboxer/);
});

Deno.test("every verb has --help", async () => {
  for (const verb of await verbs()) {
    const result = await runSandboxer([verb, "--help"]);
    assert.equal(result.code, 0, verb);
    assert.match(result.stdout, new RegExp(`Usage: sandboxer ${verb}`), verb);
  }
});

Deno.test("--version prints the deno.json version", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  const result = await runSandboxer(["--version"]);
  assert.equal(result.code, 0);
  assert.equal(result.stdout.trim(), config.version);
});

Deno.test("usage errors exit 2, user errors exit 1, one line and no stack", async () => {
  await using tmp = await tempDir();
  const usage = await runSandboxer(["create"], await envFor(tmp.path));
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /required option '-p, --profile/);
  const missing = await runSandboxer(["show", "nope"], await envFor(tmp.path));
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim().split("\n").length, 1);
  assert.match(missing.stderr, /Cannot find sandbox "nope"/);
  assert.doesNotMatch(missing.stderr, /at .*\.ts:\d+/);
});

Deno.test("a bad profile names file, line and field, and records nothing", async () => {
  await using tmp = await tempDir();
  await writeProfile(tmp.path, "bad", `extension: ext.local-dir\nroot: ${tmp.path}\nttl: soon\n`);
  const result = await runSandboxer(["create", "--profile", "bad"], await envFor(tmp.path));
  assert.equal(result.code, 1);
  assert.match(result.stderr, /bad\.yaml:4:\d+: ttl: /);
  const list = await runSandboxer(["list", "--all", "--json"], await envFor(tmp.path));
  assert.deepEqual(JSON.parse(list.stdout), []);
});

Deno.test("create --json, list, show, exec, destroy through the CLI", async () => {
  await using tmp = await tempDir();
  await writeProfile(tmp.path, "local", `extension: ext.local-dir\nroot: ${tmp.path}\nttl: 2h\n`);
  const env = await envFor(tmp.path);
  const created = await runSandboxer(["create", "-p", "local", "--name", "c1", "--json"], env);
  assert.equal(created.code, 0, created.stderr);
  const record = JSON.parse(created.stdout);
  for (
    const key of [
      "id",
      "status",
      "profile",
      "extension",
      "workspace",
      "handle",
      "created_at",
      "expires_at",
    ]
  ) {
    assert.ok(key in record, key);
  }
  assert.equal(record.status, "ready");
  assert.equal(record.workspace, `${tmp.path}/sbx-c1`);
  const listed = JSON.parse((await runSandboxer(["list", "--json"], env)).stdout);
  assert.deepEqual(listed.map((r: { id: string }) => r.id), ["c1"]);
  const shown = await runSandboxer(["show", "c1"], env);
  assert.match(shown.stdout, /status:\s+ready/);
  // exec runs in the workspace and passes output and exit code through (rsync is a program both
  // the CLI's --allow-run and the test extension's registration grant).
  await Deno.writeTextFile(`${tmp.path}/sbx-c1/here.txt`, "in the workspace\n");
  const ran = await runSandboxer(["exec", "c1", "--", "rsync", "--list-only", "here.txt"], env);
  assert.equal(ran.code, 0, ran.stderr);
  assert.match(ran.stdout, /^-\S+\s+17 .* here\.txt\n$/);
  const failing = await runSandboxer(
    ["exec", "c1", "--", "rsync", "--list-only", "missing.tar"],
    env,
  );
  assert.equal(failing.code, 23, failing.stderr);
  assert.match(failing.stderr, /missing\.tar/);
  // destroy --json prints the final record, and only that, on stdout.
  const destroyed = await runSandboxer(["destroy", "c1", "--json"], env);
  assert.equal(destroyed.code, 0, destroyed.stderr);
  const final = JSON.parse(destroyed.stdout);
  assert.equal(final.id, "c1");
  assert.equal(final.status, "destroyed");
  assert.equal(await Deno.lstat(`${tmp.path}/sbx-c1`).then(() => true, () => false), false);
  const again = await runSandboxer(["destroy", "c1"], env);
  assert.equal(again.code, 0);
  assert.match(again.stderr, /already destroyed/);
  const againJson = await runSandboxer(["destroy", "c1", "--json"], env);
  assert.equal(againJson.code, 0, againJson.stderr);
  assert.equal(JSON.parse(againJson.stdout).status, "destroyed");
});

Deno.test("a CLI killed mid-create leaves a record that destroy and gc finish", async () => {
  await using tmp = await tempDir();
  const marker = `${tmp.path}/paused`;
  await writeProfile(
    tmp.path,
    "pause",
    `extension: ext.local-dir\nroot: ${tmp.path}\npause_marker: ${marker}\n`,
  );
  const env = await envFor(tmp.path);
  for (const [name, finisher] of [["k1", ["destroy", "k1"]], ["k2", ["gc"]]] as const) {
    await Deno.remove(marker).catch(() => {});
    const [program, ...args] = await sandboxerTaskArgv();
    const child = new Deno.Command(program, {
      args: [...args, "create", "-p", "pause", "--name", name],
      env,
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 20_000;
    while (!(await Deno.stat(marker).then(() => true, () => false))) {
      assert.ok(Date.now() < deadline, "create never reached its pause point");
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    await child.status;
    const shown = JSON.parse((await runSandboxer(["show", name, "--json"], env)).stdout);
    assert.equal(shown.status, "creating");
    assert.equal(shown.workspace, `${tmp.path}/sbx-${name}`);
    assert.ok(await Deno.stat(`${tmp.path}/sbx-${name}`));
    // While the dead creator's heartbeat is fresh the record is protected; then it can be finished.
    // Freshness and staleness are set on the heartbeat file, whatever the machine's load.
    if (finisher[0] === "destroy") {
      assert.ok(await makeHeartbeatsFresh(env.SANDBOXER_HOME, name) >= 1, "no heartbeat");
      const early = await runSandboxer(finisher as unknown as string[], env);
      assert.equal(early.code, 1);
      assert.match(early.stderr, /still creating/);
    }
    assert.ok(await makeHeartbeatsStale(env.SANDBOXER_HOME, name) >= 1, "no heartbeat to age");
    const finished = await runSandboxer(finisher as unknown as string[], env);
    assert.equal(finished.code, 0, finished.stderr);
    const after = JSON.parse((await runSandboxer(["show", name, "--json"], env)).stdout);
    assert.equal(after.status, "destroyed");
    await assert.rejects(Deno.stat(`${tmp.path}/sbx-${name}`), Deno.errors.NotFound);
  }
});

Deno.test("20 concurrent CLI processes on one state dir lose and corrupt no record", async () => {
  await using tmp = await tempDir();
  await writeProfile(tmp.path, "local", `extension: ext.local-dir\nroot: ${tmp.path}\n`);
  const env = await envFor(tmp.path);
  const names = Array.from({ length: 20 }, (_, i) => `par-${i}`);
  const results = await Promise.all(
    names.map((name) => runSandboxer(["create", "-p", "local", "--name", name, "--json"], env)),
  );
  for (const result of results) assert.equal(result.code, 0, result.stderr);
  const listed = JSON.parse((await runSandboxer(["list", "--json"], env)).stdout);
  assert.deepEqual(listed.map((r: { id: string }) => r.id).sort(), names.toSorted());
  for (const record of listed) assert.equal(record.status, "ready");
  const files = await listDir(`${tmp.path}/state/sandboxes`);
  assert.equal(files.filter((f) => f.includes(".tmp-")).length, 0, "temp files left behind");
  const destroyed = await Promise.all(names.map((name) => runSandboxer(["destroy", name], env)));
  for (const result of destroyed) assert.equal(result.code, 0, result.stderr);
  const left = JSON.parse((await runSandboxer(["list", "--json"], env)).stdout);
  assert.deepEqual(left, []);
});

Deno.test("a state dir the OS refuses gives one line about owner and mode, exit 1", async () => {
  await using tmp = await tempDir();
  await writeProfile(tmp.path, "local", `extension: ext.local-dir\nroot: ${tmp.path}\n`);
  const locked = `${tmp.path}/locked`;
  await Deno.mkdir(locked, { mode: 0o500 });
  // Root ignores modes, but not the immutable attribute.
  if (Deno.uid() === 0) assert.equal((await runProgram("chattr", ["+i", locked])).code, 0);
  try {
    const env = { ...(await envFor(tmp.path)), SANDBOXER_HOME: `${locked}/state` };
    const result = await runSandboxer(["create", "-p", "local"], env);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /the operating system denied access; check the owner and mode/);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  } finally {
    if (Deno.uid() === 0) await runProgram("chattr", ["-i", locked]);
  }
});

Deno.test("snapshots of a confined extension are refused in one line, and nothing is made", async () => {
  await using tmp = await tempDir();
  await writeProfile(tmp.path, "local", `extension: ext.local-dir\nroot: ${tmp.path}\n`);
  const env = await envFor(tmp.path);
  const made = await runSandboxer(["create", "-p", "local", "--name", "l1"], env);
  assert.equal(made.code, 0, made.stderr);
  for (
    const args of [
      ["snapshot", "l1", "base"],
      ["snapshot", "list", "local"],
      ["snapshot", "rm", "base", "--profile", "local"],
      ["create", "-p", "local", "--from-snapshot", "base", "--name", "l2"],
    ]
  ) {
    const result = await runSandboxer([...args, "--json"], env);
    assert.equal(result.code, 1, `${args.join(" ")}: ${result.stderr}`);
    const error = JSON.parse(result.stdout || result.stderr).error;
    assert.equal(error.code, "SNAPSHOT_UNSUPPORTED", args.join(" "));
    assert.match(error.message, /^Extension ext\.local-dir does not support snapshots: /);
  }
  const listed = JSON.parse((await runSandboxer(["list", "--json"], env)).stdout);
  assert.deepEqual(
    listed.map((r: { id: string }) => r.id),
    ["l1"],
    "the refused create left no record",
  );
});

/** Run `deno task -q sandboxer ARGS` as a user would, with nothing on PATH but `deno`. */
async function withMinimalPath(
  dir: string,
  args: readonly string[],
  extra: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = `${dir}/bin`;
  await Deno.mkdir(bin, { recursive: true });
  await Deno.symlink(Deno.execPath(), `${bin}/deno`).catch(() => {});
  return await runProgram(bin + "/deno", ["task", "-q", "sandboxer", ...args], {
    cwd: ROOT,
    clearEnv: true,
    env: {
      PATH: bin,
      HOME: "/nonexistent",
      DENO_DIR: await denoDir(),
      ...denoNetworkEnv(),
      SANDBOXER_HOME: `${dir}/state`,
      ...extra,
    },
  });
}

Deno.test("with no docker, docker-compose, git, ssh or rsync on PATH: no stray output, one clear line when a profile needs compose", async () => {
  await using tmp = await tempDir();
  // `deno run` without -q prints "Info Failed to resolve 'docker-compose' for allow-run: cannot
  // find binary path" for each program of --allow-run that PATH lacks, before anything else.
  for (const args of [["profiles"], ["list"], ["extensions"]]) {
    const result = await withMinimalPath(tmp.path, args);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "", `${args.join(" ")} printed on stderr`);
  }
  const missing = await withMinimalPath(tmp.path, ["show", "nope"]);
  assert.equal(missing.code, 1);
  assert.equal(
    missing.stderr,
    `sandboxer: error: Cannot find sandbox "nope": run "sandboxer list" to see the known sandboxes\n`,
  );
  // A compose profile is where Docker is first needed: one line that says what to install.
  const compose = await withMinimalPath(tmp.path, ["create", "-p", "compose-sshd"]);
  assert.equal(compose.code, 1);
  assert.equal(compose.stdout, "");
  assert.equal(
    compose.stderr,
    `sandboxer: error: Cannot run "docker-compose": it is not installed or not on PATH ` +
      `(ext.compose-ssh needs it, or the "docker compose" plugin, and the docker CLI); ` +
      `install it (e.g. apt-get install docker.io docker-compose)\n`,
  );
});
