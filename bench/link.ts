/**
 * The hosts the benchmark runs against: the loopback sshd, and the same kind
 * of sshd behind a link that looks like a real one (a round-trip time and a
 * rate limit), since loopback hides what users feel over a network.
 *
 * This kernel has no netem, so the link is built from two parts:
 * - **rate**: `tc tbf` on both ends of the veth pair of a network-namespace
 *   host (tests/harness/netns.ts);
 * - **delay**: a userspace TCP relay on 127.0.0.1 that holds every chunk for
 *   half the round-trip time in each direction, in order, before passing it on.
 *
 * Both the plain tools and sandboxer connect through the relay, so they pay
 * the same link.
 *
 * @module
 */

import { startNetnsHost } from "../tests/harness/netns.ts";
import { startTestVm } from "../tests/harness/test_vm.ts";

/** A host to benchmark against: where to connect, and a workspace root the login user owns. */
export interface BenchHost extends AsyncDisposable {
  /** Label for the report ("loopback", "20 ms RTT, 100 Mbit/s"). */
  readonly label: string;
  /** Short key for raw samples ("loopback", "link"). */
  readonly key: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly identityFile: string;
  /** known_hosts holding the server's key under `[host]:port` as clients see it. */
  readonly knownHostsFile: string;
  /** Scratch directory (0755) for profiles and the plain tools' directories. */
  readonly dir: string;
  /** Workspace root owned by `user`. */
  readonly root: string;
  /** Environment for the CLI: SANDBOXER_HOME, HOME, DENO_DIR. */
  readonly env: Record<string, string>;
}

/**
 * The loopback sshd of the test harness.
 *
 * @returns The host; dispose it to stop the server.
 */
export async function loopbackHost(): Promise<BenchHost> {
  const vm = await startTestVm();
  return {
    label: "loopback",
    key: "loopback",
    host: vm.sshd.host,
    port: vm.sshd.port,
    user: vm.sshd.user,
    identityFile: vm.sshd.identityFile,
    knownHostsFile: vm.sshd.knownHostsFile,
    dir: vm.dir,
    root: vm.root,
    env: vm.env,
    [Symbol.asyncDispose]: () => vm[Symbol.asyncDispose](),
  };
}

/** Shape of the emulated link. */
export interface LinkOptions {
  /** Round-trip time added by the relay, in milliseconds. */
  rttMs: number;
  /** Rate of the veth in each direction, in Mbit/s. */
  mbit: number;
}

async function run(cmd: string, args: readonly string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args: [...args], stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/**
 * An sshd in a network namespace behind `tc tbf` and a delaying relay.
 *
 * @param options Round-trip time and rate.
 * @returns The host (connect to its `host`:`port`, the relay); dispose it to remove everything.
 */
export async function slowLinkHost(options: LinkOptions): Promise<BenchHost> {
  const ns = await startNetnsHost();
  let relay: DelayRelay | undefined;
  try {
    // The burst must hold at least one timer tick's worth of bytes at this rate, or tbf
    // cannot reach the rate at all: rate/HZ with HZ as low as 100, plus headroom.
    const burst = String(Math.max(32_000, Math.ceil((options.mbit * 1e6) / 8 / 100) * 2));
    const tbf = ["root", "tbf", "rate", `${options.mbit}mbit`, "burst", burst, "latency", "50ms"];
    await run("tc", ["qdisc", "replace", "dev", ns.rootLink, ...tbf]);
    await run("ip", ["netns", "exec", ns.ns, "tc", "qdisc", "replace", "dev", "veth0", ...tbf]);
    relay = startDelayRelay({ hostname: ns.address, port: ns.sshd.port }, options.rttMs / 2);
    const knownHostsFile = `${ns.dir}/relay_known_hosts`;
    await Deno.writeTextFile(
      knownHostsFile,
      `[127.0.0.1]:${relay.port} ${ns.sshd.hostPublicKeyLine}\n`,
    );
    const stopRelay = relay;
    return {
      label: `${options.rttMs} ms RTT, ${options.mbit} Mbit/s`,
      key: "link",
      host: "127.0.0.1",
      port: relay.port,
      user: ns.sshd.user,
      identityFile: ns.sshd.identityFile,
      knownHostsFile,
      dir: ns.dir,
      root: ns.root,
      env: ns.env,
      async [Symbol.asyncDispose]() {
        stopRelay.close();
        await ns[Symbol.asyncDispose]();
      },
    };
  } catch (error) {
    relay?.close();
    await ns[Symbol.asyncDispose]();
    throw error;
  }
}

/** A running relay. */
export interface DelayRelay {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** Stop listening and close every relayed connection. */
  close(): void;
}

/**
 * Relay TCP connections from 127.0.0.1 to `target`, holding each chunk for
 * `oneWayMs` in each direction. Chunks keep their order; a chunk that arrives
 * while earlier ones wait is due `oneWayMs` after its own arrival, so the
 * delay is added once, not once per queued chunk.
 *
 * @param target Where to connect for each accepted connection.
 * @param oneWayMs Delay per direction.
 * @returns The relay.
 */
export function startDelayRelay(
  target: { hostname: string; port: number },
  oneWayMs: number,
): DelayRelay {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const serve = async (client: Deno.TcpConn) => {
    let server: Deno.TcpConn;
    try {
      server = await Deno.connect({ ...target, transport: "tcp" });
    } catch {
      client.close();
      return;
    }
    for (const conn of [client, server]) {
      conn.setNoDelay(true);
      open.add(conn);
    }
    const closeBoth = () => {
      for (const conn of [client, server]) {
        if (open.delete(conn)) {
          try {
            conn.close();
          } catch { /* already closed */ }
        }
      }
    };
    await Promise.allSettled([
      delayedPipe(client, server, oneWayMs),
      delayedPipe(server, client, oneWayMs),
    ]);
    closeBoth();
  };
  (async () => {
    try {
      for await (const conn of listener) void serve(conn);
    } catch { /* listener closed */ }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      listener.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
      open.clear();
    },
  };
}

/** Copy `from` to `to`, each chunk delivered `delayMs` after it was read; half-closes at EOF. */
async function delayedPipe(from: Deno.TcpConn, to: Deno.TcpConn, delayMs: number): Promise<void> {
  const queue: { due: number; data: Uint8Array | null }[] = [];
  let wake: (() => void) | undefined;
  const push = (data: Uint8Array | null) => {
    queue.push({ due: performance.now() + delayMs, data });
    wake?.();
  };
  const reader = (async () => {
    const buffer = new Uint8Array(256 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        push(buffer.slice(0, n));
      }
    } catch { /* reset: end this direction */ }
    push(null);
  })();
  try {
    for (;;) {
      if (!queue.length) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      const next = queue.shift()!;
      const wait = next.due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (next.data === null) {
        await to.closeWrite().catch(() => {});
        break;
      }
      for (let off = 0; off < next.data.length;) off += await to.write(next.data.subarray(off));
    }
  } catch { /* peer gone */ }
  await reader;
}
