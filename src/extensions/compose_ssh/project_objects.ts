/**
 * What docker holds of one compose project, found by its labels: the
 * containers (with their state), networks and volumes, and the sweep that
 * removes them when `compose down` cannot.
 *
 * @module
 */

import { DOWN_TIMEOUT_MS, PROJECT_LABEL, runDocker, SERVICE_LABEL } from "./compose.ts";

/** A container of a project, from `docker ps -a`. */
export interface ProjectContainer {
  /** Container id. */
  id: string;
  /** The compose service it belongs to. */
  service: string;
  /** docker's status text, such as `Up 3 seconds` or `Exited (64) 2 seconds ago`. */
  status: string;
  /** Whether it is running (or restarting), judged from `status`. */
  running: boolean;
}

/**
 * The containers of a project (optionally of one service), stopped ones included.
 *
 * @param dockerEnv Environment for docker (`DOCKER_HOST`).
 * @param project Project name.
 * @param service Only this service's containers.
 * @param timeoutMs Time limit (default 5 minutes).
 * @returns The containers.
 * @throws {DockerUnreachableError} when the engine does not answer.
 * @throws {ComposeError} when docker cannot list them.
 * @throws {TimeoutError} when docker takes longer than `timeoutMs`.
 */
export async function projectContainers(
  dockerEnv: Record<string, string>,
  project: string,
  service?: string,
  timeoutMs: number = DOWN_TIMEOUT_MS,
): Promise<ProjectContainer[]> {
  const filters = ["--filter", `label=${PROJECT_LABEL}=${project}`];
  if (service !== undefined) filters.push("--filter", `label=${SERVICE_LABEL}=${service}`);
  const result = await runDocker(
    ["docker", "ps", "-a", "--no-trunc", ...filters, "--format", PS_FORMAT],
    dockerEnv,
    project,
    "list its containers",
    timeoutMs,
  );
  return parsePs(result.stdout);
}

const PS_FORMAT = `{{.ID}}\t{{.Label "${SERVICE_LABEL}"}}\t{{.Status}}`;

/**
 * Parse `docker ps --format` output of {@linkcode PS_FORMAT}.
 *
 * @param text The output.
 * @returns The containers.
 */
export function parsePs(text: string): ProjectContainer[] {
  return text.split("\n").filter((line) => line.trim() !== "").map((line) => {
    const [id, service = "", status = ""] = line.split("\t");
    return { id, service, status, running: /^(Up|Restarting)\b/.test(status) };
  });
}

/** What still carries a project's label. */
export interface ProjectObjects {
  /** Its containers, stopped ones included. */
  containers: ProjectContainer[];
  /** Ids of its networks. */
  networks: string[];
  /** Names of its volumes. */
  volumes: string[];
}

/**
 * Everything labelled with the project: containers, networks and volumes.
 *
 * @param dockerEnv Environment for docker (`DOCKER_HOST`).
 * @param project Project name.
 * @returns The objects; all empty when the project is gone.
 * @throws {DockerUnreachableError} when the engine does not answer.
 * @throws {ComposeError} when docker cannot list them.
 */
export async function projectObjects(
  dockerEnv: Record<string, string>,
  project: string,
): Promise<ProjectObjects> {
  const label = `label=${PROJECT_LABEL}=${project}`;
  const list = async (kind: "network" | "volume") =>
    (await runDocker(
      ["docker", kind, "ls", "-q", "--filter", label],
      dockerEnv,
      project,
      `list its ${kind}s`,
    )).stdout.split("\n").map((id) => id.trim()).filter((id) => id !== "");
  const [containers, networks, volumes] = await Promise.all([
    projectContainers(dockerEnv, project),
    list("network"),
    list("volume"),
  ]);
  return { containers, networks, volumes };
}

/**
 * Remove whatever still carries the project's label: containers, then
 * networks, then volumes. Used after `compose down`, which cannot run when the
 * compose file is gone or broken, so that `destroy` works from the handle alone.
 *
 * @param dockerEnv Environment for docker (`DOCKER_HOST`).
 * @param project Project name.
 * @returns How many objects were removed.
 * @throws {DockerUnreachableError} when the engine does not answer.
 * @throws {ComposeError} when docker cannot list or remove them.
 */
export async function sweepProject(
  dockerEnv: Record<string, string>,
  project: string,
): Promise<number> {
  const { containers, networks, volumes } = await projectObjects(dockerEnv, project);
  // Containers first: a network or volume in use cannot be removed.
  if (containers.length > 0) {
    const ids = containers.map((c) => c.id);
    await runDocker(["docker", "rm", "-f", "-v", ...ids], dockerEnv, project, "remove containers");
  }
  if (networks.length > 0) {
    await runDocker(
      ["docker", "network", "rm", ...networks],
      dockerEnv,
      project,
      "remove networks",
    );
  }
  if (volumes.length > 0) {
    await runDocker(
      ["docker", "volume", "rm", "-f", ...volumes],
      dockerEnv,
      project,
      "remove volumes",
    );
  }
  const removed = containers.length + networks.length + volumes.length;
  return removed;
}
