// `sandboxer ssh` in a real terminal (tmux): the caller's TERM, a PTY whose size follows the
// window, the exit code passed through and the terminal's mode restored; ready and failed
// sandboxes both reachable, one without a workspace refused in one line. `ssh-config` gives a
// Host block that plain `ssh -F` uses with sandboxer's own known_hosts. Real sshd.
import assert from "node:assert/strict";
import { runProgram, sandboxerTaskArgv } from "../helpers.ts";
import { createOk, startTestVm, type TestVm } from "../harness/test_vm.ts";
import { shQuote } from "../docs/build_vm.ts";

/** A tmux server of its own, on a private socket. */
class Tmux implements AsyncDisposable {
  readonly socket: string;
  constructor(dir: string) {
    this.socket = `${dir}/tmux.sock`;
  }
  async run(...args: string[]): Promise<string> {
    const result = await runProgram("tmux", ["-S", this.socket, ...args]);
    assert.equal(result.code, 0, `tmux ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  }
  capture(): Promise<string> {
    return this.run("capture-pane", "-p", "-t", "t");
  }
  /** Wait until the pane shows `pattern`. */
  async waitFor(pattern: RegExp): Promise<string> {
    const deadline = Date.now() + 60_000;
    let screen = "";
    while (Date.now() < deadline) {
      screen = await this.capture();
      if (pattern.test(screen)) return screen;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`the pane never showed ${pattern}:\n${screen}`);
  }
  async [Symbol.asyncDispose]() {
    await runProgram("tmux", ["-S", this.socket, "kill-server"]);
  }
}

async function cliLine(vm: TestVm, args: readonly string[]): Promise<string> {
  const env = { ...vm.env, TERM: "xterm-sbxtest", NO_COLOR: "1" };
  const assigns = Object.entries(env).map(([k, v]) => `${k}=${shQuote(v)}`).join(" ");
  return `env ${assigns} ${[...await sandboxerTaskArgv(), ...args].map(shQuote).join(" ")}`;
}

Deno.test("ssh: a PTY in tmux with TERM, resize, exit code and the terminal restored", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "s1"]);
  await using tmux = new Tmux(vm.dir);
  const script = `${await cliLine(vm, [
    "ssh",
    "s1",
  ])}; echo "rc=$?"; stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo; sleep 600`;
  await tmux.run("new-session", "-d", "-s", "t", "-x", "80", "-y", "24", "sh", "-c", script);
  await tmux.run("send-keys", "-t", "t", "echo TERM=$TERM; stty size; pwd -P", "Enter");
  // The last of the three lines: the pane may show the first two before it.
  let screen = await tmux.waitFor(new RegExp(`^${vm.root}/sbx-s1$`, "m"));
  assert.match(screen, /TERM=xterm-sbxtest$/m); // typed ahead, so after the prompt
  assert.match(screen, /^24 80$/m);
  await tmux.run("resize-window", "-t", "t", "-x", "100", "-y", "30");
  await new Promise((resolve) => setTimeout(resolve, 500));
  await tmux.run("send-keys", "-t", "t", "stty size", "Enter");
  screen = await tmux.waitFor(/^30 100$/m);
  await tmux.run("send-keys", "-t", "t", "exit 7", "Enter");
  screen = await tmux.waitFor(/^-?icanon -?echo *$/m);
  assert.match(screen, /^rc=7$/m, "the exit code passed through");
  assert.match(
    screen,
    /^icanon echo *$/m,
    `the terminal is back in cooked mode with echo:\n${screen}`,
  );
  assert.equal((await vm.cli(["destroy", "s1"])).code, 0);
});

Deno.test("ssh -- CMD: failed sandboxes too; one without a workspace is refused", async (t) => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "r1"]);
  await t.step("a command's code and output pass through (no terminal)", async () => {
    const result = await vm.cli(["ssh", "r1", "--", "sh", "-c", "pwd -P; exit 5"]);
    assert.equal(result.code, 5, result.stderr);
    assert.equal(result.stdout.trim(), `${vm.root}/sbx-r1`);
  });
  await t.step("a failed sandbox can be looked at", async () => {
    const failing = await vm.profile("failing", "setup:\n  - touch left-behind; exit 3");
    assert.equal((await vm.cli(["create", "-p", failing, "--name", "f1"])).code, 1);
    const result = await vm.cli(["ssh", "f1", "--", "ls"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /left-behind/);
  });
  await t.step("a sandbox whose workspace was never made is refused in one line", async () => {
    const record = JSON.parse(
      await Deno.readTextFile(`${vm.env.SANDBOXER_HOME}/sandboxes/r1.json`),
    );
    const never = {
      ...record,
      id: "n1",
      status: "failed",
      workspace: null,
      handle: { ...record.handle, host_key_fingerprint: null, nonce: null },
    };
    await Deno.writeTextFile(`${vm.env.SANDBOXER_HOME}/sandboxes/n1.json`, JSON.stringify(never));
    const result = await vm.cli(["ssh", "n1"]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.match(
      result.stderr,
      /Sandbox "n1" has no workspace \(its create stopped before making one\)/,
    );
    await Deno.remove(`${vm.env.SANDBOXER_HOME}/sandboxes/n1.json`);
  });
  await t.step("a workspace removed on the host is refused in one line", async () => {
    await Deno.remove(`${vm.root}/sbx-r1`, { recursive: true });
    const result = await vm.cli(["ssh", "r1", "--", "true"]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.match(result.stderr, /Sandbox "r1" cannot be entered: workspace .* does not exist/);
  });
});

Deno.test("ssh-config: plain ssh -F reaches the sandbox with sandboxer's own known_hosts", async () => {
  await using vm = await startTestVm();
  const profile = await vm.profile("p");
  await createOk(vm, ["-p", profile, "--name", "c1"]);
  const printed = await vm.cli(["ssh-config", "c1"]);
  assert.equal(printed.code, 0, printed.stderr);
  const knownHosts = `${vm.env.SANDBOXER_HOME}/ssh/sbx-c1.known_hosts`;
  assert.match(printed.stdout, /^Host sbx-c1$/m);
  assert.match(printed.stdout, /^ {2}HostKeyAlias sbx-c1$/m);
  assert.ok(printed.stdout.includes(`  UserKnownHostsFile "${knownHosts}"\n`), printed.stdout);
  assert.equal((await Deno.stat(knownHosts)).mode! & 0o777, 0o600);
  assert.match(await Deno.readTextFile(knownHosts), /^sbx-c1 ssh-ed25519 /);
  const config = `${vm.dir}/ssh_config`;
  await Deno.writeTextFile(config, printed.stdout);
  const ssh = await runProgram("ssh", ["-F", config, "-o", "BatchMode=yes", "sbx-c1", "true"]);
  assert.equal(ssh.code, 0, ssh.stderr);
  await assert.rejects(Deno.stat(`${vm.dir}/.ssh/known_hosts`), Deno.errors.NotFound);
  assert.equal((await vm.cli(["destroy", "c1"])).code, 0);
});
