/**
 * A "build VM" for tests: a real sshd on loopback plus a workspace root the
 * login user owns, a state dir, and a profile for ext.vm-packer pointing at
 * it. Everything lives in one temp dir removed on dispose.
 *
 * @module
 */

import { denoDir } from "../helpers.ts";
import { startSshd, type StartSshdOptions, type TestSshd } from "./sshd.ts";

/** A running test VM. */
export interface TestVm extends AsyncDisposable {
  /** The sshd. */
  readonly sshd: TestSshd;
  /** Temp dir holding everything. */
  readonly dir: string;
  /** The workspace root on the "VM" (owned by the login user). */
  readonly root: string;
  /** Environment for the CLI: state dir, HOME, the Deno cache. */
  readonly env: Record<string, string>;
  /**
   * Write a vm-packer profile for this VM.
   *
   * @param name Profile name.
   * @param extra YAML lines appended (setup, sync, ttl, …).
   * @returns The profile file.
   */
  profile(name: string, extra?: string): Promise<string>;
}

/**
 * Start a test VM.
 *
 * @param options Options for the sshd.
 * @returns The VM; dispose it with `await using`.
 */
export async function startTestVm(options: StartSshdOptions = {}): Promise<TestVm> {
  const dir = await Deno.makeTempDir({ prefix: "sbx-vm-" });
  await Deno.chmod(dir, 0o755);
  const sshd = await startSshd(options);
  const root = `${dir}/build`;
  await Deno.mkdir(root);
  await new Deno.Command("chown", { args: [sshd.user, root] }).output();
  const env = { SANDBOXER_HOME: `${dir}/state`, HOME: dir, DENO_DIR: await denoDir() };
  return {
    sshd,
    dir,
    root,
    env,
    async profile(name: string, extra = "") {
      const file = `${dir}/${name}.yaml`;
      await Deno.writeTextFile(
        file,
        [
          `id: profile.${name}`,
          "extension: ext.vm-packer",
          "target:",
          `  host: ${sshd.host}`,
          `  port: ${sshd.port}`,
          `  user: ${sshd.user}`,
          `  identity_file: ${sshd.identityFile}`,
          `  known_hosts: ${sshd.knownHostsFile}`,
          "workspace:",
          `  root: ${root}`,
          extra,
        ].join("\n") + "\n",
      );
      return file;
    },
    async [Symbol.asyncDispose]() {
      await sshd.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
