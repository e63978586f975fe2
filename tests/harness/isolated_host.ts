/**
 * A test host that shares nothing with this machine but the kernel: sshd runs chrooted in its own
 * root filesystem (an overlay over the cached debootstrap rootfs of docker.ts), in its own mount,
 * PID and network namespaces, and is reachable only over SSH — from the root namespace through a
 * veth pair, or (with `behind`) only from another isolated host's namespace, as a target behind a
 * jump host is.
 *
 * So a bug that runs mkdir, rm or rsync on THIS machine instead of the host cannot pass: the
 * host's workspace root has the same absolute path as a canary directory that exists only here
 * (`<dir>/build`, holding one file, `CANARY`), and disposing the host fails the test when the
 * canary changed. Tests assert what the host sees: its files through {@linkcode IsolatedHost.path}
 * (the overlay, read from outside) and its processes through {@linkcode IsolatedHost.processes}.
 *
 * Layout of `<dir>` (a temp dir, 0755): `rootfs/` (the host's `/`, an overlay mount), `upper/`
 * and `work/` (the overlay's writable layer), `build/` (the canary), `state/` (SANDBOXER_HOME),
 * keys, known_hosts, profiles, `init.log` and `teardown.json`. Inside the host: login user `sbx`
 * (uid 2000, shell /bin/sh, home /home/sbx), sshd on port 22 logging to /var/log/sbx-sshd.log,
 * and the workspace root `<dir>/build`, owned by `sbx`.
 *
 * A host whose test process died is removed by the next {@linkcode startIsolatedHost} (namespace,
 * links, routes, overlay mount and files), found through its `teardown.json`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { shellQuote } from "../../src/transport/quote.ts";
import {
  type CliResult,
  denoDir,
  exists,
  runProgram,
  runSandboxer,
  type TargetFields,
  writeVmPackerProfile,
} from "../helpers.ts";
import { ensureRootfsTarball } from "./docker/engine.ts";
import { strictSshArgs } from "./sshd.ts";
import { freeSubnet, netnsUnavailableReason, processStart } from "./netns.ts";
import type { ProfileSpec, RecordJson } from "./test_vm.ts";

const DIR_PREFIX = "sbx-iso-";
const NS_PATTERN = /^sbxi-[0-9a-f]{8}$/;
const LINK_PATTERN = /^sbxi[0-9a-f]{8}$/;
/** Isolated hosts' links live in their own /16, apart from netns.ts's 10.213. */
const NET = "10.214";
const BLACKHOLE_METRIC = 4243;
const USER = "sbx";
const UID = 2000;
const HOME = "/home/sbx";
const SSHD_CONFIG = "/etc/ssh/sbx_sshd_config";
const SSHD_LOG = "/var/log/sbx-sshd.log";
const READY_TIMEOUT_MS = 15_000;
const CANARY_TEXT = "This directory exists only on the test machine, never on the test host.\n";

/**
 * What runs as PID 1 of the host, chrooted: /proc, /run and /dev/pts of its own, then sshd in
 * the foreground (it reaps every child, orphans included).
 */
const INIT = `
mount -t proc proc /proc || exit 1
mount -t tmpfs -o mode=0755 tmpfs /run || exit 1
mkdir -p /run/sshd /dev/pts
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts 2>/dev/null
exec /usr/sbin/sshd -D -f ${SSHD_CONFIG} -E ${SSHD_LOG}
`;

/** A running isolated host. Dispose it (`await using`) to remove everything. */
export interface IsolatedHost extends AsyncDisposable {
  /** Its network namespace, `sbxi-<8 hex>`. */
  readonly ns: string;
  /** Its address (what profiles and SSH targets use). */
  readonly host: string;
  /** The SSH port (22: the host has a network of its own). */
  readonly port: number;
  /** Login user. */
  readonly user: string;
  /** The login user's home directory, as the host sees it. */
  readonly homeDir: string;
  /** Private key (on this machine) authorised for `user`. */
  readonly identityFile: string;
  /** known_hosts (on this machine) holding exactly this host's key. */
  readonly knownHostsFile: string;
  /** SHA256 fingerprint of the host key. */
  readonly hostKeyFingerprint: string;
  /** Temp dir on this machine for profiles, state, keys and the host's root filesystem. */
  readonly dir: string;
  /** The host's `/`, seen from this machine. */
  readonly rootfs: string;
  /**
   * The workspace root, as the host sees it. The same path on this machine is the canary: a
   * directory that must keep exactly its one file.
   */
  readonly root: string;
  /** Environment for the CLI: SANDBOXER_HOME, HOME, DENO_DIR. */
  readonly env: Record<string, string>;
  /**
   * Where a path of the host is on this machine (to read or prepare its files from outside).
   *
   * @param path An absolute path as the host sees it.
   * @returns The same file under {@linkcode IsolatedHost.rootfs}.
   */
  path(path: string): string;
  /**
   * Write `<dir>/<name>.yaml` for ext.vm-packer pointing at this host.
   *
   * @returns The file path.
   */
  profile(name: string, spec?: ProfileSpec | string): Promise<string>;
  /** Run the CLI with the host's environment (plus `env`). */
  cli(args: readonly string[], env?: Record<string, string>): Promise<CliResult>;
  /** `show ID --json`, parsed. */
  show(id: string): Promise<RecordJson>;
  /** `list --all --json`, parsed. */
  list(): Promise<RecordJson[]>;
  /** Names in the workspace root on the host, but `.sbx-seeds` (seeds outlive their sandboxes). */
  rootEntries(): Promise<string[]>;
  /** Make a host path (and everything in it) belong to the login user. */
  chown(path: string): Promise<void>;
  /** Run argv on the host as the login user with the system ssh client (from this machine). */
  ssh(argv: readonly string[]): Promise<CliResult>;
  /** Every live process of the host (sshd's listener included), with its environment. */
  processes(): Promise<HostProcess[]>;
  /** Problems with the canary on this machine (none when it is intact). */
  canaryProblems(): Promise<string[]>;
  /** The host's sshd log. */
  log(): Promise<string>;
}

/** A process of an isolated host. */
export interface HostProcess {
  /** Its pid in the root PID namespace. */
  pid: number;
  /** Its command line. */
  args: string;
  /** Its environment, `NAME=value` each. */
  env: string[];
}

/** Options for {@linkcode startIsolatedHost}. */
export interface IsolatedHostOptions {
  /**
   * Reachable only from this host's namespace (a target behind a jump host): no link to the
   * root namespace, and a blackhole route there for its subnet.
   */
  behind?: IsolatedHost;
  /** Programs to delete from the host's `/usr/bin` (e.g. `["rsync"]`). */
  without?: readonly string[];
  /** Extra sshd_config lines. */
  sshdConfig?: readonly string[];
  /** More public key lines to authorise for the login user (e.g. another host's client key). */
  authorize?: readonly string[];
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function hex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Why isolated hosts cannot be made here, or undefined when they can. Tests register themselves
 * as ignored with this reason in their name.
 *
 * @returns The reason.
 */
export async function isolatedHostUnavailableReason(): Promise<string | undefined> {
  const netns = await netnsUnavailableReason();
  if (netns) return netns;
  for (const [tool, args] of [["unshare", ["--version"]], ["chroot", ["--version"]]] as const) {
    try {
      await sh(tool, args);
    } catch {
      return `${tool} not found (install util-linux / coreutils)`;
    }
  }
  // Deno reads /proc only with --allow-all; cat may.
  const filesystems = (await sh("cat", ["/proc/filesystems"])).stdout;
  if (!/\boverlay\b/.test(filesystems)) return "the kernel has no overlay filesystem";
  try {
    await ensureRootfsTarball();
  } catch (error) {
    return `no test rootfs (${error instanceof Error ? error.message.split("\n")[0] : error})`;
  }
  return undefined;
}

/** The cached rootfs, unpacked once next to its tarball: the overlay's read-only layer. */
async function rootfsBase(): Promise<string> {
  const tarball = await ensureRootfsTarball();
  const info = await Deno.stat(tarball);
  // Named after the tarball it came from: a rebuilt tarball gets a fresh base, and an old base
  // is never changed under a host that still uses it.
  const base = tarball.replace(/\.tar$/, `.${info.mtime?.getTime() ?? 0}-${info.size}.d`);
  if (await exists(`${base}/.complete`)) return base;
  const lock = await Deno.open(`${tarball}.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    if (await exists(`${base}/.complete`)) return base;
    const partial = `${base}.tmp-${Deno.pid}`;
    await Deno.remove(partial, { recursive: true }).catch(() => {});
    await Deno.mkdir(partial);
    await ok("tar", ["--numeric-owner", "-C", partial, "-xf", tarball]);
    await Deno.writeTextFile(`${partial}/.complete`, `${tarball}\n`);
    await Deno.remove(base, { recursive: true }).catch(() => {});
    await Deno.rename(partial, base);
    return base;
  } finally {
    lock.close();
  }
}

/** What a host dir records so a later run can undo it if this process dies. */
interface Teardown {
  owner: { pid: number; start: string };
  ns?: string;
  links: string[];
  blackholes: string[];
  mount?: string;
}

async function killNamespace(ns: string): Promise<void> {
  // SIGKILL of the PID namespace's init ends every process in it; repeat for anything forked
  // between listing and killing.
  for (let round = 0; round < 50; round++) {
    const listed = await sh("ip", ["netns", "pids", ns]);
    const pids = listed.stdout.split("\n").filter(Boolean);
    if (listed.code !== 0 || pids.length === 0) return;
    for (const pid of pids) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await sleep(20);
  }
}

async function undo(teardown: Teardown): Promise<void> {
  if (teardown.ns && NS_PATTERN.test(teardown.ns)) {
    await killNamespace(teardown.ns);
    await sh("ip", ["netns", "del", teardown.ns]);
  }
  for (const link of teardown.links) {
    if (LINK_PATTERN.test(link)) await sh("ip", ["link", "del", link]);
  }
  for (const subnet of teardown.blackholes) {
    await sh("ip", ["route", "del", "blackhole", subnet, "metric", String(BLACKHOLE_METRIC)]);
  }
  if (teardown.mount) {
    const result = await sh("umount", [teardown.mount]);
    if (result.code !== 0) await sh("umount", ["-l", teardown.mount]);
  }
}

async function tempBase(): Promise<string> {
  const probe = await Deno.makeTempDir({ prefix: "sbx-probe-" });
  await Deno.remove(probe);
  return probe.slice(0, probe.lastIndexOf("/"));
}

/** Remove hosts whose test process died without disposing them. */
export async function reapStaleIsolatedHosts(): Promise<void> {
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

/** SHA256 fingerprint as `ssh-keygen -l` prints it. */
function fingerprint(publicKeyLine: string): string {
  const blob = publicKeyLine.trim().split(/\s+/)[1];
  const digest = createHash("sha256")
    .update(Uint8Array.from(atob(blob), (c) => c.charCodeAt(0)))
    .digest("base64").replace(/=+$/, "");
  return `SHA256:${digest}`;
}

async function appendFile(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text, { append: true });
}

/**
 * Make an isolated host and start its sshd.
 *
 * @param options A jump host to hide behind, programs to leave out, sshd settings.
 * @returns The host; dispose it to remove everything.
 */
export async function startIsolatedHost(options: IsolatedHostOptions = {}): Promise<IsolatedHost> {
  await (reaped ??= reapStaleIsolatedHosts());
  const base = await rootfsBase();
  const id = hex(4);
  const ns = `sbxi-${id}`;
  const dir = await Deno.makeTempDir({ prefix: DIR_PREFIX });
  const teardown: Teardown = {
    owner: { pid: Deno.pid, start: (await processStart(Deno.pid)) ?? "?" },
    links: [],
    blackholes: [],
  };
  const save = () => Deno.writeTextFile(`${dir}/teardown.json`, JSON.stringify(teardown));
  let child: Deno.ChildProcess | undefined;
  try {
    await Deno.chmod(dir, 0o755);
    await save();

    // The file system: an overlay, so the shared base is never written.
    const rootfs = `${dir}/rootfs`;
    for (const sub of ["rootfs", "upper", "work"]) await Deno.mkdir(`${dir}/${sub}`);
    teardown.mount = rootfs;
    await save();
    await ok("mount", [
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${base},upperdir=${dir}/upper,workdir=${dir}/work`,
      rootfs,
    ]);
    for (const program of options.without ?? []) {
      await Deno.remove(`${rootfs}/usr/bin/${program}`);
    }
    await appendFile(`${rootfs}/etc/passwd`, `${USER}:x:${UID}:${UID}::${HOME}:/bin/sh\n`);
    await appendFile(`${rootfs}/etc/shadow`, `${USER}:*:19000:0:99999:7:::\n`);
    await appendFile(`${rootfs}/etc/group`, `${USER}:x:${UID}:\n`);
    await Deno.mkdir(`${rootfs}${HOME}`, { recursive: true });
    await Deno.chown(`${rootfs}${HOME}`, UID, UID);
    const root = `${dir}/build`;
    await Deno.mkdir(`${rootfs}${root}`, { recursive: true });
    await Deno.chown(`${rootfs}${root}`, UID, UID);
    // The canary: the same path on this machine, with one file nothing may touch.
    await Deno.mkdir(root);
    await Deno.writeTextFile(`${root}/CANARY`, CANARY_TEXT);

    // Keys: the host key lives only in the host, the client key only here.
    await ok("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "sbx-iso-host",
      "-f",
      `${rootfs}/etc/ssh/ssh_host_ed25519_key`,
    ]);
    const identityFile = `${dir}/id_ed25519`;
    await ok("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "sbx-iso-user",
      "-f",
      identityFile,
    ]);
    await Deno.writeTextFile(
      `${rootfs}/etc/ssh/sbx_authorized_keys`,
      [await Deno.readTextFile(`${identityFile}.pub`), ...(options.authorize ?? [])]
        .map((line) => line.trim()).join("\n") + "\n",
    );
    await Deno.chmod(`${rootfs}/etc/ssh/sbx_authorized_keys`, 0o644);
    const hostPublicKey = (await Deno.readTextFile(`${rootfs}/etc/ssh/ssh_host_ed25519_key.pub`))
      .trim().split(/\s+/).slice(0, 2).join(" ");

    // The network: a /30 to the root namespace, or to the jump host's namespace only.
    const subnet = await freeSubnet(NET);
    const link = `sbxi${id}`;
    teardown.ns = ns;
    teardown.links.push(link);
    await save();
    await ok("ip", ["netns", "add", ns]);
    const near = options.behind?.ns;
    if (near) {
      await ok("ip", [
        "link",
        "add",
        link,
        "netns",
        near,
        "type",
        "veth",
        "peer",
        "name",
        "veth0",
        "netns",
        ns,
      ]);
      await ok("ip", ["-n", near, "addr", "add", `${subnet.rootAddress}/30`, "dev", link]);
      await ok("ip", ["-n", near, "link", "set", link, "up"]);
    } else {
      await ok("ip", ["link", "add", link, "type", "veth", "peer", "name", "veth0", "netns", ns]);
      await ok("ip", ["addr", "add", `${subnet.rootAddress}/30`, "dev", link]);
      await ok("ip", ["link", "set", link, "up"]);
    }
    // Without a route of its own the subnet would follow the default route out of the machine
    // (or, behind a jump host, be unreachable only by luck): drop it in the root namespace.
    teardown.blackholes.push(`${subnet.base}/30`);
    await save();
    await ok("ip", [
      "route",
      "add",
      "blackhole",
      `${subnet.base}/30`,
      "metric",
      String(BLACKHOLE_METRIC),
    ]);
    await ok("ip", ["-n", ns, "addr", "add", `${subnet.address}/30`, "dev", "veth0"]);
    await ok("ip", ["-n", ns, "link", "set", "veth0", "up"]);
    await ok("ip", ["-n", ns, "link", "set", "lo", "up"]);

    await Deno.writeTextFile(
      `${rootfs}${SSHD_CONFIG}`,
      [
        "Port 22",
        `ListenAddress ${subnet.address}`,
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PidFile none",
        "AuthorizedKeysFile /etc/ssh/sbx_authorized_keys",
        `AllowUsers ${USER}`,
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        "Subsystem sftp internal-sftp",
        "LogLevel VERBOSE",
        ...(options.sshdConfig ?? []),
      ].join("\n") + "\n",
    );
    const knownHostsFile = `${dir}/known_hosts`;
    await Deno.writeTextFile(knownHostsFile, `${subnet.address} ${hostPublicKey}\n`);

    const initLog = await Deno.open(`${dir}/init.log`, { create: true, append: true });
    child = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns,
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--propagation",
        "private",
        "chroot",
        rootfs,
        "/bin/sh",
        "-c",
        INIT,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const logged = child.stderr.pipeTo(initLog.writable).catch(() => {});
    let exited = false;
    const status = child.status.then(async (s) => {
      exited = true;
      await logged;
      return s;
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const listening = await sh("ip", ["netns", "exec", ns, "ss", "-Hltn", "sport = :22"]);
      if (listening.code === 0 && listening.stdout.trim() !== "") break;
      if (exited || Date.now() > deadline) {
        const s = await Promise.race([status, sleep(0).then(() => undefined)]);
        const log = await Deno.readTextFile(`${dir}/init.log`).catch(() => "") +
          await Deno.readTextFile(`${rootfs}${SSHD_LOG}`).catch(() => "");
        throw new Error(
          `isolated host sshd did not start (${s ? `exit ${s.code}` : "timed out"}):\n${log}`,
        );
      }
      await sleep(20);
    }

    const env = { SANDBOXER_HOME: `${dir}/state`, HOME: dir, DENO_DIR: await denoDir() };
    const path = (p: string) => `${rootfs}${p}`;
    const init = child;
    const host: IsolatedHost = {
      ns,
      host: subnet.address,
      port: 22,
      user: USER,
      homeDir: HOME,
      identityFile,
      knownHostsFile,
      hostKeyFingerprint: fingerprint(hostPublicKey),
      dir,
      rootfs,
      root,
      env,
      path,
      profile(name, specOrExtra = {}) {
        const spec = typeof specOrExtra === "string" ? { extra: [specOrExtra] } : specOrExtra;
        const target: TargetFields = {
          host: subnet.address,
          port: 22,
          user: USER,
          identity_file: identityFile,
          known_hosts: knownHostsFile,
          ...spec.target,
        };
        return writeVmPackerProfile(dir, name, {
          target,
          root: spec.root ?? root,
          extra: spec.extra,
        });
      },
      cli: (args, extra = {}) => runSandboxer(args, { ...env, ...extra }),
      async show(sandbox) {
        const result = await runSandboxer(["show", sandbox, "--json"], env);
        assert.equal(result.code, 0, result.stderr);
        return JSON.parse(result.stdout);
      },
      async list() {
        const result = await runSandboxer(["list", "--all", "--json"], env);
        assert.equal(result.code, 0, result.stderr);
        return JSON.parse(result.stdout);
      },
      async rootEntries() {
        const names: string[] = [];
        for await (const entry of Deno.readDir(path(root))) {
          // Seeds outlive their sandboxes by design (docs/warm-workspaces.md); the warm
          // workspace tests look at them.
          if (entry.name !== ".sbx-seeds") names.push(entry.name);
        }
        return names.sort();
      },
      async chown(p) {
        await ok("chown", ["-hR", `${UID}:${UID}`, path(p)]);
      },
      async ssh(argv) {
        // Behind a jump host, from the jump host's network (its namespace, not its files).
        const via = options.behind ? ["netns", "exec", options.behind.ns, "ssh"] : [];
        const sshArgs = [
          ...strictSshArgs({
            destination: `${USER}@${subnet.address}`,
            identityFile,
            knownHostsFile,
          }),
          // ssh joins its words for the remote shell: quote them with the one quoter.
          shellQuote(argv),
        ];
        return await runProgram(via.length ? "ip" : "ssh", [...via, ...sshArgs]);
      },
      async processes() {
        const listed = await sh("ip", ["netns", "pids", ns]);
        const found: HostProcess[] = [];
        for (const pid of listed.stdout.split("\n").filter(Boolean).map(Number)) {
          // The unshare that started the host is in its network namespace, but not one of its
          // processes.
          if (pid === init.pid) continue;
          const ps = await sh("ps", ["-o", "stat=,args=", "-ww", "-p", String(pid)]);
          const match = /^(\S+)\s+(.*)$/.exec(ps.stdout.trim());
          if (!match || match[1].startsWith("Z")) continue;
          // Deno reads /proc only with --allow-all; cat may.
          const environ = await sh("cat", [`/proc/${pid}/environ`]);
          found.push({ pid, args: match[2], env: environ.stdout.split("\0").filter(Boolean) });
        }
        return found;
      },
      async canaryProblems() {
        const problems: string[] = [];
        const names: string[] = [];
        try {
          for await (const entry of Deno.readDir(root)) names.push(entry.name);
        } catch (error) {
          return [`the canary ${root} is gone (${error})`];
        }
        if (names.join() !== "CANARY") {
          problems.push(`the canary ${root} holds ${JSON.stringify(names.sort())}`);
        }
        const text = await Deno.readTextFile(`${root}/CANARY`).catch(() => undefined);
        if (text !== CANARY_TEXT) problems.push(`${root}/CANARY was changed`);
        return problems;
      },
      log: () => Deno.readTextFile(path(SSHD_LOG)).catch(() => ""),
      async [Symbol.asyncDispose]() {
        const problems = await host.canaryProblems();
        try {
          await killNamespace(ns);
          await status;
        } finally {
          await undo(teardown);
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        }
        // Something ran on this machine what was meant for the host: fail the test that did it.
        if (problems.length > 0) {
          throw new Error(`a local side effect at the host's paths: ${problems.join("; ")}`);
        }
      },
    };
    return host;
  } catch (error) {
    await undo(teardown);
    if (child) await child.status.catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

/**
 * Register a test that needs isolated hosts, or an ignored placeholder naming why it cannot run.
 *
 * @param name Test name.
 * @param fn The test.
 */
export function isolatedTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  if (UNAVAILABLE) Deno.test({ name: `${name} [skipped: ${UNAVAILABLE}]`, ignore: true, fn });
  else Deno.test(name, fn);
}

/** Why isolated hosts cannot run here (checked once per test process), or undefined. */
export const UNAVAILABLE: string | undefined = await isolatedHostUnavailableReason();
