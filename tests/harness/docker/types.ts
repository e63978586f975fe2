/**
 * The types shared by the Docker engine harness's modules.
 *
 * @module
 */

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

export interface DockerResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}
