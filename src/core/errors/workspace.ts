/**
 * Errors inside a sandbox: its workspace, setup commands, compose services, ports.
 *
 * @module
 */

import { SandboxerError } from "./codes.ts";

/**
 * A remote workspace operation was refused or failed (bad root, workspace
 * already there, a path that would leave the workspace).
 *
 * @example
 * ```ts
 * import { WorkspaceError } from "@sandboxer/sandboxer/errors";
 * console.log(new WorkspaceError("/", "is the filesystem root").code); // "WORKSPACE"
 * ```
 */
export class WorkspaceError extends SandboxerError {
  /** The workspace path concerned. */
  readonly path: string;
  /** The problem alone. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param path The workspace path concerned.
   * @param problem What is wrong and how to fix it.
   */
  constructor(path: string, problem: string) {
    super("WORKSPACE", `Workspace ${path} ${problem}`);
    this.path = path;
    this.problem = problem;
  }
}

/**
 * The sandbox's workspace is no longer on the host: it was removed there (or
 * while the command ran), or its path now holds another sandbox of the same
 * name. Nothing was written: sandboxer never recreates a workspace.
 *
 * @example
 * ```ts
 * import { WorkspaceGoneError } from "@sandboxer/sandboxer/errors";
 * console.log(new WorkspaceGoneError("/build/sbx-1", "is gone").code); // "WORKSPACE_GONE"
 * ```
 */
export class WorkspaceGoneError extends SandboxerError {
  /** The workspace path concerned. */
  readonly path: string;
  /** The problem alone. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param path The workspace path concerned.
   * @param problem What happened and how to go on.
   * @param options Standard error options (`cause`).
   */
  constructor(path: string, problem: string, options?: ErrorOptions) {
    super("WORKSPACE_GONE", `Workspace ${path} ${problem}`, options);
    this.path = path;
    this.problem = problem;
  }
}

/**
 * A profile `setup` command exited non-zero; the sandbox is left `failed`
 * with its handle so `destroy` can clean it.
 *
 * @example
 * ```ts
 * import { SetupFailedError } from "@sandboxer/sandboxer/errors";
 * console.log(new SetupFailedError("ghc --version", 127).exitCode); // 127
 * ```
 */
export class SetupFailedError extends SandboxerError {
  /** The setup command that failed. */
  readonly command: string;
  /** Text from its output that explains it (may be empty). */
  readonly hint: string;
  /** Exit code of the failed command. */
  readonly exitCode: number;
  /**
   * Create it.
   *
   * @param command The setup command.
   * @param exitCode Its exit code.
   * @param hint Extra text from the command's output that explains it.
   */
  constructor(command: string, exitCode: number, hint = "") {
    super(
      "SETUP_FAILED",
      `Setup command ${JSON.stringify(command)} failed with exit code ${exitCode}${
        hint ? `: ${hint}` : ""
      }; fix the profile's setup or the host, then destroy this sandbox and create a new one`,
    );
    this.command = command;
    this.hint = hint;
    this.exitCode = exitCode;
  }
}

/**
 * A `docker compose` (or `docker-compose`) or `docker` command failed: a
 * broken compose file, an image that cannot be pulled, an engine that does
 * not answer. The message carries compose's own last lines.
 *
 * @example
 * ```ts
 * import { ComposeError } from "@sandboxer/sandboxer/errors";
 * const error = new ComposeError("sbx-a1", "could not start", ["Unsupported config option"]);
 * console.log(error.message); // Compose project sbx-a1 could not start: Unsupported config option
 * ```
 */
export class ComposeError extends SandboxerError {
  /** The compose project name (`sbx-<id>`). */
  readonly project: string;
  /** The last lines compose or docker printed, oldest first. */
  readonly output: readonly string[];
  /**
   * Create it.
   *
   * @param project The compose project name.
   * @param problem What failed and how to fix it.
   * @param output The command's last lines, appended to the message after ": ".
   * @param options Standard error options.
   */
  constructor(
    project: string,
    problem: string,
    output: readonly string[] = [],
    options?: ErrorOptions,
  ) {
    super(
      "COMPOSE",
      `Compose project ${project} ${problem}${output.length ? `: ${output.join(" | ")}` : ""}`,
      options,
    );
    this.project = project;
    this.output = output;
  }
}

/**
 * A compose service did not become reachable over SSH: it stopped, or did not
 * answer within `ready_timeout`. The message ends with the service's last log
 * lines.
 *
 * @example
 * ```ts
 * import { ServiceNotReadyError } from "@sandboxer/sandboxer/errors";
 * const error = new ServiceNotReadyError("sbx-a1", "sshd", "did not answer", ["booting"]);
 * console.log(error.logTail); // ["booting"]
 * ```
 */
export class ServiceNotReadyError extends SandboxerError {
  /** The compose project name (`sbx-<id>`). */
  readonly project: string;
  /** The service that was waited for. */
  readonly service: string;
  /** The service's last log lines, oldest first. */
  readonly logTail: readonly string[];
  /**
   * Create it.
   *
   * @param project The compose project name.
   * @param service The service name.
   * @param problem What happened and how to fix it.
   * @param logTail The service's last log lines.
   * @param options Standard error options.
   */
  constructor(
    project: string,
    service: string,
    problem: string,
    logTail: readonly string[],
    options?: ErrorOptions,
  ) {
    super(
      "SERVICE_NOT_READY",
      `Service "${service}" of compose project ${project} ${problem}; ${
        logTail.length
          ? `its last log lines: ${logTail.join(" | ")}`
          : "it logged nothing (see docker logs)"
      }`,
      options,
    );
    this.project = project;
    this.service = service;
    this.logTail = logTail;
  }
}

/**
 * The local port registry cannot do what was asked: a bad
 * `SANDBOXER_PORT_RANGE`, every port of the range leased or taken, a name
 * that is not registered, a port leased to something else.
 *
 * @example
 * ```ts
 * import { PortError } from "@sandboxer/sandboxer/errors";
 * console.log(new PortError("haskell-1", "is not registered").code); // "PORT"
 * ```
 */
export class PortError extends SandboxerError {
  /**
   * Create it.
   *
   * @param subject The port, range or name concerned.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options (`cause`).
   */
  constructor(subject: string, problem: string, options?: ErrorOptions) {
    super("PORT", `Port registry: ${subject} ${problem}`, options);
  }
}
