/**
 * Mapping ssh2 connection failures to typed errors, and telling retryable pre-auth drops apart.
 *
 * @module
 */

import { errorCode } from "../../core/fs.ts";
import { errorText, SshError, TimeoutError } from "../../core/errors.ts";
import { mapPermissionError } from "../../core/permissions.ts";
import type { SshTarget } from "./types.ts";

const preAuthDrops = new WeakSet<object>();

/**
 * Whether an error from {@linkcode connectSsh} is a connection dropped before
 * authentication (sshd `MaxStartups`, a reset) and so worth retrying. Host
 * key, authentication, timeout and permission errors never are.
 *
 * @param error Anything caught.
 * @returns True for a retryable pre-auth drop.
 */
export function isPreAuthDrop(error: unknown): boolean {
  return typeof error === "object" && error !== null && preAuthDrops.has(error);
}

/** The target as messages name it: `user@host:port`. */
export function describe(target: Pick<SshTarget, "user" | "host" | "port">): string {
  return `${target.user}@${target.host}:${target.port}`;
}

function errorLevel(error: unknown): string | undefined {
  const level = (error as { level?: unknown } | null)?.level;
  return typeof level === "string" ? level : undefined;
}

export function isNotCapable(error: unknown): boolean {
  return error instanceof Deno.errors.NotCapable ||
    (error instanceof Error && error.name === "NotCapable");
}

/**
 * A connection the server dropped before the SSH handshake (sshd's
 * `MaxStartups`), marked so that {@linkcode isPreAuthDrop} retries it — the
 * one tracker for ssh2's connections and rsync's own ssh alike.
 *
 * @param target Where it was going.
 * @param detail What the client saw.
 * @param cause The underlying error.
 * @returns The error.
 */
export function preAuthDrop(
  target: Pick<SshTarget, "user" | "host" | "port">,
  detail: string,
  cause?: unknown,
): SshError {
  const error = new SshError(
    describe(target),
    "connect",
    `the server dropped the connection before the SSH handshake (${detail})`,
    { cause, fix: "it may be at its MaxStartups limit, so retry shortly" },
  );
  preAuthDrops.add(error);
  return error;
}

/** Turn an ssh2 connection failure into one of our typed errors. */
export function mapConnectError(error: unknown, target: SshTarget, timeoutMs: number): Error {
  const where = describe(target);
  const code = errorCode(error);
  const message = errorText(error);
  if (isNotCapable(error)) {
    const level = errorLevel(error);
    if (level === "agent" && target.agent) {
      return mapPermissionError(
        error,
        "read/write",
        target.agent,
        `--allow-read=${target.agent} --allow-write=${target.agent}`,
      ) as Error;
    }
    const net = `${target.host}:${target.port}`;
    return mapPermissionError(error, "net", net) as Error;
  }
  switch (code) {
    case "ECONNREFUSED":
      return new SshError(
        where,
        "connect",
        "connection refused",
        {
          cause: error,
          fix: `check target.host and target.port, and that sshd listens on port ${target.port}`,
        },
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new SshError(
        where,
        "connect",
        `host name ${JSON.stringify(target.host)} does not resolve`,
        { cause: error, fix: "check target.host" },
      );
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new SshError(
        where,
        "connect",
        `host unreachable (${code})`,
        { cause: error, fix: "check the address, routes and VPN" },
      );
    case "ETIMEDOUT":
      return new TimeoutError(`connect to ${where}`, timeoutMs);
    case "ECONNRESET":
    case "EPIPE":
      return preAuthDrop(target, code, error);
  }
  const level = errorLevel(error);
  if (level === "client-timeout") return new TimeoutError(`connect to ${where}`, timeoutMs);
  if (level === "client-authentication") {
    return new SshError(
      where,
      "authenticate",
      "the server refused every key offered",
      {
        cause: error,
        fix:
          "check target.user and target.identity_file, or that the key is in the server's authorized_keys",
      },
    );
  }
  if (level === "agent") {
    return new SshError(
      where,
      "authenticate",
      `ssh-agent at ${target.agent} failed (${message})`,
      { cause: error, fix: "check that the agent runs and SSH_AUTH_SOCK points at it" },
    );
  }
  if (
    /Connection lost before handshake|kex_exchange_identification|Connection reset/i.test(message)
  ) {
    return preAuthDrop(target, message, error);
  }
  return new SshError(
    where,
    "connect",
    message,
    { cause: error, fix: "check the target settings and the server's sshd log" },
  );
}
