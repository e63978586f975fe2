/**
 * Test hosts that can be killed or cut off: each is a network namespace
 * `sbxf-<random>` joined to the root namespace by a veth pair (root side
 * `10.213.X.Y+1/30`, namespace side `.Y+2`), with a real sshd listening inside
 * it, a workspace root its login user owns (optionally a small tmpfs), a state
 * directory and a profile writer for ext.vm-packer. sandboxer's own ssh2
 * client and rsync's ssh reach it by plain TCP over the veth.
 *
 * Traffic never leaves the machine: the namespace has no default route, and
 * the root namespace gets a `blackhole` route for the /30 (at a high metric)
 * so that while the link is down, packets for the host are dropped instead of
 * following the default route out of the machine.
 *
 * Everything is created here and removed on dispose (even after a failed
 * test); namespaces, veths, routes and mounts left by a killed test process
 * are reaped by the next {@linkcode startNetnsHost} — only ones this harness
 * made, found through their `owner` files.
 *
 * @module
 */

import { denoDir, writeVmPackerProfile } from "../helpers.ts";
import { startSshd, type TestSshd } from "./sshd.ts";

/** Metric of the safety route; any value above the connected route's 0 works. */
const BLACKHOLE_METRIC = 4242;
const DIR_PREFIX = "sbx-netns-";
const NS_PATTERN = /^sbxf-[0-9a-f]{8}$/;

/** A running namespace host. Dispose it (`await using`) to remove everything. */
export interface NetnsHost extends AsyncDisposable {
  /** The namespace name, `sbxf-<8 hex>`. */
  readonly ns: string;
  /** The host's address (namespace side of the veth). */
  readonly address: string;
  /** The root-namespace side of the veth. */
  readonly rootLink: string;
  /** The sshd inside the namespace (kill / restart it to simulate a crash). */
  readonly sshd: TestSshd;
  /** Temp dir (0755) holding profiles, the state dir and the workspace root. */
  readonly dir: string;
  /** The workspace root, owned by the login user (a tmpfs when `tmpfsSize` was given). */
  readonly root: string;
  /** Environment for the CLI: SANDBOXER_HOME, HOME, DENO_DIR. */
  readonly env: Record<string, string>;
  /**
   * Write `<dir>/<name>.yaml` for ext.vm-packer pointing at this host.
   *
   * @param name Profile name.
   * @param extra YAML lines appended at the top level (ttl, setup, …).
   * @param target Extra or replacing fields under `target:`.
   * @returns The file.
   */
  profile(
    name: string,
    extra?: readonly string[],
    target?: Record<string, string | number>,
  ): Promise<string>;
  /**
   * Cut the link: `ip link set veth0 down` on the host's side. The root side
   * loses its carrier, so packets to the host are silently dropped (new
   * connects hang, open connections go quiet) — a pulled cable, not a refusal.
   */
  cut(): Promise<void>;
  /** Bring the link back up. */
  restore(): Promise<void>;
  /**
   * Crash the host's sshd: SIGKILL every process in the namespace at once —
   * the listener, per-connection children and their sessions — so no
   * connection survives, not even one accepted a moment ago. Start it again
   * with `sshd.restart()`.
   */
  killSshd(): Promise<void>;
  /** Number of established TCP connections to the sshd. */
  connections(): Promise<number>;
  /** Limit both directions of the link to `rate` (tc tbf), e.g. "64kbit", to slow steps down. */
  throttle(rate: string): Promise<void>;
  /** Remove the rate limit. */
  unthrottle(): Promise<void>;
  /** Names in the workspace root but `.sbx-seeds` (read directly: the file system is shared). */
  rootEntries(): Promise<string[]>;
}

/** Options for {@linkcode startNetnsHost}. */
export interface NetnsHostOptions {
  /** Mount a tmpfs of this size (e.g. "1m") as the workspace root, for disk-full tests. */
  tmpfsSize?: string;
  /** Extra sshd_config lines (e.g. "MaxStartups 10:30:100"). */
  sshdConfig?: string[];
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function sh(cmd: string, args: readonly string[]): Promise<Result> {
  const out = await new Deno.Command(cmd, { args: [...args], stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

async function ok(cmd: string, args: readonly string[]): Promise<string> {
  const result = await sh(cmd, args);
  if (result.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${result.code}): ${result.stderr}`);
  }
  return result.stdout;
}

/**
 * Why namespace hosts cannot be made here, or undefined when they can.
 * Tests register themselves as ignored with this reason in their name.
 *
 * @returns The reason.
 */
export async function netnsUnavailableReason(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return "network namespaces need Linux";
  if (Deno.uid() !== 0) return "network namespaces need root";
  for (const [tool, args] of [["ip", ["-V"]], ["tc", ["-V"]], ["ps", ["-V"]]] as const) {
    try {
      await sh(tool, args);
    } catch {
      return `${tool} not found (install iproute2 / procps)`;
    }
  }
  try {
    await Deno.stat("/usr/sbin/sshd");
  } catch {
    return "/usr/sbin/sshd not found (install openssh-server)";
  }
  return undefined;
}

function hex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A /30 in `<net>.0.0/16` that no address or route on this machine uses yet (in the root
 * namespace; isolated_host.ts uses another /16, so its links never clash with these).
 *
 * @param net The first two octets, e.g. "10.213".
 * @returns The subnet, its first address (the root side) and its second (the host side).
 */
export async function freeSubnet(
  net = "10.213",
): Promise<{ base: string; rootAddress: string; address: string }> {
  const used = await ok("ip", ["-4", "-o", "addr", "show"]) + await ok("ip", ["-4", "route"]);
  for (let attempt = 0; attempt < 50; attempt++) {
    const [x, y] = crypto.getRandomValues(new Uint8Array(2));
    const quad = (y % 64) * 4;
    const base = `${net}.${x}.${quad}`;
    const prefix = `${net}.${x}.`;
    const clash = [quad, quad + 1, quad + 2, quad + 3].some((n) =>
      new RegExp(`\\b${prefix.replaceAll(".", "\\.")}${n}\\b`).test(used)
    );
    if (!clash) {
      return { base, rootAddress: `${prefix}${quad + 1}`, address: `${prefix}${quad + 2}` };
    }
  }
  throw new Error(`no free /30 in ${net}.0.0/16 for a test namespace`);
}

/**
 * When a live process started (undefined for none, or a zombie: a killed test may linger as one).
 *
 * @param pid The process.
 * @returns Its start time as `ps` prints it.
 */
export async function processStart(pid: number): Promise<string | undefined> {
  const result = await sh("ps", ["-p", String(pid), "-o", "stat=,lstart="]);
  const match = /^\s*(\S+)\s+(.+?)\s*$/.exec(result.stdout);
  return result.code === 0 && match && !match[1].startsWith("Z") ? match[2] : undefined;
}

/** What a host dir records so a later run can undo it if this process dies. */
interface Teardown {
  owner: { pid: number; start: string };
  ns: string;
  rootLink: string;
  blackhole?: string;
  mount?: string;
}

async function undo(teardown: Partial<Teardown>): Promise<void> {
  // Deleting the namespace deletes its veth end and so the whole pair, but does not stop the
  // processes in it (a dead test's sshd): kill those first.
  if (teardown.ns && NS_PATTERN.test(teardown.ns)) {
    const pids = await sh("ip", ["netns", "pids", teardown.ns]);
    for (const pid of pids.stdout.split("\n").filter(Boolean)) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await sh("ip", ["netns", "del", teardown.ns]);
  }
  if (teardown.rootLink && /^sbxf[0-9a-f]{8}$/.test(teardown.rootLink)) {
    await sh("ip", ["link", "del", teardown.rootLink]);
  }
  if (teardown.blackhole) {
    await sh("ip", [
      "route",
      "del",
      "blackhole",
      teardown.blackhole,
      "metric",
      String(BLACKHOLE_METRIC),
    ]);
  }
  if (teardown.mount) await sh("umount", ["-l", teardown.mount]);
}

async function tempBase(): Promise<string> {
  const probe = await Deno.makeTempDir({ prefix: "sbx-probe-" });
  await Deno.remove(probe);
  return probe.slice(0, probe.lastIndexOf("/"));
}

/**
 * Undo hosts whose test process died without disposing them (found through
 * the `teardown.json` in their `sbx-netns-*` temp dir).
 */
export async function reapStaleNetnsHosts(): Promise<void> {
  const base = await tempBase();
  for await (const entry of Deno.readDir(base)) {
    if (!entry.isDirectory || !entry.name.startsWith(DIR_PREFIX)) continue;
    const dir = `${base}/${entry.name}`;
    try {
      const teardown: Teardown = JSON.parse(await Deno.readTextFile(`${dir}/teardown.json`));
      if (await processStart(teardown.owner.pid) === teardown.owner.start) continue;
      await undo(teardown);
      await Deno.remove(dir, { recursive: true });
    } catch {
      // Not ours, still being set up, or another process is reaping it.
    }
  }
}

let reaped: Promise<void> | undefined;

/**
 * Make a namespace host with an sshd inside.
 *
 * @param options tmpfs workspace root, extra sshd settings.
 * @returns The host; dispose it to remove the namespace, veth, route, mount and files.
 */
export async function startNetnsHost(options: NetnsHostOptions = {}): Promise<NetnsHost> {
  await (reaped ??= reapStaleNetnsHosts());
  const id = hex(4);
  const ns = `sbxf-${id}`;
  const rootLink = `sbxf${id}`;
  const dir = await Deno.makeTempDir({ prefix: DIR_PREFIX });
  const teardown: Teardown = {
    owner: { pid: Deno.pid, start: (await processStart(Deno.pid)) ?? "?" },
    ns,
    rootLink,
  };
  const save = () => Deno.writeTextFile(`${dir}/teardown.json`, JSON.stringify(teardown));
  let sshd: TestSshd | undefined;
  try {
    await Deno.chmod(dir, 0o755);
    await save();
    const subnet = await freeSubnet();
    await ok("ip", ["netns", "add", ns]);
    await ok("ip", ["link", "add", rootLink, "type", "veth", "peer", "name", "veth0", "netns", ns]);
    teardown.blackhole = `${subnet.base}/30`;
    await save();
    await ok("ip", [
      "route",
      "add",
      "blackhole",
      teardown.blackhole,
      "metric",
      String(BLACKHOLE_METRIC),
    ]);
    await ok("ip", ["addr", "add", `${subnet.rootAddress}/30`, "dev", rootLink]);
    await ok("ip", ["link", "set", rootLink, "up"]);
    await ok("ip", ["-n", ns, "addr", "add", `${subnet.address}/30`, "dev", "veth0"]);
    await ok("ip", ["-n", ns, "link", "set", "veth0", "up"]);
    await ok("ip", ["-n", ns, "link", "set", "lo", "up"]);

    const root = `${dir}/build`;
    await Deno.mkdir(root);
    if (options.tmpfsSize) {
      // Mounted before sshd starts: `ip netns exec` gives sshd a copy of the mount table.
      await ok("mount", [
        "-t",
        "tmpfs",
        "-o",
        `size=${options.tmpfsSize},mode=0755`,
        "tmpfs",
        root,
      ]);
      teardown.mount = root;
      await save();
    }
    sshd = await startSshd({
      netns: ns,
      listenAddress: subnet.address,
      extraConfig: options.sshdConfig,
    });
    await ok("chown", [sshd.user, root]);
    const env = { SANDBOXER_HOME: `${dir}/state`, HOME: dir, DENO_DIR: await denoDir() };
    const server = sshd;
    const tc = async (args: string[]) => {
      await ok("tc", ["qdisc", ...args.map((a) => a === "DEV" ? rootLink : a)]);
      await ok("ip", [
        "netns",
        "exec",
        ns,
        "tc",
        "qdisc",
        ...args.map((a) => a === "DEV" ? "veth0" : a),
      ]);
    };
    return {
      ns,
      address: subnet.address,
      rootLink,
      sshd,
      dir,
      root,
      env,
      profile(name, extra = [], target = {}) {
        return writeVmPackerProfile(dir, name, {
          target: {
            host: subnet.address,
            port: server.port,
            user: server.user,
            identity_file: server.identityFile,
            known_hosts: server.knownHostsFile,
            ...target,
          },
          root,
          extra,
        });
      },
      cut: async () => void await ok("ip", ["-n", ns, "link", "set", "veth0", "down"]),
      async restore() {
        await ok("ip", ["-n", ns, "link", "set", "veth0", "up"]);
        // ARP probes sent while the link was down are lost: an entry still resolving would
        // fail the next connect with EHOSTUNREACH once its probes run out. Start afresh.
        await ok("ip", ["neigh", "flush", "dev", rootLink]);
      },
      async killSshd() {
        // A child forked between listing and killing would escape one pass: repeat until the
        // namespace is empty.
        for (let round = 0; round < 50; round++) {
          const pids = (await ok("ip", ["netns", "pids", ns])).split("\n").filter(Boolean);
          if (!pids.length) break;
          for (const pid of pids) {
            try {
              Deno.kill(Number(pid), "SIGKILL");
            } catch {
              // Already gone.
            }
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        // Let the harness see its process exit, so restart() starts a fresh one.
        await server.kill();
      },
      async connections() {
        const out = await ok("ip", [
          "netns",
          "exec",
          ns,
          "ss",
          "-Htn",
          "state",
          "established",
          `sport = :${server.port}`,
        ]);
        return out.split("\n").filter(Boolean).length;
      },
      throttle: (rate) =>
        tc([
          "replace",
          "dev",
          "DEV",
          "root",
          "tbf",
          "rate",
          rate,
          "burst",
          "1600",
          "latency",
          "20s",
        ]),
      unthrottle: () => tc(["del", "dev", "DEV", "root"]),
      async rootEntries() {
        const names: string[] = [];
        for await (const entry of Deno.readDir(root)) {
          // Seeds outlive their sandboxes by design (docs/warm-workspaces.md); the warm
          // workspace tests look at them.
          if (entry.name !== ".sbx-seeds") names.push(entry.name);
        }
        return names.sort();
      },
      async [Symbol.asyncDispose]() {
        try {
          await server.stop();
        } finally {
          await undo(teardown);
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        }
      },
    };
  } catch (error) {
    await sshd?.stop().catch(() => {});
    await undo(teardown);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}
