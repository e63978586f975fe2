// docs/runbooks/vm-haskell-build.md, run as written:
// - preparing the VM, first run and everyday use, with the VM's sshd reached through a real
//   reverse tunnel (the runbook's own `ssh -R` unit line, run against a second sshd standing in
//   for the build host) on a free port in place of 12222;
// - each troubleshooting entry: the situation is made, and the error sandboxer prints must be
//   the quoted one (with this machine's port, user, paths and fingerprint put back to the doc's);
//   the fix commands are run;
// - the real profiles/vm-haskell-build.yaml (by name, with --set) against a VM without GHC.
import assert from "node:assert/strict";
import { startSshd } from "../harness/sshd.ts";
import { freePort, wrongKnownHostsFile } from "../harness/sshd.ts";
import { ROOT, workspaceRootEntries } from "../helpers.ts";
import { type BuildVm, DocSession, startBuildVm, writeHaskellProject } from "./build_vm.ts";
import { type Block, fencedBlocks, readDoc, runScript } from "./markdown.ts";

const DOC = "docs/runbooks/vm-haskell-build.md";
const DOC_FINGERPRINT = "SHA256:oFbq9w8pW9Wl0V7nRx1h2mHnJkq1LSg6k7kAqQ8Zx2E";

async function docBlocks(): Promise<Block[]> {
  return fencedBlocks(await readDoc(DOC));
}

function under(blocks: readonly Block[], heading: string): Block[] {
  const found = blocks.filter((b) => b.heading === heading);
  assert.ok(found.length > 0, `${DOC} has blocks under "${heading}"`);
  return found;
}

/** The doc's commands with this machine's values: the tunnel port, the login user, the profile. */
function substitution(port: number, user: string, profile: string, home: string) {
  return (text: string) =>
    text
      .replace(/--profile vm-haskell-build\b/g, `--profile ${profile}`)
      .replace(
        /^ssh -p 12222 /,
        `ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile=${home}/.ssh/known_hosts -p ${port} `,
      )
      .replace(/-p 12222\b/g, `-p ${port}`)
      .replace(/\[127\.0\.0\.1\]:12222/g, `[127.0.0.1]:${port}`)
      .replace(/sport = :12222/g, `sport = :${port}`)
      .replace(/\bbuilder@/g, `${user}@`);
}

/** An error line of this machine with the doc's values put back. */
function asInDoc(line: string, box: BuildVm, port: number, root = box.vm.root): string {
  return line
    .replaceAll(`${box.vm.sshd.user}@127.0.0.1:${port}`, "builder@127.0.0.1:12222")
    .replaceAll(`[127.0.0.1]:${port}`, "[127.0.0.1]:12222")
    .replaceAll(`port ${port}`, "port 12222")
    .replaceAll(box.home, "/home/me")
    .replaceAll(root, "/build")
    .replace(/SHA256:[A-Za-z0-9+/]{43}/g, DOC_FINGERPRINT)
    .replace(/timed out after 1s/, "timed out after 15s");
}

function errorLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n").filter((l) => l.startsWith("sandboxer: error: "));
  assert.equal(lines.length, 1, stderr);
  return lines[0];
}

Deno.test("runbook: prepare the VM, first run and everyday use through a reverse tunnel", async () => {
  await using box = await startBuildVm();
  const { vm, home } = box;
  await using buildHost = await startSshd();
  const blocks = await docBlocks();
  const tunnelPort = await freePort();
  const profile = await box.haskellProfile({ port: tunnelPort });
  const session = new DocSession(
    DOC,
    box.env,
    box.scratch,
    substitution(tunnelPort, vm.sshd.user, profile, home),
  );

  // 1. The key, then (as the Packer provisioner does) its public half into authorized_keys.
  await session.run(
    under(blocks, "1. Make the key sandboxer logs in with (on your workstation)")[0],
  );
  const publicKey = await Deno.readTextFile(`${home}/.ssh/sandboxer_build_vm.pub`);
  assert.match(publicKey, /^ssh-ed25519 \S+ sandboxer-build-vm\n$/);
  await Deno.writeTextFile(`${vm.sshd.dir}/authorized_keys`, publicKey, { append: true });

  // 2. The template outline and the provisioning script (root on the VM: syntax only).
  const [hcl, provision] = under(blocks, "2. Build the image with Packer");
  assert.equal(hcl.lang, "hcl");
  assert.deepEqual(provision.info, ["on-the-vm"]);
  for (const block of blocks.filter((b) => b.info.includes("on-the-vm"))) {
    const check = await runScript(`bash -n <<'EOF'\n${block.code}EOF\n`, { cwd: ROOT, env: {} });
    assert.equal(check.code, 0, `${DOC}:${block.line}: ${check.stderr}`);
  }

  // 3. The tunnel: the unit's ExecStart, from the "VM" to the "build host" sshd.
  const [unit] = under(blocks, "3. The reverse tunnel");
  const execStart = /^ExecStart=(.*)$/m.exec(unit.code)?.[1];
  assert.ok(execStart);
  const argv = execStart
    .replace("-R 12222:localhost:22", `-R ${tunnelPort}:localhost:${vm.sshd.port}`)
    .replace("-i /etc/sandboxer-tunnel/id_ed25519", `-i ${buildHost.identityFile}`)
    .replace(
      "tunnel@buildhost.example.com",
      `-o BatchMode=yes -o UserKnownHostsFile=${buildHost.knownHostsFile} -p ${buildHost.port} ${buildHost.user}@127.0.0.1`,
    )
    .split(" ");
  assert.equal(argv.filter((a) => a.includes("12222") || a.includes("example.com")).length, 0);
  const tunnel = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    await waitForPort(tunnelPort, tunnel);

    // 4. Trust the host key (through the tunnel) and compare with the VM's own fingerprint.
    const [scan, onVm] = under(blocks, "4. Trust the VM's host key (on the build host)");
    const scanned = await session.run(scan);
    assert.match(scanned.stdout, new RegExp(`^\\[127\\.0\\.0\\.1\\]:${tunnelPort} `, "m"));
    assert.ok(scanned.stdout.includes(vm.sshd.hostKeyFingerprint), scanned.stdout);
    const local = onVm.code.replace(
      "/etc/ssh/ssh_host_ed25519_key.pub",
      `${vm.sshd.dir}/ssh_host_ed25519_key.pub`,
    );
    const printed = await runScript(local, { cwd: ROOT, env: box.env });
    assert.ok(printed.stdout.includes(vm.sshd.hostKeyFingerprint), printed.stdout);

    // First run.
    const first = await session.run(under(blocks, "First run")[0]);
    assert.match(first.stdout, /^vm-haskell-build\s+ext\.vm-packer\s+8h\s/m);
    assert.match(
      first.stdout,
      /^The Glorious Glasgow Haskell Compilation System, version 9\.6\.6$/m,
    );
    assert.match(first.stdout, new RegExp(`${vm.root}/sbx-first-run`));
    // exec's stdin reached tee, and the file it wrote is there for the next exec.
    assert.equal(first.stdout.split('main = putStrLn "hello"\n').length, 3, first.stdout);
    assert.match(first.stderr, /setup: ghc --version && cabal --version/);
    assert.deepEqual(await workspaceRootEntries(vm.root), [".cabal"]);

    // Everyday use, from a project.
    const project = `${box.scratch}/hello`;
    await writeHaskellProject(project, "hello");
    session.cwd = project;
    const everyday = await session.run(under(blocks, "Everyday use")[0]);
    assert.match(everyday.stdout, /Building dependencies into .*\/\.cabal\/store/);
    assert.match(everyday.stdout, /Test suite hello-test: PASS/);
    assert.match(everyday.stdout, /^first-run\s+destroyed|^No sandboxes\.$/m);
    assert.deepEqual(await workspaceRootEntries(vm.root), [".cabal"]);
  } finally {
    tunnel.kill();
    await tunnel.status;
    await tunnel.stderr.cancel();
  }
});

async function waitForPort(port: number, tunnel: Deno.ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  let exited = false;
  tunnel.status.then(() => exited = true);
  while (Date.now() < deadline) {
    if (exited) {
      const text = await new Response(tunnel.stderr).text();
      throw new Error(`the tunnel exited: ${text}`);
    }
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`port ${port} did not open`);
}

Deno.test("runbook troubleshooting: each message is what sandboxer prints, each fix works", async (t) => {
  await using box = await startBuildVm();
  const { vm, home } = box;
  const blocks = await docBlocks();
  const headings = [...new Set(blocks.map((b) => b.heading))];
  const start = headings.indexOf("Cannot connect … connection refused");
  const entries = headings.slice(start);
  const messageOf = (heading: string) => {
    const [text] = under(blocks, heading).filter((b) => b.lang === "text");
    return text.code.trimEnd();
  };
  const fixesOf = (heading: string) => under(blocks, heading).filter((b) => b.lang === "sh");
  const workstationFixes = (heading: string) => fixesOf(heading).filter((b) => !b.info.length);
  const cli = async (args: string, port: number, profile: string) => {
    const session = new DocSession(
      DOC,
      env(),
      box.scratch,
      substitution(port, vm.sshd.user, profile, home),
    );
    return {
      session,
      result: await runScript(`sandboxer ${args}`, { cwd: box.scratch, env: env() }),
    };
  };
  const tested: string[] = [];
  // A fresh journal per entry: each reproduces the doc's `--name first-run`.
  let journals = 0;
  let state = "";
  const env = () => ({ ...box.env, SANDBOXER_HOME: state });
  const entry = (heading: string, fn: () => Promise<void>) =>
    t.step(heading, async () => {
      tested.push(heading);
      state = `${vm.dir}/state-${++journals}`;
      await box.installClientKey();
      await fn();
      // Refused before anything was made (a profile mistake, no connection, an unknown or changed
      // host key, a refused login) or rolled back (a missing workspace root): no record is left,
      // so there is nothing to clean up. (A fix that ran `sandboxer run` leaves that run's own
      // destroyed record, never first-run.) The one that leaves a record, a failed setup, is
      // cleaned up by the troubleshooting section's commands in the test below.
      const listed = await runScript("sandboxer list --all", { cwd: home, env: env() });
      assert.doesNotMatch(listed.stdout, /^first-run\s/m);
      const live = await runScript("sandboxer list", { cwd: home, env: env() });
      assert.equal(live.stdout, "No sandboxes.\n");
      assert.deepEqual(
        (await workspaceRootEntries(vm.root)).filter((n) => n.startsWith("sbx-")),
        [],
      );
    });

  await entry("Cannot connect … connection refused", async () => {
    const port = await freePort();
    const profile = await box.haskellProfile({ port });
    const { session, result } = await cli(
      `create --profile ${profile} --name first-run`,
      port,
      profile,
    );
    assert.equal(result.code, 1);
    assert.equal(
      asInDoc(errorLine(result.stderr), box, port),
      messageOf("Cannot connect … connection refused"),
    );
    const [ss] = workstationFixes("Cannot connect … connection refused");
    const shown = await session.run(ss);
    assert.doesNotMatch(shown.stdout, /LISTEN/);
  });

  await entry("Cannot connect to … timed out", async () => {
    // Accepts TCP, never speaks SSH: a stale tunnel.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) held.push(conn);
    })();
    try {
      const profile = await box.haskellProfile({ port });
      const { result } = await cli(
        `create --profile ${profile} --set target.connect_timeout=1s --name first-run`,
        port,
        profile,
      );
      assert.equal(result.code, 1);
      assert.equal(
        asInDoc(errorLine(result.stderr), box, port),
        messageOf("Cannot connect to … timed out"),
      );
    } finally {
      listener.close();
      for (const conn of held) conn.close();
      await accepting.catch(() => {});
    }
  });

  const port = vm.sshd.port;
  const profile = await box.haskellProfile();

  await entry("Host key … is not in …", async () => {
    await Deno.remove(`${home}/.ssh/known_hosts`);
    const { session, result } = await cli(
      `create --profile ${profile} --name first-run`,
      port,
      profile,
    );
    assert.equal(result.code, 1);
    assert.equal(asInDoc(errorLine(result.stderr), box, port), messageOf("Host key … is not in …"));
    const [fix] = fixesOf("Host key … is not in …");
    const fixed = await session.run(fix);
    assert.match(fixed.stderr, /Permanently added \[127\.0\.0\.1\]:\d+ \(ssh-ed25519 SHA256:/);
    assert.match(
      await Deno.readTextFile(`${home}/.ssh/known_hosts`),
      /^\[127\.0\.0\.1\]:\d+ ssh-ed25519 /,
    );
  });

  await entry("Host key … does not match …", async () => {
    await Deno.copyFile(
      await wrongKnownHostsFile(box.scratch, "127.0.0.1", port),
      `${home}/.ssh/known_hosts`,
    );
    const { session, result } = await cli(
      `create --profile ${profile} --name first-run`,
      port,
      profile,
    );
    assert.equal(result.code, 1);
    assert.equal(
      asInDoc(errorLine(result.stderr), box, port),
      messageOf("Host key … does not match …"),
    );
    const [fix] = fixesOf("Host key … does not match …");
    await session.run(fix);
    const again = await cli(`run --profile ${profile} -- true`, port, profile);
    assert.equal(again.result.code, 0, again.result.stderr);
  });

  await entry("Cannot authenticate … the server refused every key offered", async () => {
    await Deno.remove(`${home}/.ssh/sandboxer_build_vm`);
    const keygen = await runScript(
      "ssh-keygen -q -t ed25519 -N '' -f ~/.ssh/sandboxer_build_vm",
      { cwd: home, env: env() },
    );
    assert.equal(keygen.code, 0, keygen.stderr);
    const { result } = await cli(`create --profile ${profile} --name first-run`, port, profile);
    assert.equal(result.code, 1);
    assert.equal(
      asInDoc(errorLine(result.stderr), box, port),
      messageOf("Cannot authenticate … the server refused every key offered"),
    );
  });

  await entry("target.identity_file: no such file", async () => {
    await Deno.remove(`${home}/.ssh/sandboxer_build_vm`);
    const { result } = await cli(`create --profile ${profile} --name first-run`, port, profile);
    assert.equal(result.code, 1);
    // The profile file and its line differ from the built-in one the runbook quotes.
    const line = asInDoc(errorLine(result.stderr), box, port).replace(
      /^sandboxer: error: \S+\.yaml:\d+:\d+: /,
      "sandboxer: error: profiles/vm-haskell-build.yaml:11:18: ",
    );
    assert.equal(line, messageOf("target.identity_file: no such file"));
  });

  await entry("Workspace … cannot be created: workspace root … does not exist", async () => {
    const missing = `${vm.dir}/no-such-root`;
    const noRoot = await box.haskellProfile({ root: missing });
    const { result } = await cli(
      `create --profile ${noRoot} --name first-run`,
      port,
      noRoot,
    );
    assert.equal(result.code, 1);
    const heading = "Workspace … cannot be created: workspace root … does not exist";
    assert.equal(asInDoc(errorLine(result.stderr), box, port, missing), messageOf(heading));
    // The half-made sandbox was rolled back, its record too; the fix on the "VM" (this machine,
    // as root); a retry.
    assert.match(result.stderr, /rolled back the half-made sandbox first-run: nothing is left/);
    const shown = await runScript("sandboxer show first-run --json", { cwd: home, env: env() });
    assert.equal(shown.code, 1, shown.stderr);
    assert.match(shown.stderr, /Cannot find sandbox "first-run"/);
    const [onVm] = fixesOf(heading);
    assert.deepEqual(onVm.info, ["on-the-vm"]);
    const user = vm.sshd.user;
    const made = await runScript(
      onVm.code.replace("-o builder -g builder", `-o ${user} -g ${user}`).replace(
        "/build",
        missing,
      ),
      { cwd: ROOT, env: {} },
    );
    assert.equal(made.code, 0, made.stderr);
    const retry = await runScript(`sandboxer run --profile ${noRoot} -- pwd`, {
      cwd: home,
      env: env(),
    });
    assert.equal(retry.code, 0, retry.stderr);
    assert.match(retry.stdout, new RegExp(`^${missing}/sbx-`));
  });

  await t.step("every troubleshooting entry was made to happen here or below", () => {
    const ghc = "Setup command … failed with exit code 127: ghc is missing";
    assert.deepEqual([...tested, ghc], entries);
  });
});

Deno.test("vm-haskell-build: the real profile validates, and its setup fails clearly without GHC", async () => {
  await using box = await startBuildVm({ toolchain: false });
  const { vm, home } = box;
  await box.installClientKey();
  const sets = [
    `--set target.port=${vm.sshd.port}`,
    `--set target.user=${vm.sshd.user}`,
    `--set target.identity_file=${home}/.ssh/sandboxer_build_vm`,
    `--set target.known_hosts=${home}/.ssh/known_hosts`,
    `--set workspace.root=${vm.root}`,
  ].join(" ");
  const sh = (script: string) => runScript(script, { cwd: box.scratch, env: box.env });

  const listed = await sh("sandboxer profiles --json");
  assert.equal(listed.code, 0, listed.stderr);
  const { profiles, errors } = JSON.parse(listed.stdout);
  assert.deepEqual(errors, []);
  const haskell = profiles.find((p: { name: string }) => p.name === "vm-haskell-build");
  assert.equal(haskell.file, `${ROOT}/profiles/vm-haskell-build.yaml`);

  const created = await sh(`sandboxer create --profile vm-haskell-build ${sets} --name first-run`);
  assert.equal(created.code, 1, created.stderr);
  const line = errorLine(created.stderr);
  assert.match(line, /ghc is missing on the build VM/);
  const heading = "Setup command … failed with exit code 127: ghc is missing";
  const [message] = under(await docBlocks(), heading).filter((b) => b.lang === "text");
  assert.equal(asInDoc(line, box, vm.sshd.port), message.code.trimEnd());

  const shown = JSON.parse((await sh("sandboxer show first-run --json")).stdout);
  assert.equal(shown.status, "failed");
  assert.equal(shown.step, "setup");
  assert.equal(shown.handle.workspace, `${vm.root}/sbx-first-run`);
  assert.deepEqual(
    await workspaceRootEntries(vm.root),
    ["sbx-first-run"],
    "kept for inspection until destroyed",
  );

  // The runbook's fix commands: see what sandboxer sees, then destroy.
  const [fix] = under(await docBlocks(), heading).filter((b) => b.lang === "sh");
  const session = new DocSession(
    DOC,
    box.env,
    box.scratch,
    substitution(vm.sshd.port, vm.sshd.user, "vm-haskell-build", home),
  );
  const looked = await session.run(fix);
  assert.match(looked.stdout, /^PATH=/m, "sandboxer ssh -- CMD ran in the failed sandbox");
  assert.match(looked.stdout, /setup\| ghc is missing on the build VM/, "its logs say why");
  assert.deepEqual(await workspaceRootEntries(vm.root), []);
  const destroyed = JSON.parse((await sh("sandboxer show first-run --json")).stdout);
  assert.equal(destroyed.status, "destroyed");
  // The section's general clean-up: list, then destroy (idempotent: already destroyed above).
  const [cleanup] = under(await docBlocks(), "Troubleshooting by error message");
  const cleaned = await session.run(cleanup);
  assert.doesNotMatch(cleaned.stdout, /^first-run\s/m);
});
