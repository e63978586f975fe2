/**
 * Test harness: a private, throw-away Docker engine for integration tests.
 *
 * `startDocker()` runs its own `dockerd` (root needed) with every piece of state under one temp
 * directory `/tmp/sbx-docker-XXXX/` (data-root, exec-root, pidfile, unix socket, daemon.json,
 * log) and `--storage-driver vfs --iptables=false --ip-forward=false --bridge=none`, so it never
 * touches a system dockerd, /var/lib/docker, the host's firewall or sysctls. Containers should use
 * `network_mode: host`. No image registry is needed: the one image, `sandboxer-test-sshd:bookworm`,
 * is built locally with debootstrap. `stop()` removes every container, stops dockerd (SIGTERM,
 * then SIGKILL), kills leftovers that still refer to the temp directory, unmounts and deletes it.
 *
 * A `TestDocker` owns a child process and a log stream: start and stop it inside one `Deno.test`
 * (use `t.step` for sub-tests), or switch off `sanitizeOps`/`sanitizeResources` when it is shared
 * across tests.
 *
 * Fault tests can take the daemon away and bring it back with the same state: `stopDaemon()`
 * SIGTERMs dockerd (which stops the containers; none has a restart policy unless the compose file
 * gives one) and waits until it and its containerd are gone; `startDaemon()` starts dockerd again
 * on the same data-root, exec-root and socket, so images, containers (stopped), networks and
 * volumes are all still there, and waits until `docker info` answers. The log of every run is
 * appended to the same `dockerd.log`. `stop()` works in either state.
 *
 * ## Image `sandboxer-test-sshd:bookworm`
 *
 * Debian bookworm `--variant=minbase` plus openssh-server, openssh-sftp-server and rsync. Its CMD
 * is the POSIX sh script `/usr/local/bin/sbx-sshd-entrypoint` (source:
 * tests/fixtures/compose/sbx-sshd-entrypoint). Contract, by environment variable:
 *
 * - `SSHD_PORT` (required): sshd listens on `127.0.0.1:$SSHD_PORT` only; use `network_mode: host`
 *   so that this is the host's loopback.
 * - `SSH_USER` (default `sbx`): login user, created with shell /bin/sh and a home directory, and
 *   unlocked with `usermod -p '*'` (sshd with UsePAM=no refuses locked accounts). `SSH_UID`
 *   (optional) picks its uid when it is created.
 * - `SSH_AUTHORIZED_KEY`: public key line(s) allowed to log in; and/or a mounted file
 *   `/run/sbx/authorized_keys`. Both are merged into `/run/sbx-sshd/authorized_keys`; at least one
 *   key is required (exit 64 otherwise). `~/.ssh/authorized_keys` of the user also counts.
 * - `SSH_HOST_KEY_FILE`: path of a mounted private host key (any mode: a 0600 copy is used). If
 *   unset, a fresh ed25519 host key is generated (its public half is then only in the container).
 *
 * It does `mkdir -p /run/sshd` and then
 * `exec /usr/sbin/sshd -D -e -p $SSHD_PORT -o ListenAddress=127.0.0.1 -o UsePAM=no
 * -o StrictModes=no -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no
 * -o PermitRootLogin=no -o "AuthorizedKeysFile=/run/sbx-sshd/authorized_keys .ssh/authorized_keys"
 * -o PidFile=none -h <host key>`: sshd is PID 1, logs to stderr (`docker logs`) and exits on
 * SIGTERM. SFTP works through Debian's default `Subsystem sftp`. The image carries no host keys.
 * See tests/fixtures/compose/sshd.compose.yaml for a compose service using it.
 *
 * ## Caching
 *
 * The debootstrap rootfs (30–90 s to make, depending on the mirror) is kept as a tarball at
 * `$SANDBOXER_TEST_CACHE/rootfs-bookworm-sshd.tar` (SANDBOXER_TEST_CACHE names a directory; default
 * `/var/cache/sandboxer-test`), written atomically (temp file + rename) under a file lock, ~96 MB
 * (docs, man pages and translations removed). Later engines stream it into `docker import`,
 * replacing the entrypoint member with the current script, so editing the script needs no rebuild;
 * delete the tarball to rebuild the rootfs. A corrupt tarball is rebuilt.
 *
 * No `docker save` tarball of the image is kept, because it is not faster. Measured here (Debian 12,
 * 2 cores, vfs), each on a fresh engine: `docker import` of the cached rootfs 1.48–1.61 s,
 * `docker load` of the saved image 1.58–1.77 s, plus 0.5 s for the `docker save` itself and a
 * second ~96 MB file. Both unpack the same files into one vfs layer.
 *
 * Cost of vfs: every container starts with a full copy of the image (~1.5–2.5 s each here).
 *
 * Environment: `SANDBOXER_TEST_CACHE` (cache directory), `SANDBOXER_DEBIAN_MIRROR` (overrides the
 * mirror read from /etc/apt/sources.list.d/debian.sources).
 *
 * @module
 */

/** A running private Docker engine for tests. */
export interface TestDocker extends AsyncDisposable {
  /** Value for DOCKER_HOST, e.g. "unix:///tmp/sbx-docker-xxx/docker.sock". */
  readonly dockerHost: string;
  /** Env to pass to docker / docker-compose child processes: { DOCKER_HOST, PATH, HOME } */
  readonly env: Record<string, string>;
  /** Image name with OpenSSH server + rsync, built locally (no registry). */
  readonly sshImage: string;
  /** The compose command that works here: ["docker","compose"] if the v2 plugin exists, else ["docker-compose"]. */
  readonly composeCommand: string[];
  /** Removes all containers, stops dockerd and deletes its state. Idempotent. */
  stop(): Promise<void>;
  /**
   * Fault injection: SIGTERM dockerd (SIGKILL after 20 s) and wait until it and its containerd
   * have exited, keeping every piece of state. Running containers are stopped by the shutdown.
   * Resolves at once when the daemon is already stopped.
   */
  stopDaemon(): Promise<void>;
  /**
   * Start dockerd again after `stopDaemon()`, with the same data-root, exec-root, pidfile and
   * socket, and wait (bounded) until `docker info` answers. Resolves at once when it runs.
   */
  startDaemon(): Promise<void>;
}

const SSH_IMAGE = "sandboxer-test-sshd:bookworm";
const SUITE = "bookworm";
const IMAGE_PACKAGES = ["openssh-server", "openssh-sftp-server", "rsync"];
const ENTRYPOINT_IN_IMAGE = "/usr/local/bin/sbx-sshd-entrypoint";
const ENTRYPOINT_SOURCE = new URL("../fixtures/compose/sbx-sshd-entrypoint", import.meta.url);
const ROOTFS_CACHE_NAME = "rootfs-bookworm-sshd.tar";
const DEFAULT_CACHE_DIR = "/var/cache/sandboxer-test";
const DEFAULT_MIRROR = "http://deb.debian.org/debian";
const ENGINE_DIR_PARENT = "/tmp"; // short: unix socket paths must stay under 108 bytes
const ENGINE_DIR_PREFIX = "sbx-docker-";
const DOCKERD_READY_TIMEOUT_MS = 60_000;
const DOCKERD_STOP_TIMEOUT_MS = 20_000;
const IMPORT_CHANGES = [
  `CMD ["${ENTRYPOINT_IN_IMAGE}"]`,
  "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  "LABEL org.sandboxer.test-image=sshd",
];

const decoder = new TextDecoder();
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Small process and file helpers

function note(message: string): void {
  // deno-lint-ignore no-console
  console.error(`[sandboxer test docker] ${message}`);
}

interface RunOptions {
  env?: Record<string, string>;
  /** Start the child from an empty environment plus `env`. */
  clearEnv?: boolean;
  /** Kill the child after this long. */
  timeoutMs?: number;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

async function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const signal = options.timeoutMs === undefined
    ? undefined
    : AbortSignal.timeout(options.timeoutMs);
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(cmd, {
      args,
      env: options.env,
      clearEnv: options.clearEnv ?? false,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new Error(`${cmd}: command not found`);
    throw error;
  }
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    timedOut: signal?.aborted ?? false,
  };
}

function describeFailure(cmd: string, args: string[], result: RunResult): string {
  const how = result.timedOut ? "timed out" : `exit ${result.code}`;
  const output = tail(`${result.stdout}\n${result.stderr}`.trim(), 30);
  return `${[cmd, ...args].join(" ")} failed (${how})${output ? `:\n${output}` : ""}`;
}

function tail(text: string, lines: number): string {
  return text.split("\n").slice(-lines).join("\n");
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** PATH for children: ours, plus the sbin directories a non-login root shell may lack. */
function childPath(): string {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "");
  for (const d of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
    if (!dirs.includes(d)) dirs.push(d);
  }
  return dirs.join(":");
}

async function which(name: string): Promise<string | undefined> {
  for (const dir of childPath().split(":")) {
    try {
      const info = await Deno.stat(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/**
 * PIDs (other than ours) whose command line mentions `needle`. Read with `ps` (and mountinfo with
 * `cat` below) because Deno lets only --allow-all read /proc, and the test task runs without it.
 */
/**
 * Pids of processes (other than this one) whose command line mentions `needle`, via `ps`:
 * Deno reads /proc only with --allow-all.
 */
export async function processesMentioning(needle: string): Promise<number[]> {
  const args = ["-e", "-ww", "-o", "pid=,args="];
  const result = await run("ps", args, { timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(describeFailure("ps", args, result));
  const pids: number[] = [];
  for (const line of result.stdout.split("\n")) {
    const match = /^\s*(\d+)\s(.*)$/.exec(line);
    if (match && Number(match[1]) !== Deno.pid && match[2].includes(needle)) {
      pids.push(Number(match[1]));
    }
  }
  return pids;
}

/** Mount points at or below `dir`, deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const mountinfo = await run("cat", ["/proc/self/mountinfo"], { timeoutMs: 30_000 });
  if (mountinfo.code !== 0) {
    throw new Error(describeFailure("cat", ["/proc/self/mountinfo"], mountinfo));
  }
  const text = mountinfo.stdout;
  const points = text.split("\n").filter((line) => line !== "").map((line) =>
    line.split(" ")[4].replace(
      /\\([0-7]{3})/g,
      (_, o: string) => String.fromCharCode(parseInt(o, 8)),
    )
  ).filter((point) => point === dir || point.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

async function unmountUnder(dir: string): Promise<void> {
  for (const point of await mountsUnder(dir)) {
    const result = await run("umount", [point], { timeoutMs: 30_000 });
    if (result.code !== 0) await run("umount", ["-l", point], { timeoutMs: 30_000 });
  }
}

// ---------------------------------------------------------------------------------------------
// Tools

interface MissingTools {
  packages: string[];
  tools: string[];
}

function rootfsCacheFile(): string {
  const dir = Deno.env.get("SANDBOXER_TEST_CACHE") || DEFAULT_CACHE_DIR;
  return `${dir.replace(/\/+$/, "")}/${ROOTFS_CACHE_NAME}`;
}

async function detectComposeCommand(env: Record<string, string>): Promise<string[] | undefined> {
  if (await which("docker")) {
    const v2 = await run("docker", ["compose", "version"], {
      env,
      clearEnv: true,
      timeoutMs: 20_000,
    });
    if (v2.code === 0) return ["docker", "compose"];
  }
  if (await which("docker-compose")) return ["docker-compose"];
  return undefined;
}

async function missingTools(): Promise<MissingTools> {
  const missing: MissingTools = { packages: [], tools: [] };
  for (const tool of ["dockerd", "docker", "containerd", "runc"]) {
    if (!(await which(tool))) missing.tools.push(tool);
  }
  if (missing.tools.length > 0) missing.packages.push("docker.io");
  const composeEnv = { PATH: childPath(), HOME: Deno.env.get("HOME") ?? "/root" };
  if (!(await detectComposeCommand(composeEnv))) {
    missing.tools.push("docker-compose");
    missing.packages.push("docker-compose");
  }
  for (const tool of ["tar", "umount"]) {
    if (!(await which(tool))) missing.tools.push(tool);
  }
  if (!(await which("debootstrap")) && !(await isFile(rootfsCacheFile()))) {
    missing.tools.push("debootstrap");
    missing.packages.push("debootstrap");
  }
  return missing;
}

/** Reason Docker tests cannot run here (not root and no engine, dockerd missing and cannot install…), or undefined. */
export async function dockerUnavailableReason(): Promise<string | undefined> {
  try {
    return await unavailableReason();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return `missing Deno permission (run with --allow-all): ${error.message}`;
    }
    throw error;
  }
}

async function unavailableReason(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return `a private dockerd needs Linux (this is ${Deno.build.os})`;
  const uid = Deno.uid();
  if (uid !== 0) return `a private dockerd needs root (running as uid ${uid})`;
  const missing = await missingTools();
  if (missing.tools.length === 0) return undefined;
  // Installing is tools/test.sh's job (it says so); a test never changes the machine's packages.
  const hint = missing.packages.length > 0
    ? ` (install ${missing.packages.join(" ")} with apt-get, as tools/test.sh does when root)`
    : "";
  return `missing ${missing.tools.join(", ")}${hint}`;
}

// ---------------------------------------------------------------------------------------------
// The engine

/** Remove engine directories left by runs that died without stop(): nothing refers to them. */
async function sweepStaleEngineDirs(): Promise<void> {
  const minAgeMs = 10 * 60_000;
  for await (const entry of Deno.readDir(ENGINE_DIR_PARENT)) {
    if (!entry.isDirectory || !entry.name.startsWith(ENGINE_DIR_PREFIX)) continue;
    const dir = `${ENGINE_DIR_PARENT}/${entry.name}`;
    try {
      const info = await Deno.stat(dir);
      if (Date.now() - (info.mtime?.getTime() ?? Date.now()) < minAgeMs) continue;
      if ((await processesMentioning(`${dir}/`)).length > 0) continue;
      note(`removing stale ${dir}`);
      await unmountUnder(dir);
      await Deno.remove(dir, { recursive: true });
    } catch (error) {
      note(`could not remove stale ${dir}: ${errorMessage(error)}`);
    }
  }
}

class PrivateDocker implements TestDocker {
  readonly dockerHost: string;
  readonly env: Record<string, string>;
  readonly sshImage: string = SSH_IMAGE;
  readonly composeCommand: string[];
  readonly #dir: string;
  #child: Deno.ChildProcess;
  readonly #logPumps: Promise<void>[] = [];
  readonly #logAbort = new AbortController();
  readonly #onUnload: () => void;
  #exit: Deno.CommandStatus | undefined;
  #stopping: Promise<void> | undefined;
  /** The daemon was stopped on purpose by stopDaemon() (its state is kept). */
  #daemonStopped = false;
  /** A stopDaemon()/startDaemon() in progress: they run one at a time. */
  #daemonChange: Promise<void> = Promise.resolve();

  private constructor(dir: string, env: Record<string, string>, composeCommand: string[]) {
    this.#dir = dir;
    this.env = env;
    this.dockerHost = env.DOCKER_HOST;
    this.composeCommand = composeCommand;
    this.#child = this.#spawn(true);
    // Best effort when the test process exits without stop(): ask dockerd to shut down.
    this.#onUnload = () => {
      if (this.#exit === undefined) {
        try {
          this.#child.kill("SIGTERM");
        } catch {
          // already gone
        }
      }
    };
    globalThis.addEventListener("unload", this.#onUnload);
  }

  /** Spawns dockerd on the engine directory; `first` truncates the log, later runs append. */
  #spawn(first: boolean): Deno.ChildProcess {
    const dir = this.#dir;
    const child = new Deno.Command("dockerd", {
      args: [
        "--data-root",
        `${dir}/data`,
        "--exec-root",
        `${dir}/exec`,
        "--pidfile",
        `${dir}/docker.pid`,
        "--host",
        this.dockerHost,
        "--config-file",
        `${dir}/daemon.json`,
        "--storage-driver",
        "vfs",
        "--iptables=false",
        "--ip-forward=false",
        "--bridge=none",
      ],
      env: { PATH: this.env.PATH },
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#exit = undefined;
    child.status.then((status) => {
      if (this.#child === child) this.#exit = status;
    });
    const logOptions = first
      ? { write: true, create: true, truncate: true }
      : { write: true, create: true, append: true };
    this.#logPumps.push(
      Deno.open(`${dir}/dockerd.log`, logOptions)
        .then((file) => child.stderr.pipeTo(file.writable, { signal: this.#logAbort.signal }))
        .catch(() => {}),
    );
    return child;
  }

  /** Spawns dockerd in `dir` and waits until `docker info` answers. */
  static async launch(dir: string): Promise<PrivateDocker> {
    const env = {
      DOCKER_HOST: `unix://${dir}/docker.sock`,
      PATH: childPath(),
      HOME: Deno.env.get("HOME") ?? "/root",
    };
    const compose = await detectComposeCommand(env);
    if (!compose) throw new Error("neither `docker compose` nor `docker-compose` works");
    // Keep dockerd 20.10's identity key out of /etc/docker; ignore the system daemon.json.
    const config = { "deprecated-key-path": `${dir}/key.json` };
    await Deno.writeTextFile(`${dir}/daemon.json`, `${JSON.stringify(config)}\n`);
    const engine = new PrivateDocker(dir, env, compose);
    try {
      await engine.#waitReady();
    } catch (error) {
      await engine.stop().catch((stopError) => note(`stop failed: ${errorMessage(stopError)}`));
      throw error;
    }
    return engine;
  }

  async #logTail(): Promise<string> {
    try {
      return tail((await Deno.readTextFile(`${this.#dir}/dockerd.log`)).trimEnd(), 40);
    } catch {
      return "(no log)";
    }
  }

  async #waitReady(): Promise<void> {
    const deadline = Date.now() + DOCKERD_READY_TIMEOUT_MS;
    let last = "";
    while (true) {
      if (this.#exit !== undefined) {
        throw new Error(
          `dockerd exited (code ${this.#exit.code}) before answering; its log:\n${await this
            .#logTail()}`,
        );
      }
      const info = await run("docker", ["info", "--format", "{{.ServerVersion}}"], {
        env: this.env,
        clearEnv: true,
        timeoutMs: 10_000,
      });
      if (info.code === 0) return;
      last = info.stderr.trim();
      if (Date.now() > deadline) {
        throw new Error(
          `dockerd did not answer \`docker info\` within ${DOCKERD_READY_TIMEOUT_MS / 1000} s ` +
            `(last error: ${last}); its log:\n${await this.#logTail()}`,
        );
      }
      await delay(100);
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #stop(): Promise<void> {
    globalThis.removeEventListener("unload", this.#onUnload);
    await this.#daemonChange.catch(() => {});
    const problems: string[] = [];
    if (this.#exit === undefined) {
      // Remove all containers first, so that nothing depends on dockerd's shutdown path.
      const docker = (args: string[]) =>
        run("docker", args, { env: this.env, clearEnv: true, timeoutMs: 30_000 });
      const ps = await docker(["ps", "-aq"]);
      const ids = ps.stdout.split("\n").filter((id) => id !== "");
      if (ps.code !== 0) problems.push(describeFailure("docker", ["ps", "-aq"], ps));
      else if (ids.length > 0) {
        const rm = await docker(["rm", "-f", "-v", ...ids]);
        if (rm.code !== 0) problems.push(describeFailure("docker", ["rm", "-f", "-v"], rm));
      }
      await this.#terminate();
    }
    await this.#child.status;
    // Containers left behind (dockerd killed or hung): runc kills their processes, which do not
    // mention our directory. Then dockerd's containerd and the shims, which do.
    await this.#deleteRuncContainers();
    for (let attempt = 0; attempt < 50; attempt++) {
      const leftovers = await processesMentioning(`${this.#dir}/`);
      if (leftovers.length === 0) break;
      for (const pid of leftovers) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
      await delay(100);
    }
    const leftovers = await processesMentioning(`${this.#dir}/`);
    if (leftovers.length > 0) problems.push(`processes still running: ${leftovers.join(", ")}`);
    const timer = setTimeout(() => this.#logAbort.abort(), 5_000);
    await Promise.all(this.#logPumps);
    clearTimeout(timer);
    try {
      await unmountUnder(this.#dir);
      await removeIfExists(this.#dir);
    } catch (error) {
      problems.push(`could not remove ${this.#dir}: ${errorMessage(error)}`);
    }
    if (problems.length > 0) throw new Error(`stopping the test dockerd:\n${problems.join("\n")}`);
  }

  stopDaemon(): Promise<void> {
    return this.#changeDaemon(() => this.#stopDaemon());
  }

  startDaemon(): Promise<void> {
    return this.#changeDaemon(() => this.#startDaemon());
  }

  #changeDaemon(change: () => Promise<void>): Promise<void> {
    if (this.#stopping) return Promise.reject(new Error("the test Docker engine was stopped"));
    const next = this.#daemonChange.catch(() => {}).then(change);
    this.#daemonChange = next;
    return next;
  }

  async #stopDaemon(): Promise<void> {
    if (this.#daemonStopped) return;
    if (this.#exit !== undefined) {
      throw new Error(
        `dockerd already exited (code ${this.#exit.code}); its log:\n${await this.#logTail()}`,
      );
    }
    this.#daemonStopped = true;
    await this.#terminate();
    await this.#child.status;
    // dockerd stops its own containerd on the way out; wait for it (and any shim) to be gone, so
    // that "stopped" means nothing of this engine runs. Both mention the engine directory.
    const deadline = Date.now() + DOCKERD_STOP_TIMEOUT_MS;
    for (;;) {
      const left = await processesMentioning(`${this.#dir}/`);
      if (left.length === 0) return;
      if (Date.now() > deadline) {
        note(`processes of the stopped engine still running after dockerd exited: ${left}`);
        return;
      }
      await delay(100);
    }
  }

  async #startDaemon(): Promise<void> {
    if (!this.#daemonStopped) {
      if (this.#exit === undefined) return;
      throw new Error(
        `dockerd exited (code ${this.#exit.code}) without stopDaemon(); its log:\n${await this
          .#logTail()}`,
      );
    }
    this.#child = this.#spawn(false);
    this.#daemonStopped = false;
    await this.#waitReady();
  }

  async #deleteRuncContainers(): Promise<void> {
    const root = `${this.#dir}/exec/runtime-runc/moby`;
    try {
      for await (const entry of Deno.readDir(root)) {
        if (!entry.isDirectory) continue;
        await run("runc", ["--root", root, "delete", "--force", entry.name], {
          env: { PATH: this.env.PATH },
          clearEnv: true,
          timeoutMs: 30_000,
        });
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        note(`could not delete leftover containers: ${errorMessage(error)}`);
      }
    }
  }

  async #terminate(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      return; // exited meanwhile
    }
    const exited = await Promise.race([
      this.#child.status.then(() => true),
      delay(DOCKERD_STOP_TIMEOUT_MS).then(() => false),
    ]);
    if (!exited) {
      note(`dockerd ignored SIGTERM for ${DOCKERD_STOP_TIMEOUT_MS / 1000} s; sending SIGKILL`);
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
  }
}

/** Start a private dockerd (own data-root, exec-root, pidfile, unix socket under one temp dir) with
 *  --storage-driver vfs --iptables=false --bridge=none, wait until `docker info` answers (bounded, clear error with the daemon log),
 *  and make sure the ssh image exists (ensureSshImage). Installs nothing: a missing
 *  tool is a reason from dockerUnavailableReason() (tools/test.sh installs them when root). */
export async function startDocker(): Promise<TestDocker> {
  const reason = await dockerUnavailableReason();
  if (reason !== undefined) throw new Error(`cannot start a test Docker engine: ${reason}`);
  await sweepStaleEngineDirs();
  const dir = await Deno.makeTempDir({ dir: ENGINE_DIR_PARENT, prefix: ENGINE_DIR_PREFIX });
  let engine: PrivateDocker;
  try {
    engine = await PrivateDocker.launch(dir);
  } catch (error) {
    await removeIfExists(dir).catch(() => {});
    throw error;
  }
  try {
    await ensureSshImage(engine);
  } catch (error) {
    await engine.stop().catch((stopError) => note(`stop failed: ${errorMessage(stopError)}`));
    throw error;
  }
  return engine;
}

// ---------------------------------------------------------------------------------------------
// The ssh image

class CorruptCacheError extends Error {}

/** Build the image if the engine lacks it: debootstrap --variant=minbase --include=openssh-server,rsync bookworm ROOTFS <mirror from /etc/apt/sources.list.d/debian.sources URIs>, then `tar -C ROOTFS -c . | docker import - IMAGE` (pipe via Deno streams: tar's stdout into docker's stdin — no shell). Cache the rootfs TARBALL between runs at $SANDBOXER_TEST_CACHE or /var/cache/sandboxer-test/rootfs-bookworm-sshd.tar (atomic write: temp + rename) so later runs skip debootstrap (~90 s cold). */
export async function ensureSshImage(docker: TestDocker): Promise<string> {
  const image = docker.sshImage;
  const inspect = await run("docker", ["image", "inspect", "--format", "{{.Id}}", image], {
    env: docker.env,
    clearEnv: true,
    timeoutMs: 60_000,
  });
  if (inspect.code === 0) return image;
  const entrypoint = await Deno.readFile(ENTRYPOINT_SOURCE);
  const cacheFile = rootfsCacheFile();
  await Deno.mkdir(cacheFile.slice(0, cacheFile.lastIndexOf("/")) || "/", { recursive: true });
  // One builder at a time per cache (parallel test processes wait for the first one's tarball).
  const lock = await Deno.open(`${cacheFile}.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    if (await isFile(cacheFile)) {
      try {
        await importCachedRootfs(docker, cacheFile, entrypoint);
        return image;
      } catch (error) {
        if (!(error instanceof CorruptCacheError)) throw error;
        note(`${cacheFile} is unusable (${error.message}); rebuilding it`);
        await removeIfExists(cacheFile);
      }
    }
    await buildRootfsAndImport(docker, cacheFile, entrypoint);
    return image;
  } finally {
    lock.close();
  }
}

function spawnImport(docker: TestDocker): Deno.ChildProcess {
  const changes = IMPORT_CHANGES.flatMap((change) => ["--change", change]);
  return new Deno.Command("docker", {
    args: ["import", ...changes, "-", docker.sshImage],
    env: docker.env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

function checkImport(output: Deno.CommandOutput, streamError?: unknown): void {
  if (output.code === 0 && streamError === undefined) return;
  const detail = decoder.decode(output.stderr).trim() ||
    (streamError === undefined ? "" : errorMessage(streamError));
  throw new Error(`docker import failed (exit ${output.code}): ${detail}`);
}

/** Streams the cached rootfs tarball, plus the current entrypoint script, into `docker import`. */
async function importCachedRootfs(
  docker: TestDocker,
  cacheFile: string,
  entrypoint: Uint8Array,
): Promise<void> {
  using file = await Deno.open(cacheFile, { read: true });
  const { keep } = await scanTar(file, ENTRYPOINT_IN_IMAGE);
  const child = spawnImport(docker);
  const output = child.output();
  const writer = child.stdin.getWriter();
  let streamError: unknown;
  try {
    const buffer = new Uint8Array(1 << 20);
    for (const [start, end] of keep) {
      await file.seek(start, Deno.SeekMode.Start);
      for (let left = end - start; left > 0;) {
        const n = await file.read(buffer.subarray(0, Math.min(buffer.length, left)));
        if (n === null) throw new CorruptCacheError("truncated tarball");
        await writer.write(buffer.slice(0, n));
        left -= n;
      }
    }
    const mtime = Math.floor(Date.now() / 1000);
    await writer.write(tarFileEntry(`.${ENTRYPOINT_IN_IMAGE}`, entrypoint, 0o755, mtime));
    await writer.write(new Uint8Array(1024)); // end-of-archive marker
    await writer.close();
  } catch (error) {
    if (error instanceof CorruptCacheError) {
      await writer.abort().catch(() => {});
      await output;
      throw error;
    }
    streamError = error;
    await writer.abort().catch(() => {});
  }
  checkImport(await output, streamError);
}

/**
 * The cached debootstrap rootfs tarball (see "Caching" above), built if it is missing: the tree
 * the ssh image is imported from, for harnesses that run sshd in a chroot of their own
 * (tests/harness/isolated_host.ts). Needs root and debootstrap only when it has to build.
 *
 * @returns The tarball's path.
 */
export async function ensureRootfsTarball(): Promise<string> {
  const cacheFile = rootfsCacheFile();
  await Deno.mkdir(cacheFile.slice(0, cacheFile.lastIndexOf("/")) || "/", { recursive: true });
  const lock = await Deno.open(`${cacheFile}.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    if (!(await isFile(cacheFile))) {
      await buildRootfsAndImport(undefined, cacheFile, await Deno.readFile(ENTRYPOINT_SOURCE));
    }
    return cacheFile;
  } finally {
    lock.close();
  }
}

/**
 * debootstrap a rootfs, then `tar -C ROOTFS -c .` into the cache file and, given an engine,
 * into its `docker import -` too.
 */
async function buildRootfsAndImport(
  docker: TestDocker | undefined,
  cacheFile: string,
  entrypoint: Uint8Array,
): Promise<void> {
  if (!(await which("debootstrap"))) throw new Error("debootstrap is missing");
  const mirror = await debianMirror();
  const work = await Deno.makeTempDir({ prefix: "sbx-rootfs-" });
  const rootfs = `${work}/rootfs`;
  const partial = `${cacheFile}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  note(
    `building ${
      docker?.sshImage ?? "the test rootfs"
    }: debootstrap ${SUITE} from ${mirror} (30–90 s; ` +
      `the rootfs is then cached in ${cacheFile})`,
  );
  try {
    const args = [
      "--variant=minbase",
      `--include=${IMAGE_PACKAGES.join(",")}`,
      SUITE,
      rootfs,
      mirror,
    ];
    const result = await run("debootstrap", args, { timeoutMs: 20 * 60_000 });
    if (result.code !== 0) {
      let log = "";
      try {
        log = tail(await Deno.readTextFile(`${rootfs}/debootstrap/debootstrap.log`), 30);
      } catch {
        // no log
      }
      throw new Error(`${describeFailure("debootstrap", args, result)}\n${log}`);
    }
    await trimRootfs(rootfs);
    const target = `${rootfs}${ENTRYPOINT_IN_IMAGE}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(target, entrypoint);
    await Deno.chmod(target, 0o755);
    await tarIntoImportAndFile(docker, rootfs, partial);
    await Deno.rename(partial, cacheFile);
  } finally {
    await removeIfExists(partial).catch(() => {});
    await unmountUnder(work).catch(() => {});
    await removeIfExists(work).catch((error) =>
      note(`could not remove ${work}: ${errorMessage(error)}`)
    );
  }
}

/**
 * Drop what the image must not share or does not need: baked host keys, apt caches, and
 * translations and documentation (a third of the rootfs; vfs copies the whole image for every
 * container, so smaller means faster `compose up`).
 */
async function trimRootfs(rootfs: string): Promise<void> {
  const clear = async (dir: string, keep: (name: string) => boolean) => {
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (entry.isFile && keep(entry.name)) await Deno.remove(`${dir}/${entry.name}`);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  };
  await clear(`${rootfs}/etc/ssh`, (name) => name.startsWith("ssh_host_"));
  await clear(`${rootfs}/var/cache/apt/archives`, (name) => name.endsWith(".deb"));
  await clear(`${rootfs}/var/cache/apt`, (name) => name.endsWith(".bin"));
  await clear(`${rootfs}/var/lib/apt/lists`, (name) => name !== "lock");
  for (const dir of ["usr/share/locale", "usr/share/doc", "usr/share/man", "usr/share/info"]) {
    try {
      for await (const entry of Deno.readDir(`${rootfs}/${dir}`)) {
        if (entry.name === "locale.alias") continue;
        await Deno.remove(`${rootfs}/${dir}/${entry.name}`, { recursive: true });
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}

/** Pipes tar's stdout into `partial` and, given an engine, `docker import -` too, with backpressure. */
async function tarIntoImportAndFile(
  docker: TestDocker | undefined,
  rootfs: string,
  partial: string,
): Promise<void> {
  const tar = new Deno.Command("tar", {
    args: ["--numeric-owner", "--one-file-system", "-C", rootfs, "-c", "."],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tarStderr = new Response(tar.stderr).text();
  const importer = docker ? spawnImport(docker) : undefined;
  const importOutput = importer?.output();
  const file = await Deno.open(partial, { write: true, createNew: true });
  const toImport = importer?.stdin.getWriter();
  const toFile = file.writable.getWriter();
  let streamError: unknown;
  try {
    for await (const chunk of tar.stdout) {
      await Promise.all([toImport?.write(chunk), toFile.write(chunk)]);
    }
    await toImport?.close();
    await toFile.close(); // closes the file
  } catch (error) {
    streamError = error;
    try {
      tar.kill("SIGKILL");
    } catch {
      // already exited
    }
    await toImport?.abort().catch(() => {});
    await toFile.abort().catch(() => {});
  }
  const tarStatus = await tar.status;
  const tarMessage = (await tarStderr).trim();
  if (importOutput) checkImport(await importOutput, streamError);
  else if (streamError !== undefined) throw streamError;
  if (!tarStatus.success) throw new Error(`tar -C ${rootfs} -c . failed: ${tarMessage}`);
}

/** The bookworm mirror apt uses here (first URIs of a deb822 stanza with Suites bookworm). */
async function debianMirror(): Promise<string> {
  const override = Deno.env.get("SANDBOXER_DEBIAN_MIRROR");
  if (override) return override;
  try {
    const text = await Deno.readTextFile("/etc/apt/sources.list.d/debian.sources");
    for (const stanza of text.split(/\n\s*\n/)) {
      const fields = new Map<string, string>();
      for (const line of stanza.split("\n")) {
        const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
        if (match) fields.set(match[1].toLowerCase(), match[2].trim());
      }
      const types = (fields.get("types") ?? "").split(/\s+/);
      const suites = (fields.get("suites") ?? "").split(/\s+/);
      const uri = (fields.get("uris") ?? "").split(/\s+/)[0];
      if (types.includes("deb") && suites.includes(SUITE) && uri) return uri;
    }
  } catch {
    // fall through
  }
  try {
    const text = await Deno.readTextFile("/etc/apt/sources.list");
    for (const line of text.split("\n")) {
      const words = line.replace(/\[[^\]]*\]/, "").trim().split(/\s+/);
      if (words[0] === "deb" && words[2] === SUITE) return words[1];
    }
  } catch {
    // fall through
  }
  return DEFAULT_MIRROR;
}

// ---------------------------------------------------------------------------------------------
// Minimal tar support: find where an archive's entries end, and write one file entry.

function tarNumber(field: Uint8Array): number {
  if ((field[0] & 0x80) !== 0) { // GNU base-256
    let value = field[0] & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const text = decoder.decode(field).replace(/[\0 ]+$/g, "").trim();
  if (!/^[0-7]*$/.test(text)) throw new CorruptCacheError(`bad tar number "${text}"`);
  return text === "" ? 0 : parseInt(text, 8);
}

function tarChecksumOk(header: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i];
  return sum === tarNumber(header.subarray(148, 156));
}

async function readFull(file: Deno.FsFile, buffer: Uint8Array): Promise<boolean> {
  for (let got = 0; got < buffer.length;) {
    const n = await file.read(buffer.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}

/** Normalised member name: no leading "./" or "/", no trailing "/". */
function tarMemberName(name: string): string {
  return name.replace(/^(\.?\/)+/, "").replace(/\/+$/, "");
}

function tarString(field: Uint8Array): string {
  const nul = field.indexOf(0);
  return decoder.decode(nul === -1 ? field : field.subarray(0, nul));
}

/** The `path` record of a pax extended header, if any. */
function paxPath(data: Uint8Array): string | undefined {
  for (const record of decoder.decode(data).split("\n")) {
    const match = /^\d+ path=(.*)$/s.exec(record);
    if (match) return match[1];
  }
  return undefined;
}

interface TarLayout {
  /** Byte ranges [start, end) to copy: every member except the dropped ones. */
  keep: Array<[number, number]>;
}

/**
 * Walks the headers of an uncompressed tar archive (ustar, GNU or pax, not sparse) and returns the
 * byte ranges of all members except `drop` (with their long-name/pax headers), up to but without
 * the end-of-archive marker. docker import refuses duplicate paths, so a member that is going to
 * be appended must be dropped first.
 */
async function scanTar(file: Deno.FsFile, drop: string): Promise<TarLayout> {
  const header = new Uint8Array(512);
  const keep: Array<[number, number]> = [];
  let keepFrom = 0;
  let memberStart = 0; // first header (long name / pax) of the member being read
  let longName: string | undefined;
  for (let offset = 0;;) {
    await file.seek(offset, Deno.SeekMode.Start);
    if (!(await readFull(file, header))) throw new CorruptCacheError("tarball ends without marker");
    if (header.every((byte) => byte === 0)) {
      if (offset === 0) throw new CorruptCacheError("empty tarball");
      if (offset > keepFrom) keep.push([keepFrom, offset]);
      return { keep };
    }
    if (!tarChecksumOk(header)) throw new CorruptCacheError(`bad tar header at ${offset}`);
    const type = String.fromCharCode(header[156]);
    if (type === "S") throw new CorruptCacheError("sparse tar entries are not supported");
    const size = "123456".includes(type) ? 0 : tarNumber(header.subarray(124, 136));
    const next = offset + 512 + Math.ceil(size / 512) * 512;
    if (type === "L" || type === "x") {
      const data = new Uint8Array(size);
      if (!(await readFull(file, data))) throw new CorruptCacheError("truncated tarball");
      longName = type === "L" ? tarString(data) : paxPath(data) ?? longName;
    } else if (type !== "K" && type !== "g") {
      let name = longName;
      if (name === undefined) {
        name = tarString(header.subarray(0, 100));
        const prefix = tarString(header.subarray(345, 500));
        if (tarString(header.subarray(257, 263)) === "ustar" && prefix !== "") {
          name = `${prefix}/${name}`;
        }
      }
      if (tarMemberName(name) === tarMemberName(drop)) {
        if (memberStart > keepFrom) keep.push([keepFrom, memberStart]);
        keepFrom = next;
      }
      longName = undefined;
      memberStart = next;
    }
    if (type === "g") memberStart = next;
    offset = next;
  }
}

function tarFileEntry(name: string, data: Uint8Array, mode: number, mtime: number): Uint8Array {
  const header = new Uint8Array(512);
  const put = (offset: number, length: number, text: string) =>
    header.set(encoder.encode(text).subarray(0, length), offset);
  const octal = (value: number, length: number) =>
    `${value.toString(8).padStart(length - 1, "0")}\0`;
  if (encoder.encode(name).length > 100) throw new Error(`tar name too long: ${name}`);
  put(0, 100, name);
  put(100, 8, octal(mode, 8));
  put(108, 8, octal(0, 8)); // uid
  put(116, 8, octal(0, 8)); // gid
  put(124, 12, octal(data.length, 12));
  put(136, 12, octal(mtime, 12));
  put(148, 8, "        ");
  put(156, 1, "0"); // regular file
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  put(265, 32, "root");
  put(297, 32, "root");
  let sum = 0;
  for (const byte of header) sum += byte;
  put(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  const entry = new Uint8Array(512 + Math.ceil(data.length / 512) * 512);
  entry.set(header);
  entry.set(data, 512);
  return entry;
}

/** Output of a docker CLI call. */
export interface DockerResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/**
 * Run the docker CLI against a test engine (bounded at 60 s).
 *
 * @param engine The engine.
 * @param args docker arguments.
 * @returns Exit code and output.
 */
export async function dockerCli(engine: TestDocker, ...args: string[]): Promise<DockerResult> {
  const output = await new Deno.Command("docker", {
    args,
    env: engine.env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/**
 * Everything of a compose project that is left: containers, networks and volumes.
 *
 * @param engine The engine.
 * @param project The compose project name.
 * @returns Ids of what is left (empty when the project is gone).
 */
export async function projectLeftovers(engine: TestDocker, project: string): Promise<string[]> {
  const label = `label=com.docker.compose.project=${project}`;
  const left: string[] = [];
  for (const args of [["ps", "-aq"], ["network", "ls", "-q"], ["volume", "ls", "-q"]]) {
    const result = await dockerCli(engine, ...args, "--filter", label);
    if (result.code !== 0) throw new Error(`docker ${args.join(" ")} failed: ${result.stderr}`);
    left.push(...result.stdout.split("\n").filter((line) => line.trim() !== ""));
  }
  return left;
}
