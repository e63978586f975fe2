/**
 * One SSH handshake over npm:ssh2: TCP (or a given tunnel socket), key
 * exchange with the host key checked against known_hosts and the pin before
 * any authentication request is sent, then authentication with the key
 * and/or the agent.
 *
 * @module
 */

import { HostKeyError, SshError, TimeoutError } from "../../core/errors.ts";
import type { Logger } from "../../core/types.ts";
import { loadSsh2, type Ssh2 } from "../../deps/ssh2.ts";
import type { ConnectConfig } from "../../deps/ssh2.ts";
import {
  appendKnownHost,
  fingerprintSha256,
  keyBlobType,
  type KnownHostsEntry,
  knownHostsName,
  knownKeyTypes,
  matchHostKey,
} from "../known_hosts.ts";
import { describe, mapConnectError, preAuthDrop } from "./errors.ts";
import { preferredHostKeyAlgorithms, type VerifiedHostKey } from "./host_key.ts";
import type { SshTarget } from "./types.ts";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";

/** An ssh2 client. */
export type Ssh2Client = InstanceType<Ssh2["Client"]>;

const DEFAULT_KEEPALIVE_INTERVAL_MS = 5_000;

const KEEPALIVE_COUNT_MAX = 3;

/** What {@linkcode handshake} needs, all read or opened beforehand. */
export interface HandshakeInput {
  /** Where and how to connect. */
  target: SshTarget;
  /** The decrypted private key, if any. */
  privateKey: Buffer | undefined;
  /** The entries of `target.knownHostsFile`. */
  known: readonly KnownHostsEntry[];
  /** A tunnel through a jump host, in place of a TCP connection. */
  sock: Duplex | undefined;
  /** Bound on connect, handshake and authentication together. */
  timeoutMs: number;
  /** Aborting it cancels the attempt. */
  signal?: AbortSignal;
  /** Where to log (never secrets). */
  logger?: Logger;
}

/** After this long without a ready connection, the user is told what is being waited for. */
const SLOW_CONNECT_MS = 1000;

/**
 * Connect, verify the host key and authenticate.
 *
 * @param input Target, key, known hosts, socket and limits.
 * @returns The ready client and the host key it verified.
 */
export async function handshake(
  input: HandshakeInput,
): Promise<{ client: Ssh2Client; hostKey: VerifiedHostKey }> {
  const { target, privateKey, known, sock, timeoutMs, signal, logger } = input;
  const where = describe(target);
  const client = new (await loadSsh2()).Client();
  let failure: Error | undefined;
  let hostKey: VerifiedHostKey | undefined;
  let handshakeDone = false;

  // ssh2 calls this during key exchange, before any authentication request is sent: a key
  // refused here means the server never sees the user's key or name.
  const hostVerifier = (key: Buffer, verify: (ok: boolean) => void): void => {
    const blob = new Uint8Array(key);
    const fingerprint = fingerprintSha256(blob);
    let keyType: string;
    try {
      keyType = keyBlobType(blob);
    } catch (error) {
      failure = new SshError(where, "connect", `the server sent a malformed host key`, {
        cause: error,
      });
      return verify(false);
    }
    const offered = { type: keyType, base64: Buffer.from(blob).toString("base64"), fingerprint };
    const check = matchHostKey(known, {
      host: target.host,
      port: target.port,
      keyType,
      keyBlob: blob,
    });
    const name = knownHostsName(target.host, target.port);
    const refuse = (error: Error) => {
      failure = error;
      verify(false);
    };
    if (check.status === "revoked") {
      return refuse(
        new HostKeyError(name, fingerprint, "revoked", target.knownHostsFile, {
          line: check.entryLine,
        }),
      );
    }
    // The pin comes before trust-on-first-use: a key that is not the pinned one is never
    // appended to known_hosts.
    if (target.pinnedHostKey !== undefined && fingerprint !== target.pinnedHostKey) {
      return refuse(
        new HostKeyError(name, fingerprint, "pinned", target.knownHostsFile, {
          pinned: target.pinnedHostKey,
          knownHostsToo: check.status === "match" ? undefined : check.status,
        }),
      );
    }
    if (check.status === "match") {
      hostKey = offered;
      return verify(true);
    }
    if (check.status === "unknown" && target.acceptNewHostKey) {
      appendKnownHost({
        file: target.knownHostsFile,
        host: target.host,
        port: target.port,
        keyType,
        keyBase64: offered.base64,
      })
        .then(() => {
          logger?.warn(
            `Permanently added ${name} (${keyType} ${fingerprint}) to ${target.knownHostsFile}`,
          );
          hostKey = offered;
          verify(true);
        })
        .catch((error) => refuse(error instanceof Error ? error : new Error(String(error))));
      return;
    }
    refuse(new HostKeyError(name, fingerprint, check.status, target.knownHostsFile));
  };

  const config: ConnectConfig = {
    host: target.host,
    port: target.port,
    username: target.user,
    privateKey,
    passphrase: privateKey ? target.passphrase : undefined,
    agent: target.agent,
    sock: sock as ConnectConfig["sock"],
    hostVerifier,
    readyTimeout: timeoutMs,
    keepaliveInterval: target.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS,
    keepaliveCountMax: KEEPALIVE_COUNT_MAX,
    tryKeyboard: false,
    // Offer the key (then the agent) at once: ssh2's default opens with a "none" request
    // that servers refuse, one round trip more per connect (~6-9 ms on loopback here).
    authHandler: [
      ...(privateKey ? ["publickey" as const] : []),
      ...(target.agent !== undefined ? ["agent" as const] : []),
    ],
    algorithms: {
      serverHostKey: preferredHostKeyAlgorithms(
        knownKeyTypes(known, target.host, target.port),
      ) as NonNullable<ConnectConfig["algorithms"]>["serverHostKey"],
    },
  };

  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(slow);
      signal?.removeEventListener("abort", onAbort);
      if (error === undefined) return resolve();
      client.destroy();
      reject(error);
    };
    const onAbort = () => finish(signal?.reason ?? new DOMException("Aborted", "AbortError"));
    const timer = setTimeout(
      () => finish(new TimeoutError(`connect to ${where}`, timeoutMs)),
      timeoutMs,
    );
    // A connect is usually milliseconds; a silent second means a slow or far host, so say so.
    const slow = setTimeout(
      () => logger?.info(`connecting to ${where} (up to ${Math.round(timeoutMs / 1000)} s)…`),
      SLOW_CONNECT_MS,
    );
    signal?.addEventListener("abort", onAbort, { once: true });
    // Nagle's algorithm costs ~150 ms per handshake round trip and per exec here.
    client.on("connect", () => client.setNoDelay(true));
    client.on("handshake", () => {
      handshakeDone = true;
    });
    client.once("ready", () => finish());
    // This listener stays for good: an 'error' event with no listener would throw.
    client.on(
      "error",
      (error: unknown) => finish(failure ?? mapConnectError(error, target, timeoutMs)),
    );
    client.on("close", () => {
      finish(
        failure ??
          (handshakeDone
            ? new SshError(
              where,
              "authenticate",
              "the server closed the connection during authentication",
            )
            : preAuthDrop(target, "closed before the handshake")),
      );
    });
    try {
      client.connect(config);
    } catch (error) {
      finish(mapConnectError(error, target, timeoutMs));
    }
  });
  if (hostKey === undefined) {
    // ssh2 verifies before "ready"; reaching here without a verified key would be a bug.
    client.destroy();
    throw new Error(`connected to ${where} without a verified host key`);
  }
  return { client, hostKey };
}
