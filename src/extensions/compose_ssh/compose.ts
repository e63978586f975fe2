/**
 * The docker side of `ext.compose-ssh`: finding the compose command, and
 * `up`, `down` and `logs` of one project (what docker holds of it, and the
 * label-based sweep, are in `project_objects.ts`). Every program
 * is run through the one process wrapper with an argv; nothing here builds a
 * shell string.
 *
 * @module
 */

import { ComposeError, MissingProgramError } from "../../core/errors.ts";
import { run, type RunResult } from "../../process/run.ts";
import type { Logger } from "../../core/types.ts";

/** Label docker compose (v1 and v2) puts on every container, network and volume of a project. */
export const PROJECT_LABEL = "com.docker.compose.project";
/** Label docker compose puts on each service's containers. */
export const SERVICE_LABEL = "com.docker.compose.service";

/** How long `up` may take: image pulls and builds can be slow, a hung engine must not hang us. */
const UP_TIMEOUT_MS = 15 * 60_000;
/** How long `down` and the sweep may take. */
export const DOWN_TIMEOUT_MS = 5 * 60_000;
/** How long a query (`ps`, `logs`, `version`) may take. */
const QUERY_TIMEOUT_MS = 60_000;
/**
 * Seconds `down` gives containers to stop before SIGKILL. The sandbox and its
 * volumes are being deleted, so a long graceful shutdown buys nothing, and a
 * service whose PID 1 ignores SIGTERM would otherwise hold `down` for 10 s.
 */
const STOP_TIMEOUT_SECONDS = 3;
/** How many of a failed command's last lines an error carries. */
const ERROR_LINES = 6;
/** Bound on the `docker version` probe that explains a failure. */
const PROBE_TIMEOUT_MS = 20_000;
/**
 * What the docker CLI says when the engine does not answer: "Cannot connect to the Docker daemon
 * at unix:///var/run/docker.sock. Is the docker daemon running?" (unix socket) or "error during
 * connect: …" (tcp, Windows pipes). Where it says it differs between versions: Debian 12's
 * docker.io 20.10 prints it on stdout for some commands (`docker info` then says only "errors
 * pretty printing info" on stderr), docker 28 on stderr, so both streams are searched.
 */
const UNREACHABLE_PATTERN =
  /Cannot connect to the Docker daemon|Is the docker daemon running\?|error during connect/i;

/**
 * The Docker engine a compose project lives on does not answer: dockerd is stopped, or
 * DOCKER_HOST points at the wrong place. The project and its containers are not gone: they come
 * back (stopped) with the engine, so the sandbox's record must be kept.
 *
 * @example
 * ```ts
 * import { DockerUnreachableError } from "./compose.ts";
 * const error = new DockerUnreachableError(
 *   "sbx-a1",
 *   "unix:///run/docker.sock",
 *   "cannot be removed: the Docker daemon at unix:///run/docker.sock does not answer",
 * );
 * console.log(error.code); // "COMPOSE"
 * ```
 */
export class DockerUnreachableError extends ComposeError {
  /** DOCKER_HOST of the engine, or null for docker's default socket. */
  readonly dockerHost: string | null;
  /**
   * Create it.
   *
   * @param project The compose project name.
   * @param dockerHost DOCKER_HOST of the engine, or null for docker's default.
   * @param problem What failed and how to fix it.
   * @param options Standard error options.
   */
  constructor(
    project: string,
    dockerHost: string | null,
    problem: string,
    options?: ErrorOptions,
  ) {
    super(project, problem, [], options);
    this.dockerHost = dockerHost;
  }
}

/**
 * How an error names the engine: `the Docker daemon at <DOCKER_HOST>`.
 *
 * @param dockerHost DOCKER_HOST, or null/undefined for docker's default socket.
 * @returns The words.
 */
export function dockerDaemonName(dockerHost: string | null | undefined): string {
  return dockerHost ? `the Docker daemon at ${dockerHost}` : "the Docker daemon (default socket)";
}

/**
 * Whether the engine answers `docker version`; used when a compose command failed, because
 * compose's own words for an unreachable engine differ between versions (v1 may print a Python
 * traceback).
 *
 * @param env Environment for docker (`DOCKER_HOST`).
 * @returns True when the engine answers, or when that cannot be told (no docker CLI, a hang).
 */
export async function dockerAnswers(env: Record<string, string>): Promise<boolean> {
  try {
    const result = await run(["docker", "version", "--format", "{{.Server.Version}}"], {
      env,
      allowFailure: true,
      timeoutMs: PROBE_TIMEOUT_MS,
    });
    return result.code === 0 || !UNREACHABLE_PATTERN.test(`${result.stderr}\n${result.stdout}`);
  } catch {
    return true;
  }
}

/** One compose project as every command needs it. */
export interface ComposeProject {
  /** The compose program: `["docker", "compose"]` (v2 plugin) or `["docker-compose"]` (v1). */
  command: readonly string[];
  /** Project name, `sbx-<id>`. */
  project: string;
  /** Absolute path of the compose file. */
  file: string;
  /** Directory relative paths in the file resolve against; compose's default when absent. */
  projectDirectory?: string;
  /** Variables the file interpolates (`SBX_SSH_PORT`, …), plus `DOCKER_HOST` when recorded. */
  env: Record<string, string>;
  /** What the user edits to fix the file, when it is not `file` itself (`compose.inline of …`). */
  origin?: string;
}

/** Options shared by the commands that may run long. */
export interface ComposeRunOptions {
  /** Aborting it stops the command. */
  signal?: AbortSignal;
  /** Receives compose's progress lines at debug level. */
  logger?: Logger;
}

/**
 * The compose command that works here: the v2 plugin (`docker compose`) when
 * `docker compose version` succeeds, else `docker-compose` (v1).
 *
 * @param env Environment for the probe (`DOCKER_HOST`).
 * @param signal Abort signal.
 * @returns The argv prefix.
 * @throws {MissingProgramError} when neither compose runs here.
 */
export async function detectComposeCommand(
  env: Record<string, string>,
  signal?: AbortSignal,
): Promise<string[]> {
  try {
    const probe = await run(["docker", "compose", "version"], {
      env,
      signal,
      allowFailure: true,
      timeoutMs: QUERY_TIMEOUT_MS,
    });
    if (probe.code === 0) return ["docker", "compose"];
  } catch (error) {
    // No docker CLI at all: docker-compose v1 may still be installed on its own.
    if (!(error instanceof MissingProgramError)) throw error;
  }
  // Only now, when a compose profile is used, is a missing compose worth a word: one line,
  // before anything is made, instead of a failure halfway through create.
  try {
    await run(["docker-compose", "--version"], {
      env,
      signal,
      allowFailure: true,
      timeoutMs: QUERY_TIMEOUT_MS,
    });
  } catch (error) {
    if (!(error instanceof MissingProgramError)) throw error;
    throw new MissingProgramError("docker-compose", {
      cause: error,
      needed: 'ext.compose-ssh needs it, or the "docker compose" plugin, and the docker CLI',
      packages: "docker.io docker-compose",
    });
  }
  return ["docker-compose"];
}

/**
 * The argv of a compose subcommand for a project.
 *
 * @param project The project.
 * @param args The subcommand and its arguments.
 * @returns The full argv.
 *
 * @example
 * ```ts
 * import { composeArgv } from "./compose.ts";
 * const argv = composeArgv(
 *   { command: ["docker-compose"], project: "sbx-a1", file: "/p/c.yaml", env: {} },
 *   ["up", "-d"],
 * );
 * console.log(argv.join(" ")); // docker-compose -p sbx-a1 -f /p/c.yaml up -d
 * ```
 */
export function composeArgv(
  project: ComposeProject,
  args: readonly string[],
): [string, ...string[]] {
  const [program, ...rest] = project.command;
  const argv: [string, ...string[]] = [program, ...rest, "-p", project.project, "-f", project.file];
  if (project.projectDirectory !== undefined) {
    argv.push("--project-directory", project.projectDirectory);
  }
  argv.push(...args);
  return argv;
}

/**
 * `compose up -d`: create and start the project's services.
 *
 * @param project The project.
 * @param options Abort signal and logger.
 * @throws {ComposeError} with compose's own last lines when it fails.
 */
export async function composeUp(
  project: ComposeProject,
  options: ComposeRunOptions = {},
): Promise<void> {
  const argv = composeArgv(project, ["up", "-d"]);
  const result = await runCompose(argv, project, UP_TIMEOUT_MS, options);
  if (result.code !== 0) {
    if (!(await dockerAnswers(project.env))) {
      const host = project.env.DOCKER_HOST ?? null;
      throw new DockerUnreachableError(
        project.project,
        host,
        `could not start: ${
          dockerDaemonName(host)
        } does not answer; start it (e.g. systemctl start docker) or point DOCKER_HOST at a running engine, then create the sandbox again`,
      );
    }
    const command = project.command.join(" ");
    throw new ComposeError(
      project.project,
      `could not start (${command} up exited with ${result.code}); ${
        project.origin === undefined
          ? `fix ${project.file} ("${command} -f ${project.file} config" checks it) or what it names`
          : `fix ${project.origin} or what it names`
      }`,
      lastLines(`${result.stdout}\n${result.stderr}`, ERROR_LINES),
    );
  }
}

/**
 * `compose down -v --remove-orphans`: stop and remove the project's
 * containers, networks and volumes.
 *
 * @param project The project.
 * @param options Logger (no signal: teardown must finish).
 * @returns Compose's last lines when it failed, or undefined on success.
 */
export async function composeDown(
  project: ComposeProject,
  options: ComposeRunOptions = {},
): Promise<string[] | undefined> {
  const argv = composeArgv(project, [
    "down",
    "-v",
    "--remove-orphans",
    "--timeout",
    String(STOP_TIMEOUT_SECONDS),
  ]);
  const result = await runCompose(argv, project, DOWN_TIMEOUT_MS, options);
  return result.code === 0
    ? undefined
    : lastLines(`${result.stdout}\n${result.stderr}`, ERROR_LINES);
}

/**
 * The last log lines of a service (compose merges stdout and stderr in order).
 *
 * @param project The project.
 * @param service The service.
 * @param lines How many lines.
 * @returns The lines, oldest first, without compose's `name | ` prefix; empty when unavailable.
 */
export async function serviceLogs(
  project: ComposeProject,
  service: string,
  lines: number,
): Promise<string[]> {
  try {
    const result = await run(
      composeArgv(project, ["logs", "--no-color", `--tail=${lines}`, service]),
      { env: project.env, allowFailure: true, timeoutMs: QUERY_TIMEOUT_MS },
    );
    if (result.code !== 0) return [];
    const logLines = result.stdout.split("\n")
      // v1 announces "Attaching to <container>" before the logs themselves.
      .filter((line) => !line.startsWith("Attaching to "))
      .map(stripLogPrefix);
    return lastLines(logLines.join("\n"), lines);
  } catch {
    // Logs only decorate an error that is already being reported.
    return [];
  }
}

/**
 * The last `count` non-empty lines of `text`, trimmed and each cut to 300
 * characters, oldest first.
 *
 * @param text The text.
 * @param count How many lines.
 * @returns The lines.
 *
 * @example
 * ```ts
 * import { lastLines } from "./compose.ts";
 * console.log(lastLines("a\n\nb\nc\n", 2)); // ["b", "c"]
 * ```
 */
export function lastLines(text: string, count: number): string[] {
  return text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== "")
    .slice(-count).map((line) => (line.length > 300 ? `${line.slice(0, 299)}…` : line));
}

/** compose prefixes each log line with `<container> | `; the service is named in the error already. */
function stripLogPrefix(line: string): string {
  const match = /^\S+\s+\|\s?(.*)$/.exec(line);
  return match ? match[1] : line;
}

async function runCompose(
  argv: [string, ...string[]],
  project: ComposeProject,
  timeoutMs: number,
  options: ComposeRunOptions,
): Promise<RunResult> {
  const decoder = new TextDecoder();
  const log = (chunk: Uint8Array) => {
    for (const line of lastLines(decoder.decode(chunk), 1000)) options.logger?.debug(line);
  };
  options.logger?.debug(`$ ${argv.join(" ")}`);
  return await run(argv, {
    // docker-compose v1 gives up on any one engine request after 60 s (COMPOSE_HTTP_TIMEOUT):
    // on a loaded host with the vfs driver, creating a container takes longer. Our own timeout
    // bounds the whole command, so the client may wait as long; the profile's value still wins.
    env: { COMPOSE_HTTP_TIMEOUT: String(Math.ceil(timeoutMs / 1000)), ...project.env },
    signal: options.signal,
    timeoutMs,
    allowFailure: true,
    onStdout: log,
    onStderr: log,
  });
}

/** Run docker for a project; an unreachable engine or a failure becomes a typed error. */
export async function runDocker(
  argv: [string, ...string[]],
  env: Record<string, string>,
  project: string,
  what: string,
  timeoutMs: number = DOWN_TIMEOUT_MS,
): Promise<RunResult> {
  const result = await run(argv, { env, allowFailure: true, timeoutMs });
  if (result.code !== 0 && UNREACHABLE_PATTERN.test(`${result.stderr}\n${result.stdout}`)) {
    const host = env.DOCKER_HOST ?? null;
    throw new DockerUnreachableError(
      project,
      host,
      `cannot ${what}: ${
        dockerDaemonName(host)
      } does not answer; start it (e.g. systemctl start docker) and try again`,
    );
  }
  if (result.code !== 0) {
    throw new ComposeError(
      project,
      `cannot ${what} (docker ${
        argv[1]
      } exited with ${result.code}); check that the Docker engine answers ("docker info") and DOCKER_HOST points at the one the sandbox was made on`,
      lastLines(result.stderr, ERROR_LINES),
    );
  }
  return result;
}
