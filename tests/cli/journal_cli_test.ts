// The local state through the CLI: a corrupt record does not break list or gc for the others,
// lock files go away with their records, a full disk under the state directory is a user error,
// secrets are not printed, and text from extensions or hosts cannot drive the terminal.
import assert from "node:assert/strict";
import {
  denoDir,
  FIXTURE_EXTENSIONS,
  listDir,
  runSandboxer,
  sandboxerTaskArgv,
  tempDir,
  writeProfile,
} from "../helpers.ts";
import { startTestVm } from "../harness/test_vm.ts";

async function envFor(dir: string): Promise<Record<string, string>> {
  return {
    DENO_DIR: await denoDir(),
    SANDBOXER_HOME: `${dir}/state`,
    SANDBOXER_PROFILE_PATH: dir,
    SANDBOXER_EXTENSION_PATH: FIXTURE_EXTENSIONS,
    HOME: dir,
  };
}

/** A workspace root beside the state dir, not holding it or HOME (such grants are refused). */
async function wsRoot(dir: string): Promise<string> {
  await Deno.mkdir(`${dir}/ws`, { recursive: true });
  return `${dir}/ws`;
}

async function ok(args: string[], env: Record<string, string>): Promise<string> {
  const result = await runSandboxer(args, env);
  assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

Deno.test("one corrupt record: list, list --all and gc warn once and go on; show and destroy say what is wrong", async () => {
  await using tmp = await tempDir();
  await writeProfile(
    tmp.path,
    "local",
    `extension: ext.local-dir\nroot: ${await wsRoot(tmp.path)}\nttl: 1h\n`,
  );
  const env = await envFor(tmp.path);
  await ok(["create", "-p", "local", "--name", "good"], env);
  const bad = `${tmp.path}/state/sandboxes/bad.json`;
  await Deno.writeTextFile(bad, '{"id": "bad", "status": ');

  for (const args of [["list"], ["list", "--all"], ["list", "--json"], ["gc"]]) {
    const result = await runSandboxer(args, env);
    assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(
      lines[0],
      new RegExp(`^sandboxer: warning: Journal file ${bad} is corrupt: .*; move it aside`),
    );
    if (args[0] === "list") assert.match(result.stdout, /good/);
  }
  for (const args of [["show", "bad"], ["destroy", "bad"]]) {
    const result = await runSandboxer(args, env);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /^sandboxer: error: Journal file \S+bad\.json is corrupt: it is not valid JSON \(.+\); move it aside \(mv /,
    );
    assert.equal(result.stderr.trim().split("\n").length, 1);
  }
  assert.equal(JSON.parse(await ok(["show", "good", "--json"], env)).status, "ready");
  await ok(["destroy", "good"], env);
});

Deno.test("lock files and heartbeats go away with destroyed records, and gc tidies old ones", async () => {
  await using tmp = await tempDir();
  await writeProfile(
    tmp.path,
    "local",
    `extension: ext.local-dir\nroot: ${await wsRoot(tmp.path)}\n`,
  );
  const env = await envFor(tmp.path);
  const dir = `${tmp.path}/state/sandboxes`;
  await ok(["create", "-p", "local", "--name", "l1"], env);
  await ok(["create", "-p", "local", "--name", "l2"], env);
  assert.deepEqual(await listDir(dir), ["l1.json", "l1.lock", "l2.json", "l2.lock"]);
  await ok(["destroy", "l1"], env);
  await ok(["destroy", "l1"], env);
  assert.deepEqual(await listDir(dir), ["l1.json", "l2.json", "l2.lock"]);

  // Left by older versions or a crash: a destroyed record's lock, a record-less lock, an old
  // heartbeat of a destroyed sandbox.
  const past = new Date(Date.now() - 3600_000);
  for (const name of ["l1.lock", "gone.lock", "l1.alive"]) {
    await Deno.writeTextFile(`${dir}/${name}`, "");
    await Deno.utime(`${dir}/${name}`, past, past);
  }
  await ok(["gc"], env);
  assert.deepEqual(await listDir(dir), ["l1.json", "l2.json", "l2.lock"]);
  await ok(["destroy", "l2"], env);
  assert.deepEqual(await listDir(dir), ["l1.json", "l2.json"]);
});

const needsRoot = Deno.uid() !== 0 ? "mounting a small tmpfs needs root" : undefined;

Deno.test({
  name: `a full disk under the state directory is one line and exit 1, and leaves no lock${
    needsRoot ? ` [skipped: ${needsRoot}]` : ""
  }`,
  ignore: needsRoot !== undefined,
  async fn() {
    await using tmp = await tempDir();
    await writeProfile(
      tmp.path,
      "local",
      `extension: ext.local-dir\nroot: ${await wsRoot(tmp.path)}\n`,
    );
    const env = await envFor(tmp.path);
    const state = env.SANDBOXER_HOME;
    await Deno.mkdir(state);
    // A 64 KiB tmpfs on the state directory, seen only inside its own mount namespace: the
    // namespace's one shell runs every step (no nsenter, which loses a chroot's root on a
    // fresh-machine check), writes each step's output beside the state directory, and the
    // mount goes away with it whatever happens here.
    const out = `${tmp.path}/out`;
    await Deno.mkdir(out);
    const [program, ...args] = await sandboxerTaskArgv();
    // Completely full (the heartbeat cannot be written), then one page free (the heartbeat
    // fits, the record does not).
    const script = `
      state=$1 out=$2; shift 2
      mount -t tmpfs -o size=64k,mode=0700 tmpfs "$state" && mkdir "$state/sandboxes" || exit 99
      for pages in 16 15; do
        rm -f "$state/fill"
        dd if=/dev/zero of="$state/fill" bs=4k count="$pages" 2>"$out/dd.$pages"
        "$@" create -p local --name full >"$out/stdout.$pages" 2>"$out/stderr.$pages"
        echo "$?" >"$out/code.$pages"
        ls -A "$state/sandboxes" >"$out/ls.$pages"
      done`;
    const holder = await new Deno.Command("unshare", {
      args: [
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
        "sh",
        state,
        out,
        program,
        ...args,
      ],
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "null",
    }).output();
    assert.equal(holder.code, 0, new TextDecoder().decode(holder.stderr));
    const read = (name: string) => Deno.readTextFile(`${out}/${name}`);
    for (const pages of [16, 15]) {
      assert.match(await read(`dd.${pages}`), new RegExp(`^${pages}\\+0 records out$`, "m"));
      const stderr = await read(`stderr.${pages}`);
      assert.equal((await read(`code.${pages}`)).trim(), "1", stderr);
      assert.equal(stderr.trim().split("\n").length, 1, stderr);
      assert.match(
        stderr,
        /^sandboxer: error: State directory \S+ cannot be written: the disk is full .*free space on that disk, or point SANDBOXER_HOME at another one/,
      );
      const failedAt = pages === 16
        ? /writing \S+\/full\.[0-9a-f]+\.alive/
        : /writing \S+\/full\.json/;
      assert.match(stderr, failedAt);
      assert.equal(await read(`ls.${pages}`), "", "no record, lock or temp file");
    }
    assert.deepEqual(
      await listDir(tmp.path).then((n) => n.filter((x) => x.startsWith("sbx-"))),
      [],
    );
  },
});

Deno.test("secrets: env values are not printed by show, list or --json; records stay 0600", async () => {
  await using tmp = await tempDir();
  const secret = "s3cr3t-value-4711";
  await writeProfile(
    tmp.path,
    "local",
    `extension: ext.local-dir\nroot: ${await wsRoot(
      tmp.path,
    )}\nenv:\n  - API_TOKEN=${secret}\n  - MODE=x=y\n`,
  );
  const env = await envFor(tmp.path);
  const created = await runSandboxer(["create", "-p", "local", "--name", "sec", "--json"], env);
  assert.equal(created.code, 0, created.stderr);
  // A compose sandbox keeps compose.env in its handle: masked at render time too.
  const file = `${tmp.path}/state/sandboxes/sec.json`;
  const stored = JSON.parse(await Deno.readTextFile(file));
  assert.deepEqual(stored.env, [`API_TOKEN=${secret}`, "MODE=x=y"], "the journal keeps values");
  const outputs = [created.stdout + created.stderr];
  const withCompose = {
    ...stored,
    handle: { ...stored.handle, compose_env: { DB_PASS: secret, SBX_SSH_PORT: "2222" } },
  };
  await Deno.writeTextFile(file, JSON.stringify(withCompose));
  for (const args of [["show", "sec"], ["show", "sec", "--json"], ["list"], ["list", "--json"]]) {
    const result = await runSandboxer(args, env);
    assert.equal(result.code, 0, result.stderr);
    outputs.push(result.stdout + result.stderr);
  }
  for (const output of outputs) assert.doesNotMatch(output, new RegExp(secret));
  const shown = JSON.parse(await ok(["show", "sec", "--json"], env));
  assert.deepEqual(shown.env, ["API_TOKEN=***", "MODE=***"]);
  assert.deepEqual(shown.handle.compose_env, { DB_PASS: "***", SBX_SSH_PORT: "2222" });
  assert.match(await ok(["show", "sec"], env), /^env:\s+API_TOKEN=\*\*\* MODE=\*\*\*$/m);

  await Deno.writeTextFile(file, JSON.stringify(stored));
  const destroyed = await runSandboxer(["destroy", "sec", "--json"], env);
  assert.doesNotMatch(destroyed.stdout, new RegExp(secret));
  assert.equal(((await Deno.stat(file)).mode ?? 0) & 0o777, 0o600);
  assert.equal(((await Deno.stat(`${tmp.path}/state/sandboxes`)).mode ?? 0) & 0o777, 0o700);
});

Deno.test("control characters from hosts and extensions are escaped in human output, exact in JSON", async () => {
  await using vm = await startTestVm();
  // A failing setup's last line ends up in the error message and the record.
  const profile = await vm.profile(
    "evil",
    [
      "setup:",
      `  - ${JSON.stringify("printf 'bad\\033]0;pwned\\007 \\302\\233c\\n' >&2; exit 3")}`,
    ].join("\n"),
  );
  // deno-lint-ignore no-control-regex
  const raw = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
  const created = await vm.cli(["create", "-p", profile, "--name", "evil"]);
  assert.equal(created.code, 1);
  // The setup command's own output passes through as it is (like exec's); sandboxer's lines not.
  const ours = created.stderr.split("\n").filter((line) => line.startsWith("sandboxer: "));
  // The setup line, the kept sandbox's line, the error.
  assert.equal(ours.length, 3, created.stderr);
  for (const line of ours) assert.doesNotMatch(line, raw);
  assert.match(ours[1], /^sandboxer: kept the failed sandbox evil to look at/);
  assert.match(ours[2], /^sandboxer: error: .*: bad\\x1b\]0;pwned\\x07 \\x9bc; fix the/);

  // A workspace path as an extension might report it.
  const file = `${vm.env.SANDBOXER_HOME}/sandboxes/evil.json`;
  const record = JSON.parse(await Deno.readTextFile(file));
  record.workspace = "/build/sbx-evil\x1b[2J\u009b31m";
  await Deno.writeTextFile(file, JSON.stringify(record));

  for (const args of [["show", "evil"], ["list"]]) {
    const result = await vm.cli(args);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout, raw, args.join(" "));
    assert.match(result.stdout, /\/build\/sbx-evil\\x1b\[2J\\x9b31m/);
  }
  const shown = await vm.cli(["show", "evil", "--json"]);
  assert.doesNotMatch(shown.stdout, raw);
  const json = JSON.parse(shown.stdout);
  assert.equal(json.workspace, "/build/sbx-evil\x1b[2J\u009b31m", "JSON keeps the exact value");
  assert.ok(json.error.includes("bad\x1b]0;pwned\x07 \u009bc"), json.error);

  record.workspace = `${vm.root}/sbx-evil`;
  await Deno.writeTextFile(file, JSON.stringify(record));
  assert.equal((await vm.cli(["destroy", "evil"])).code, 0);
});
