/**
 * A "build VM" for tests: a real OpenSSH sshd on
 * loopback, a workspace root its login user owns, a private state directory,
 * and helpers to write profiles and run the real CLI (the exact flags of
 * `deno task sandboxer`) against it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startSshd, type StartSshdOptions, type TestSshd } from "./sshd.ts";
import {
  type CliResult,
  denoDir,
  runSandboxer,
  type TargetFields,
  writeVmPackerProfile,
} from "../helpers.ts";

/** What {@linkcode TestVm.profile} writes. */
export interface ProfileSpec {
  /** Fields under `target:`, merged over the defaults that reach the sshd. */
  target?: TargetFields;
  /** `workspace.root`; default the fixture's root. */
  root?: string;
  /** More YAML lines at the top level (e.g. `setup:`, `sync:`); a plain string is such lines. */
  extra?: string[];
}

/** One sandbox record as `show --json` prints it (the fields the tests read). */
export interface RecordJson {
  id: string;
  status: string;
  step: string | null;
  error: string | null;
  workspace: string | null;
  handle: Record<string, unknown> | null;
  expires_at: string | null;
}

/** A running sshd plus everything a CLI test needs around it. */
export interface TestVm extends AsyncDisposable {
  /** The server. */
  readonly sshd: TestSshd;
  /** A temp dir (0755) for profiles, state and scratch files; removed at the end. */
  readonly dir: string;
  /** The workspace root on the "VM", owned by the login user. */
  readonly root: string;
  /** Environment for the CLI: SANDBOXER_HOME, HOME, DENO_DIR. */
  readonly env: Record<string, string>;
  /**
   * Write `<dir>/<name>.yaml` for ext.vm-packer.
   *
   * @returns The file path.
   */
  profile(name: string, spec?: ProfileSpec | string): Promise<string>;
  /** Run the CLI with the fixture's environment (plus `env`). */
  cli(args: readonly string[], env?: Record<string, string>): Promise<CliResult>;
  /** `show ID --json`, parsed. */
  show(id: string): Promise<RecordJson>;
  /** `list --all --json`, parsed. */
  list(): Promise<RecordJson[]>;
  /**
   * Names in the workspace root but `.sbx-seeds` (the host side, read directly: sshd runs on
   * this machine).
   */
  rootEntries(): Promise<string[]>;
  /** Make `path` (and everything in it) belong to the login user. */
  chown(path: string): Promise<void>;
}

/**
 * Start an sshd and set up a root, state dir and environment around it.
 *
 * @param options Passed to `startSshd()`.
 * @returns The fixture; dispose it with `await using`.
 */
export async function startTestVm(options: StartSshdOptions = {}): Promise<TestVm> {
  const dir = await Deno.makeTempDir({ prefix: "sbx-vm-" });
  // Deno.makeTempDir gives 0700: the login user must reach the root inside it.
  await Deno.chmod(dir, 0o755);
  let sshd: TestSshd;
  try {
    sshd = await startSshd(options);
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  const root = `${dir}/build`;
  await Deno.mkdir(root);
  const chown = async (path: string) => {
    const out = await new Deno.Command("chown", { args: ["-hR", sshd.user, path] }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  };
  await chown(root);
  const env = { SANDBOXER_HOME: `${dir}/state`, HOME: dir, DENO_DIR: await denoDir() };

  const fixture: TestVm = {
    sshd,
    dir,
    root,
    env,
    profile(name, specOrExtra = {}) {
      const spec = typeof specOrExtra === "string" ? { extra: [specOrExtra] } : specOrExtra;
      const target: TargetFields = {
        host: sshd.host,
        port: sshd.port,
        user: sshd.user,
        identity_file: sshd.identityFile,
        known_hosts: sshd.knownHostsFile,
        ...spec.target,
      };
      return writeVmPackerProfile(dir, name, {
        target,
        root: spec.root ?? root,
        extra: spec.extra,
      });
    },
    cli: (args, extra = {}) => runSandboxer(args, { ...env, ...extra }),
    async show(id) {
      const result = await runSandboxer(["show", id, "--json"], env);
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
      for await (const entry of Deno.readDir(root)) {
        // Seeds outlive their sandboxes by design (docs/warm-workspaces.md); the warm
        // workspace tests look at them.
        if (entry.name !== ".sbx-seeds") names.push(entry.name);
      }
      return names.sort();
    },
    chown,
    async [Symbol.asyncDispose]() {
      try {
        await sshd.stop();
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  };
  return fixture;
}

/**
 * Create a sandbox and return its record, failing the test on any error.
 *
 * @param vm The fixture (a TestVm, or anything with its `cli`, such as an isolated host).
 * @param args Arguments after `create` (at least `--profile`).
 * @returns The `ready` record.
 */
export async function createOk(
  vm: Pick<TestVm, "cli">,
  args: readonly string[],
): Promise<RecordJson> {
  const result = await vm.cli(["create", ...args, "--json"]);
  assert.equal(result.code, 0, `create failed: ${result.stderr}`);
  const record: RecordJson = JSON.parse(result.stdout);
  assert.equal(record.status, "ready");
  return record;
}

/**
 * Files the first sync sent into sandbox `id` (by tar into an empty
 * workspace, else rsync), read from its transcript (`logs ID`).
 *
 * @param vm Anything that runs the CLI with its environment.
 * @param id The sandbox.
 * @returns The count.
 */
export async function filesSent(vm: Pick<TestVm, "cli">, id: string): Promise<number> {
  const result = await vm.cli(["logs", id]);
  assert.equal(result.code, 0, result.stderr);
  const match = /by (?:rsync|tar): (\d+) files sent/.exec(result.stdout);
  assert.ok(match, `no sync line in the transcript of ${id}:\n${result.stdout}`);
  return Number(match[1]);
}

/**
 * Every file, directory and symlink under `dir`, with kind, mode and content
 * (files) or target (symlinks); symlinks are never followed.
 *
 * @param dir The directory.
 * @param options `skip`: relative paths to list without content (the marker).
 * @returns Relative path → description, sorted; `"."` describes `dir` itself.
 */
export async function snapshotTree(
  dir: string,
  options: { skip?: readonly string[] } = {},
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const mode = (info: Deno.FileInfo) => ((info.mode ?? 0) & 0o7777).toString(8);
  out["."] = `dir ${mode(await Deno.lstat(dir))}`;
  const walk = async (rel: string) => {
    for await (const entry of Deno.readDir(rel === "" ? dir : `${dir}/${rel}`)) {
      const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
      const full = `${dir}/${path}`;
      const info = await Deno.lstat(full);
      if (info.isSymlink) {
        out[path] = `symlink -> ${await Deno.readLink(full)}`;
      } else if (info.isDirectory) {
        out[path] = `dir ${mode(info)}`;
        await walk(path);
      } else if (!info.isFile) {
        // A FIFO or device: reading it could block.
        out[path] = `special ${mode(info)}`;
      } else if (options.skip?.includes(path)) {
        out[path] = "file (not compared)";
      } else {
        const data = await Deno.readFile(full);
        const digest = await crypto.subtle.digest("SHA-256", data);
        const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0"));
        out[path] = `file ${mode(info)} ${data.byteLength} ${hex.join("").slice(0, 16)}`;
      }
    }
  };
  await walk("");
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a < b ? -1 : 1));
}
