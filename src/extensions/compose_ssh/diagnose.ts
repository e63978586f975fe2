/**
 * Why a compose-ssh service does not answer SSH, in words for the user: from
 * docker's view of its container, its log, and the last refusal.
 *
 * @module
 */

import { errorText, ServiceNotReadyError, SshError } from "../../core/errors.ts";

import type { Logger } from "../../core/types.ts";
import { dockerDaemonName, DockerUnreachableError, PROJECT_LABEL, serviceLogs } from "./compose.ts";
import { type ProjectContainer, projectContainers } from "./project_objects.ts";
import { composeProject, type ComposeSshHandle, dockerEnv, PROJECT_PATTERN } from "./handle.ts";

/** Log lines of the service shown when it does not become ready. */
const LOG_TAIL_LINES = 12;
/** Bound on the `docker ps` that explains a refused SSH connection. */
const REFUSED_PROBE_TIMEOUT_MS = 10_000;

/** Why nothing answers SSH for a recorded sandbox, in words for the user, from docker ps. */
export async function whyRefused(handle: ComposeSshHandle, logger: Logger): Promise<string> {
  const service = `service "${handle.service}" of compose project ${handle.project}`;
  const id = PROJECT_PATTERN.exec(handle.project)?.[1] ?? handle.project;
  const replace = `run "sandboxer destroy ${id}" and create a new sandbox`;
  let containers: ProjectContainer[];
  try {
    containers = await projectContainers(
      dockerEnv(handle.docker_host),
      handle.project,
      handle.service,
      REFUSED_PROBE_TIMEOUT_MS,
    );
  } catch (error) {
    if (error instanceof DockerUnreachableError) {
      return `connection refused: nothing answers SSH for ${service}, and ${
        dockerDaemonName(handle.docker_host)
      } does not answer either (stopped?); start it (e.g. systemctl start docker), then ${replace}`;
    }
    logger.debug(`docker ps for ${handle.project} failed: ${errorText(error)}`);
    return `connection refused: ${service} does not answer SSH on port ${handle.ssh_port}; check its container with "docker ps -a --filter label=${PROJECT_LABEL}=${handle.project}"`;
  }
  if (containers.length === 0) {
    return `connection refused: ${service} has no container any more (removed outside sandboxer); ${replace}`;
  }
  if (!containers.some((c) => c.running)) {
    return `connection refused: the container of ${service} is not running (${
      containers.map((c) => c.status).join(", ")
    }), so nothing answers SSH; ${replace}`;
  }
  return `connection refused: ${service} is running but nothing answers SSH on port ${handle.ssh_port}; check its log ("docker logs ${
    containers.find((c) => c.running)!.id.slice(0, 12)
  }")`;
}

/** The service did not become ready: the error, with the tail of its log. */
export async function notReady(
  handle: ComposeSshHandle,
  problem: string,
  cause: unknown,
): Promise<ServiceNotReadyError> {
  const logs = await serviceLogs(composeProject(handle), handle.service, LOG_TAIL_LINES);
  return new ServiceNotReadyError(handle.project, handle.service, problem, logs, { cause });
}

/** The core of an SSH error message ("connection refused"), for one-line errors. */
export function brief(error: unknown): string {
  if (error === undefined) return "no attempt finished";
  // An SshError's fix names vm-packer's fields (target.port …): keep only its problem.
  if (error instanceof SshError) return error.problem;
  return errorText(error).split(";")[0].trim();
}

/** What to change in the service so its SSH answers, by the last refusal. */
export function readyHint(error: unknown): string {
  if (error instanceof SshError && error.stage === "authenticate") {
    return "the service refuses the key: put $SBX_AUTHORIZED_KEY in the login user's authorized_keys (see docs/compose-ssh.md)";
  }
  return "make the service run sshd on port $SBX_SSH_PORT";
}
