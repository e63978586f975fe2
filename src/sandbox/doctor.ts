/**
 * `sandboxer doctor`: check, before the first create, everything a profile's sandboxes need, and
 * say for each failure what to do. Each check is one line; a failed step skips the ones that need
 * it rather than piling up follow-on failures.
 *
 * @module
 */

import { errorText, HostKeyError } from "../core/errors.ts";
import { run } from "../process/run.ts";
import { connectSsh } from "../transport/ssh/connection.ts";
import type { SshConnection } from "../transport/ssh/connection.ts";
import type { FixedTarget } from "../extensions/base.ts";
import type { Profile } from "../config/types.ts";
import type { Manager } from "./manager.ts";
import { forgetSandbox } from "./forget.ts";
import { poolHostCheck } from "./doctor_pool.ts";
import { doctorBoot } from "./doctor_boot.ts";
import type { VmPackerConfig } from "../extensions/vm_packer/config.ts";
import type { DoctorCheck } from "./doctor_check.ts";

export type { DoctorCheck } from "./doctor_check.ts";

/** Options for {@linkcode doctor}. */
export interface DoctorOptions {
  /** Trust an unknown host key and add it to known_hosts (as create would). */
  acceptNewHostKey?: boolean;
  /** Aborting stops the checks. */
  signal?: AbortSignal;
  /** Called with each check as it finishes. */
  onCheck?: (check: DoctorCheck) => void;
}

/** How long the bare TCP probe waits: a host that does not answer in this long is down for us. */
const TCP_TIMEOUT_MS = 10_000;

/**
 * `sh -c WRITABLE_ROOT sh ROOT`: exit 3 when ROOT is not a directory, 4 when a scratch directory
 * cannot be made in it. The scratch directory is the only thing made, and the only thing removed.
 */
const WRITABLE_ROOT = '[ -d "$1" ] || exit 3; d=$(mktemp -d "$1/.sbx-doctor-XXXXXX") || exit 4; ' +
  'rmdir -- "$d"';

/**
 * Run every check on a profile.
 *
 * @param manager The manager.
 * @param profileName Profile name or file path.
 * @param options Host key policy, abort signal, progress.
 * @returns The checks, in order.
 */
export async function doctor(
  manager: Manager,
  profileName: string,
  options: DoctorOptions = {},
): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const report = (check: DoctorCheck) => {
    checks.push(check);
    options.onCheck?.(check);
    return check.ok === true;
  };
  let profile: Profile;
  let target: FixedTarget | undefined;
  try {
    ({ profile, target } = await manager.fixedTarget(
      profileName,
      options.acceptNewHostKey ?? false,
    ));
  } catch (error) {
    report({
      ok: false,
      line: `profile ${profileName} is invalid: ${errorText(error)}`,
      fix: "correct the field named above",
    });
    return checks;
  }
  report({ ok: true, line: `profile ${profile.name} validates (${profile.file})` });
  if (!target && profile.extension === "ext.vm-packer") {
    // A throwaway VM booted on this machine: its programs, accelerator, state and image.
    const { config } = await manager.resolveProfile(profileName);
    if ((config as VmPackerConfig).mode === "boot") {
      await doctorBoot(manager, profileName, config as VmPackerConfig, report, options.signal);
      return checks;
    }
  }
  if (!target) {
    report({
      ok: undefined,
      line:
        `${profile.extension} has no fixed SSH server to check (its server is made per sandbox): host, host key, login, workspace root and setup are not checked`,
    });
    return checks;
  }
  if (target.pool) {
    const single = { tcp: tcpCheck, root: rootCheck };
    for (const host of target.pool) report(await poolHostCheck(host, single, options.signal));
    return checks;
  }
  const { host, port, user } = target.target;
  if (!report(await tcpCheck(host, port))) return checks;
  let connection: SshConnection;
  try {
    connection = await connectSsh(target.target, { signal: options.signal });
  } catch (error) {
    if (error instanceof HostKeyError) {
      report({
        ok: false,
        line: `host key of ${host}:${port} is not accepted: ${error.message}`,
        fix: error.reason === "unknown"
          ? `compare the fingerprint with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on it), then rerun with --accept-new-host-key to add it to ${target.target.knownHostsFile}`
          : `find out why the key changed before trusting it; see ${target.target.knownHostsFile}`,
      });
    } else {
      report({ ok: true, line: `host key of ${host}:${port} is known` });
      report({
        ok: false,
        line: `login as ${user} on ${host}:${port} failed: ${errorText(error)}`,
        fix:
          "check target.user, target.identity_file and the key's entry in ~/.ssh/authorized_keys on the host",
      });
    }
    return checks;
  }
  try {
    report({
      ok: true,
      line: `host key of ${host}:${port} is known (${connection.hostKeyFingerprint})`,
    });
    report({ ok: true, line: `login as ${user} on ${host}:${port} works` });
    const rootOk = report(await rootCheck(connection, target.root, options.signal));
    report(await rsyncCheck(connection, host, options.signal));
    if (profile.setup.length && rootOk) {
      report(await setupCheck(manager, profile, options.signal));
    }
  } finally {
    await connection.close();
  }
  return checks;
}

async function tcpCheck(host: string, port: number): Promise<DoctorCheck> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const conn = await Promise.race([
      Deno.connect({ hostname: host, port }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer in ${TCP_TIMEOUT_MS / 1000}s`)),
          TCP_TIMEOUT_MS,
        );
      }),
    ]);
    conn.close();
    return { ok: true, line: `${host}:${port} is reachable (TCP)` };
  } catch (error) {
    return {
      ok: false,
      line: `${host}:${port} is not reachable (TCP): ${errorText(error).split("\n")[0]}`,
      fix: "check target.host and target.port, that the host is up and that sshd listens there",
    };
  } finally {
    clearTimeout(timer);
  }
}

async function rootCheck(
  connection: SshConnection,
  root: string,
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const result = await connection.run(["sh", "-c", WRITABLE_ROOT, "sh", root], { signal });
  if (result.code === 0) return { ok: true, line: `workspace root ${root} exists and is writable` };
  const missing = result.code === 3;
  return {
    ok: false,
    line: `workspace root ${root} ${missing ? "does not exist" : "is not writable"}${
      missing ? "" : `: ${result.stderr.trim().split("\n").at(-1) ?? ""}`
    }`,
    fix: missing
      ? `create it on the host (mkdir -p ${root}) or correct workspace.root`
      : "give the login user write access to it (chown or chmod on the host) or correct workspace.root",
  };
}

async function rsyncCheck(
  connection: SshConnection,
  host: string,
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const local = await run(["rsync", "--version"], { allowFailure: true, signal })
    .then((r) => r.code === 0, () => false);
  const remote =
    (await connection.run(["sh", "-c", 'command -v "$1" >/dev/null 2>&1', "sh", "rsync"], {
      signal,
    })).code === 0;
  if (local && remote) return { ok: true, line: `rsync is installed here and on ${host}` };
  const missing = [local ? undefined : "this machine", remote ? undefined : host]
    .filter(Boolean).join(" and ");
  return {
    ok: false,
    line: `rsync is missing on ${missing}: sync falls back to SFTP (slower, no deltas)`,
    fix: `install rsync on ${missing}`,
  };
}

async function setupCheck(
  manager: Manager,
  profile: Profile,
  signal?: AbortSignal,
): Promise<DoctorCheck> {
  const name = `doctor-${crypto.randomUUID().slice(0, 8)}`;
  let id: string | undefined;
  let check: DoctorCheck;
  const commands = `${profile.setup.length} command${profile.setup.length === 1 ? "" : "s"}`;
  try {
    id = (await manager.create({
      profile: profile.file,
      name,
      signal,
      onRecorded: (r) => id = r.id,
    })).id;
    check = { ok: true, line: `setup (${commands}) runs in a scratch sandbox ${name}` };
  } catch (error) {
    check = {
      ok: false,
      line: `setup failed in a scratch sandbox ${name}: ${errorText(error).split("\n")[0]}`,
      fix: "fix the failing setup command in the profile (the line above names it)",
    };
  }
  if (id === undefined) return check;
  try {
    // A scratch sandbox leaves nothing behind: neither its workspace nor its record.
    if ((await manager.destroy(id)).status === "destroyed") await forgetSandbox(manager, id);
  } catch (error) {
    return {
      ok: false,
      line: `${check.line}; the scratch sandbox ${id} could not be destroyed: ${
        errorText(error).split("\n")[0]
      }`,
      fix: `sandboxer destroy ${id}${check.fix ? `; and ${check.fix}` : ""}`,
    };
  }
  return check;
}
