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
 * @module
 */

import { ensureSshImage, SSH_IMAGE } from "./image.ts";
import { rootfsCacheFile } from "./cache.ts";
import type { DockerResult, TestDocker } from "./types.ts";
import {
  childPath,
  delay,
  describeFailure,
  errorMessage,
  isFile,
  note,
  processesMentioning,
  removeIfExists,
  run,
  tail,
  unmountUnder,
  which,
} from "./util.ts";

export type { DockerResult, TestDocker };
export { ensureSshImage, processesMentioning };
export { ensureRootfsTarball } from "./cache.ts";

const ENGINE_DIR_PARENT = "/tmp"; // short: unix socket paths must stay under 108 bytes
const ENGINE_DIR_PREFIX = "sbx-docker-";
const DOCKERD_READY_TIMEOUT_MS = 60_000;
const DOCKERD_STOP_TIMEOUT_MS = 20_000;

interface MissingTools {
  packages: string[];
  tools: string[];
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
