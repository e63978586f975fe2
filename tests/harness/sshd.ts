/**
 * Test harness: starts real OpenSSH `sshd` servers on loopback (or inside a network namespace)
 * with throwaway keys, a per-server authorized_keys file and a per-server temp dir.
 *
 * Usage:
 *   await using sshd = await startSshd();
 *   // connect with sshd.identityFile / sshd.knownHostsFile, or run `ssh ...sshArgs(sshd)`
 */
import { createHash, randomBytes } from "node:crypto";
import { exists } from "../helpers.ts";

const SSHD = "/usr/sbin/sshd";
const SSH_KEYGEN = "ssh-keygen";
const READY_TIMEOUT_MS = 10_000;
const TERM_GRACE_MS = 2_000;
const START_ATTEMPTS = 3;

/** A running test sshd. Dispose it (`await using`) or call `stop()`. */
export interface TestSshd extends AsyncDisposable {
  /** Address clients connect to ("127.0.0.1", or the listenAddress inside a netns). */
  readonly host: string;
  /** Random free port the server listens on. */
  readonly port: number;
  /** Login user. */
  readonly user: string;
  /** Path to a throwaway ed25519 private key authorised for `user`. */
  readonly identityFile: string;
  /** The `.pub` content of `identityFile`. */
  readonly publicKey: string;
  /** known_hosts file holding exactly this server's host key as "[host]:port ssh-ed25519 ...". */
  readonly knownHostsFile: string;
  /** "SHA256:..." fingerprint of the host key, as `ssh-keygen -lf` prints it. */
  readonly hostKeyFingerprint: string;
  /** "ssh-ed25519 AAAA..." (host public key without host prefix or comment). */
  readonly hostPublicKeyLine: string;
  /** Temp dir holding config, keys, logs, pid file. */
  readonly dir: string;
  /** The login user's home directory. */
  readonly homeDir: string;
  /** The sshd log so far (for debugging failures). */
  log(): Promise<string>;
  /** Kill the server process (SIGKILL) to simulate a crash; sockets close. */
  kill(): Promise<void>;
  /** Start it again on the same port with the same keys. */
  restart(): Promise<void>;
  /** Stop the server and remove its dir. Idempotent. */
  stop(): Promise<void>;
}

/** Options for {@link startSshd}. */
export interface StartSshdOptions {
  /** Extra lines appended to sshd_config (e.g. "MaxStartups 10:30:100"). */
  extraConfig?: string[];
  /** Passphrase for the generated user key (default none). */
  keyPassphrase?: string;
  /** Run sshd inside this network namespace (ip netns exec NAME ...) listening on listenAddress. */
  netns?: string;
  /** Address to listen on; default 127.0.0.1. */
  listenAddress?: string;
}

interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[], stdin?: string): Promise<CmdResult> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function runOk(cmd: string, args: string[], stdin?: string): Promise<string> {
  const r = await run(cmd, args, stdin);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

function isRoot(): boolean {
  return Deno.uid() === 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function rand(): string {
  return randomBytes(4).toString("hex");
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return Promise.resolve(port);
}

/** Why real sshd tests cannot run here, or undefined when they can. */
export async function sshdUnavailableReason(): Promise<string | undefined> {
  for (const name of ["run", "read", "write", "net"] as const) {
    const st = await Deno.permissions.query({ name });
    if (st.state !== "granted") return `Deno permission "${name}" not granted (use --allow-all)`;
  }
  if (!(await exists(SSHD))) {
    return `${SSHD} not found (install openssh-server)`;
  }
  for (const tool of [SSH_KEYGEN, "ssh"]) {
    try {
      await run(tool, ["-V"]);
    } catch {
      return `${tool} not found (install openssh-client)`;
    }
  }
  if (!isRoot()) {
    try {
      await loginUser();
    } catch (e) {
      return `no usable login user: ${(e as Error).message}`;
    }
  }
  return undefined;
}

interface LoginUser {
  name: string;
  home: string;
}

let loginUserPromise: Promise<LoginUser> | undefined;

function loginUser(): Promise<LoginUser> {
  loginUserPromise ??= resolveLoginUser().catch((e) => {
    loginUserPromise = undefined;
    throw e;
  });
  return loginUserPromise;
}

async function passwdEntry(name: string): Promise<string[] | undefined> {
  const r = await run("getent", ["passwd", name]);
  if (r.code !== 0 || !r.stdout.trim()) return undefined;
  return r.stdout.trim().split("\n")[0].split(":");
}

/**
 * The login user the servers accept when the tests run as root: `$SANDBOXER_TEST_USER` (the test
 * runner sets a fresh name per run and removes the user afterwards), else `sbxtest`.
 *
 * @returns The user name.
 */
export function testUserName(): string {
  const name = Deno.env.get("SANDBOXER_TEST_USER") || "sbxtest";
  if (!/^[a-z_][a-z0-9_-]{0,30}$/.test(name)) {
    throw new Error(
      `SANDBOXER_TEST_USER=${name} is not a valid user name; use [a-z0-9_-], 31 at most`,
    );
  }
  return name;
}

/** Login users this process made with useradd (only those may it remove). */
const createdUsers = new Set<string>();

async function resolveLoginUser(): Promise<LoginUser> {
  if (!isRoot()) {
    const name = (await runOk("whoami", [])).trim();
    const pw = await passwdEntry(name);
    return { name, home: pw?.[5] ?? Deno.env.get("HOME") ?? "/" };
  }
  const TEST_USER = testUserName();
  let pw = await passwdEntry(TEST_USER);
  if (!pw) {
    const r = await run("useradd", ["-m", "-s", "/bin/sh", TEST_USER]);
    if (r.code === 0) createdUsers.add(TEST_USER);
    pw = await passwdEntry(TEST_USER);
    // Another test process may have created it concurrently; only fail if it is still missing.
    if (!pw) throw new Error(`useradd ${TEST_USER} failed: ${r.stderr.trim()}`);
  }
  // With `UsePAM no`, sshd refuses locked accounts ("!" password field): set an unusable,
  // unlocked password. Retry because concurrent usermod/useradd may hold the passwd lock.
  for (let i = 0;; i++) {
    const shadow = (await runOk("getent", ["shadow", TEST_USER])).trim().split(":");
    if (!shadow[1]?.startsWith("!")) break;
    const r = await run("usermod", ["-p", "*", TEST_USER]);
    if (r.code !== 0 && i >= 20) throw new Error(`usermod -p '*' failed: ${r.stderr.trim()}`);
    if (r.code !== 0) await sleep(100);
  }
  const home = pw[5];
  if (!(await exists(home))) {
    await Deno.mkdir(home, { recursive: true });
    await runOk("chown", [`${TEST_USER}:`, home]);
  }
  return { name: TEST_USER, home };
}

/**
 * Remove the login user this process made (`userdel -r`), once its servers are stopped: for a
 * single process that must leave no user behind (the demo). A user this process did not create
 * is never touched.
 *
 * @returns The removed user's name, or undefined when this process made none.
 */
export async function removeCreatedLoginUser(): Promise<string | undefined> {
  const [name] = createdUsers;
  if (name === undefined) return undefined;
  // A session process of a just-stopped sshd may still be exiting: userdel refuses a user in use.
  for (let attempt = 1;; attempt++) {
    const r = await run("userdel", ["-r", name]);
    if (!(await passwdEntry(name))) break;
    if (attempt >= 20) throw new Error(`userdel -r ${name} failed: ${r.stderr.trim()}`);
    await sleep(250);
  }
  createdUsers.delete(name);
  loginUserPromise = undefined;
  return name;
}

/** Generate an ed25519 key pair at `path` / `path.pub`; returns the .pub content. */
async function genKey(path: string, comment: string, passphrase = ""): Promise<string> {
  await runOk(SSH_KEYGEN, ["-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", path]);
  return await Deno.readTextFile(`${path}.pub`);
}

/** "ssh-ed25519 AAAA... comment" -> "ssh-ed25519 AAAA..." */
function keyTypeAndBlob(pub: string): string {
  const [type, blob] = pub.trim().split(/\s+/);
  return `${type} ${blob}`;
}

function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** SHA256 fingerprint in the form `ssh-keygen -l` prints (unpadded base64). */
function fingerprint(pubLine: string): string {
  const blob = pubLine.trim().split(/\s+/)[1];
  const digest = createHash("sha256").update(Uint8Array.from(atob(blob), (c) => c.charCodeAt(0)))
    .digest("base64").replace(/=+$/, "");
  return `SHA256:${digest}`;
}

/** Write an extra throwaway host key pair into `dir` and return the path of a known_hosts file
 * holding a line for host:port with that DIFFERENT key (for mismatch tests). */
export async function wrongKnownHostsFile(
  dir: string,
  host: string,
  port: number,
): Promise<string> {
  const id = rand();
  const pub = await genKey(`${dir}/wrong_host_key_${id}`, "wrong-host-key");
  const file = `${dir}/wrong_known_hosts_${id}`;
  await Deno.writeTextFile(file, `${knownHostsName(host, port)} ${keyTypeAndBlob(pub)}\n`);
  return file;
}

/** A known_hosts file (in the server's dir) with the server's key stored HASHED
 * (|1|salt|hash form, as `ssh-keygen -H` produces). Returns its path. */
export async function hashedKnownHostsFile(sshd: TestSshd): Promise<string> {
  const file = `${sshd.dir}/hashed_known_hosts_${rand()}`;
  await Deno.copyFile(sshd.knownHostsFile, file);
  await runOk(SSH_KEYGEN, ["-H", "-f", file]);
  await Deno.remove(`${file}.old`).catch(() => {});
  return file;
}

/** Who the plain `ssh` tool connects to, and with what. */
export interface StrictSshTarget {
  /** `user@host`. */
  destination: string;
  /** Port; default 22. */
  port?: number;
  /** Private key. */
  identityFile: string;
  /** The only known_hosts file consulted. */
  knownHostsFile: string;
}

/**
 * OpenSSH client args that trust nothing but the given key and known_hosts file (no config, no
 * agent, no prompts, no new host keys); append the remote command.
 *
 * @param target Destination, port, key and known_hosts file.
 * @returns The args.
 */
export function strictSshArgs(target: StrictSshTarget): string[] {
  return [
    "-F",
    "/dev/null",
    "-p",
    String(target.port ?? 22),
    "-i",
    target.identityFile,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${target.knownHostsFile}`,
    target.destination,
  ];
}

/** OpenSSH client args for the plain `ssh` tool (append the remote command). */
export function sshArgs(sshd: TestSshd): string[] {
  return strictSshArgs({
    destination: `${sshd.user}@${sshd.host}`,
    port: sshd.port,
    identityFile: sshd.identityFile,
    knownHostsFile: sshd.knownHostsFile,
  });
}

// ---- process tree helpers (via `ps`: Deno reads /proc only with --allow-all) ----

interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  startTime: string;
}

async function psTable(pid?: number): Promise<ProcInfo[]> {
  const args = pid === undefined ? ["-e"] : ["-p", String(pid)];
  const out = await run("ps", [...args, "-o", "pid=,ppid=,stat=,lstart="]).catch(() => undefined);
  if (!out) return [];
  return out.stdout.split("\n").flatMap((line) => {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.+?)\s*$/.exec(line);
    return m
      ? [{
        pid: Number(m[1]),
        ppid: Number(m[2]),
        state: m[3][0],
        startTime: m[4].replaceAll(" ", "_"),
      }]
      : [];
  });
}

async function procInfo(pid: number): Promise<ProcInfo | undefined> {
  return (await psTable(pid))[0];
}

async function procArgs(pid: number): Promise<string> {
  const out = await run("ps", ["-p", String(pid), "-o", "args="]).catch(() => undefined);
  return out?.stdout ?? "";
}

async function descendants(root: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const info of await psTable()) {
    const list = children.get(info.ppid) ?? [];
    list.push(info.pid);
    children.set(info.ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const p = queue.shift()!;
    for (const c of children.get(p) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

async function alive(pid: number): Promise<boolean> {
  const info = await procInfo(pid);
  return info !== undefined && info.state !== "Z" && info.state !== "X";
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function killAndWait(pids: number[], timeoutMs = 2_000): Promise<void> {
  for (const p of pids) signal(p, "SIGKILL");
  const deadline = Date.now() + timeoutMs;
  for (const p of pids) {
    while ((await alive(p)) && Date.now() < deadline) await sleep(10);
  }
}

// ---- cleanup of servers left behind by killed test processes ----

const OWNER_FILE = "owner";
const STALE_UNOWNED_MS = 60 * 60 * 1000;
let staleReaped: Promise<void> | undefined;

async function ownerTag(): Promise<string> {
  return `${Deno.pid} ${(await procInfo(Deno.pid))?.startTime ?? "?"}`;
}

async function ownerAlive(tag: string): Promise<boolean> {
  const [pid, startTime] = tag.trim().split(" ");
  const info = await procInfo(Number(pid));
  return info !== undefined && info.state !== "Z" && info.startTime === startTime;
}

/**
 * Remove sbx-sshd-* temp dirs (and kill their sshd and its sessions) whose owning test process
 * no longer exists, e.g. after a test run was killed. Dirs without an owner file are reaped once
 * they are an hour old. startSshd() calls this once per process.
 */
export async function reapStaleSshds(tmpBase?: string): Promise<void> {
  if (tmpBase === undefined) {
    const probe = await Deno.makeTempDir({ prefix: "sbx-probe-" });
    await Deno.remove(probe);
    tmpBase = probe.slice(0, probe.lastIndexOf("/"));
  }
  // Without a readable process table no owner can be judged dead, so reap nothing.
  if ((await procInfo(Deno.pid)) === undefined) return;
  for await (const e of Deno.readDir(tmpBase)) {
    if (!e.isDirectory || !e.name.startsWith("sbx-sshd-")) continue;
    const dir = `${tmpBase}/${e.name}`;
    try {
      const owner = await Deno.readTextFile(`${dir}/${OWNER_FILE}`).catch(() => undefined);
      if (owner === undefined) {
        const st = await Deno.stat(dir);
        if (Date.now() - (st.mtime?.getTime() ?? Date.now()) < STALE_UNOWNED_MS) continue;
      } else if (await ownerAlive(owner)) {
        continue;
      }
      const pid = Number((await Deno.readTextFile(`${dir}/sshd.pid`).catch(() => "")).trim());
      if (pid > 0) {
        const cmdline = await procArgs(pid);
        if (cmdline.includes(dir)) await killAndWait([pid, ...(await descendants(pid))]);
      }
      await Deno.remove(dir, { recursive: true });
    } catch {
      // best effort: another process may be reaping the same dir
    }
  }
}

// ---- the server ----

class SshdServer implements TestSshd {
  host: string;
  port: number;
  user: string;
  identityFile: string;
  publicKey: string;
  knownHostsFile: string;
  hostKeyFingerprint: string;
  hostPublicKeyLine: string;
  dir: string;
  homeDir: string;

  #netns?: string;
  #listenAddress: string;
  #extraConfig: string[];
  #child?: Deno.ChildProcess;
  #status?: Promise<Deno.CommandStatus>;
  #exited = false;
  #stopped = false;
  #finalLog?: string;

  constructor(init: {
    dir: string;
    user: LoginUser;
    publicKey: string;
    hostPublicKeyLine: string;
    listenAddress: string;
    netns?: string;
    extraConfig: string[];
  }) {
    this.dir = init.dir;
    this.host = init.listenAddress;
    this.port = 0;
    this.user = init.user.name;
    this.homeDir = init.user.home;
    this.identityFile = `${init.dir}/id_ed25519`;
    this.publicKey = init.publicKey;
    this.knownHostsFile = `${init.dir}/known_hosts`;
    this.hostPublicKeyLine = init.hostPublicKeyLine;
    this.hostKeyFingerprint = fingerprint(init.hostPublicKeyLine);
    this.#listenAddress = init.listenAddress;
    this.#netns = init.netns;
    this.#extraConfig = init.extraConfig;
  }

  get #configFile(): string {
    return `${this.dir}/sshd_config`;
  }

  get #logFile(): string {
    return `${this.dir}/sshd.log`;
  }

  async configure(port: number): Promise<void> {
    this.port = port;
    const d = this.dir;
    const lines = [
      `Port ${port}`,
      `ListenAddress ${this.#listenAddress}`,
      `HostKey ${d}/ssh_host_ed25519_key`,
      `PidFile ${d}/sshd.pid`,
      `AuthorizedKeysFile ${d}/authorized_keys`,
      `AllowUsers ${this.user}`,
      "UsePAM no",
      "StrictModes no",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PrintMotd no",
      "PrintLastLog no",
      "UseDNS no",
      "Subsystem sftp internal-sftp",
      "LogLevel VERBOSE",
      ...this.#extraConfig,
    ];
    await Deno.writeTextFile(this.#configFile, lines.join("\n") + "\n");
    await Deno.writeTextFile(
      this.knownHostsFile,
      `${knownHostsName(this.host, port)} ${this.hostPublicKeyLine}\n`,
    );
  }

  /** Spawn sshd and wait until it listens. Throws (with the log) if it does not. */
  async spawn(): Promise<void> {
    await Deno.mkdir("/run/sshd", { recursive: true }).catch(() => {});
    const sshdArgs = ["-D", "-f", this.#configFile, "-E", this.#logFile];
    const [cmd, args] = this.#netns
      ? ["ip", ["netns", "exec", this.#netns, SSHD, ...sshdArgs]]
      : [SSHD, sshdArgs];
    this.#exited = false;
    const child = new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    // Early errors (before -E takes effect) land on stderr: append them to the log file.
    const stderrDone = child.stderr.pipeTo(
      (await Deno.open(this.#logFile, { append: true, create: true })).writable,
    ).catch(() => {});
    this.#status = child.status.then(async (s) => {
      this.#exited = true;
      await stderrDone;
      return s;
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (true) {
      if (this.#exited) {
        const s = await this.#status;
        this.#child = undefined;
        throw new SshdStartError(
          `sshd exited during startup (code ${s.code}, signal ${s.signal})`,
          await this.log(),
        );
      }
      if (await this.#listening()) return;
      if (Date.now() > deadline) {
        await this.#terminate(0);
        throw new SshdStartError(
          `sshd did not accept connections on ${this.host}:${this.port} within ${READY_TIMEOUT_MS} ms`,
          await this.log(),
        );
      }
      await sleep(20);
    }
  }

  async #listening(): Promise<boolean> {
    if (this.#netns) {
      const r = await run("ip", [
        "netns",
        "exec",
        this.#netns,
        "ss",
        "-Hltn",
        `sport = :${this.port}`,
      ]);
      return r.code === 0 && r.stdout.trim() !== "";
    }
    try {
      const conn = await Deno.connect({ hostname: this.host, port: this.port });
      conn.close();
      return true;
    } catch {
      return false;
    }
  }

  /** Stop the current process and all its descendants (per-connection sshd children). */
  async #terminate(graceMs: number): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    const kids = await descendants(child.pid);
    if (graceMs > 0 && !this.#exited) {
      signal(child.pid, "SIGTERM");
      const deadline = Date.now() + graceMs;
      while (!this.#exited && Date.now() < deadline) await sleep(10);
    }
    if (!this.#exited) signal(child.pid, "SIGKILL");
    // Session children were started with setsid(); kill them explicitly so no process is left
    // behind and client connections drop, as in a crash of the whole server.
    await killAndWait([...kids, ...(await descendants(child.pid))]);
    await this.#status;
  }

  async log(): Promise<string> {
    if (this.#finalLog !== undefined) return this.#finalLog;
    try {
      return await Deno.readTextFile(this.#logFile);
    } catch {
      return "";
    }
  }

  async kill(): Promise<void> {
    await this.#terminate(0);
  }

  async restart(): Promise<void> {
    if (this.#stopped) throw new Error("restart() after stop()");
    await this.#terminate(TERM_GRACE_MS);
    await this.spawn();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      await this.#terminate(TERM_GRACE_MS);
    } finally {
      this.#finalLog = await this.log();
      await Deno.remove(this.dir, { recursive: true }).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** Thrown when sshd fails to start; `log` holds the sshd log. */
export class SshdStartError extends Error {
  /** The sshd log at the time of failure. */
  readonly log: string;
  constructor(message: string, log: string) {
    super(`${message}\n--- sshd log ---\n${log}`);
    this.name = "SshdStartError";
    this.log = log;
  }
}

/** Start a real sshd with fresh keys on a random free port. */
export async function startSshd(options: StartSshdOptions = {}): Promise<TestSshd> {
  const reason = await sshdUnavailableReason();
  if (reason) throw new Error(`cannot start test sshd: ${reason}`);
  const user = await loginUser();
  const dir = await Deno.makeTempDir({ prefix: "sbx-sshd-" });
  let server: SshdServer | undefined;
  try {
    await Deno.writeTextFile(`${dir}/${OWNER_FILE}`, await ownerTag());
    await (staleReaped ??= reapStaleSshds(dir.slice(0, dir.lastIndexOf("/"))));
    // sshd reads AuthorizedKeysFile as the login user: the dir must be traversable by it.
    await Deno.chmod(dir, 0o755);
    const hostPub = await genKey(`${dir}/ssh_host_ed25519_key`, "sbx-test-host");
    const userPub = await genKey(`${dir}/id_ed25519`, "sbx-test-user", options.keyPassphrase);
    await Deno.writeTextFile(`${dir}/authorized_keys`, userPub);
    await Deno.chmod(`${dir}/authorized_keys`, 0o644);
    server = new SshdServer({
      dir,
      user,
      publicKey: userPub,
      hostPublicKeyLine: keyTypeAndBlob(hostPub),
      listenAddress: options.listenAddress ?? "127.0.0.1",
      netns: options.netns,
      extraConfig: options.extraConfig ?? [],
    });
    for (let attempt = 1;; attempt++) {
      await server.configure(await freePort());
      try {
        await server.spawn();
        return server;
      } catch (e) {
        // Another process may have grabbed the port between freePort() and bind(): retry.
        const portTaken = e instanceof SshdStartError &&
          /Address already in use|Cannot bind any address/.test(e.log);
        if (!portTaken || attempt >= START_ATTEMPTS) throw e;
        await Deno.writeTextFile(`${dir}/sshd.log`, "");
      }
    }
  } catch (e) {
    if (server) await server.stop();
    else await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}
