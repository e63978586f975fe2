/**
 * `deno task soak`: the pool soak (issue 15 item 1), not part of `deno test`. Four sshd hosts,
 * each in its own network namespace (tests/harness/netns.ts), form a pool with capacity 8 each;
 * 64 creates with `--wait` run at once — each through its own `Manager` (its own SSH
 * connections, as 64 sandboxer processes would have) sharing one state directory — then each
 * destroys its sandbox. Every setup measures, on its host and under flock, how many workspaces
 * the host holds (tests/harness/pool_hosts.ts).
 *
 * Passes when: never more than 8 workspaces on a host at once, all 64 creates and destroys
 * succeed, and no lease or waiter is left on any host. Needs root, iproute2 and openssh-server;
 * prints one line per check and exits 1 on any failure.
 *
 * Options (environment): SOAK_CREATES (default 64), SOAK_HOSTS (4), SOAK_CAPACITY (8).
 *
 * @module
 */

import { Manager } from "../mod.ts";
import { errorText } from "../src/core/errors.ts";
import { type NetnsHost, netnsUnavailableReason, startNetnsHost } from "../tests/harness/netns.ts";
import {
  leasesLeft,
  MEASURE_SETUP,
  measured,
  writePoolProfile,
} from "../tests/harness/pool_hosts.ts";

const CREATES = Number(Deno.env.get("SOAK_CREATES") ?? 64);
const HOSTS = Number(Deno.env.get("SOAK_HOSTS") ?? 4);
const CAPACITY = Number(Deno.env.get("SOAK_CAPACITY") ?? 8);
/** Each create may queue this long: (creates / slots) rounds of a few seconds each, with room. */
const WAIT_SECONDS = 900;

/** One line on stdout (this is a tool, not the SDK). */
function say(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(`${line}\n`));
}

async function main(): Promise<number> {
  const why = await netnsUnavailableReason();
  if (why) {
    say(`soak: cannot run: ${why}`);
    return 1;
  }
  const hosts: NetnsHost[] = [];
  try {
    for (let i = 0; i < HOSTS; i++) {
      // Many creates connect at once: let sshd take them all.
      hosts.push(await startNetnsHost({ sshdConfig: ["MaxStartups 200:30:400"] }));
    }
    const stateDir = `${hosts[0].dir}/soak-state`;
    const profile = await writePoolProfile(
      hosts[0].dir,
      "soak",
      hosts.map((h) => ({
        host: h.address,
        port: h.sshd.port,
        user: h.sshd.user,
        identityFile: h.sshd.identityFile,
        knownHostsFile: h.sshd.knownHostsFile,
        capacity: CAPACITY,
        root: h.root,
      })),
      ["setup:", `  - ${JSON.stringify(MEASURE_SETUP)}`],
    );
    say(`soak: ${CREATES} creates with --wait on ${HOSTS} hosts × ${CAPACITY} slots`);
    const started = performance.now();
    const failures: string[] = [];
    await Promise.all(Array.from({ length: CREATES }, async (_, n) => {
      const id = `soak-${n}`;
      await using manager = await Manager.open({ stateDir });
      try {
        await manager.create({ profile, name: id, waitSeconds: WAIT_SECONDS });
      } catch (error) {
        failures.push(`create ${id}: ${errorText(error).split("\n")[0]}`);
        return;
      }
      try {
        await manager.destroy(id);
      } catch (error) {
        failures.push(`destroy ${id}: ${errorText(error).split("\n")[0]}`);
      }
    }));
    say(`soak: done in ${Math.round((performance.now() - started) / 1000)}s`);
    let ok = failures.length === 0;
    for (const failure of failures) say(`✗ ${failure}`);
    say(`${ok ? "✓" : "✗"} ${CREATES - failures.length}/${CREATES} created and destroyed`);
    let measurements = 0;
    for (const host of hosts) {
      const { max, count } = await measured(host.root);
      measurements += count;
      const fine = max <= CAPACITY;
      ok &&= fine;
      say(
        `${
          fine ? "✓" : "✗"
        } ${host.address}: at most ${max} workspaces at once (capacity ${CAPACITY})`,
      );
      const left = await leasesLeft(host.root);
      ok &&= left.length === 0;
      say(
        `${left.length ? "✗" : "✓"} ${host.address}: ${left.length} leases or waiters left ${
          left.join(" ")
        }`,
      );
    }
    const complete = measurements === 2 * CREATES;
    ok &&= complete;
    say(`${complete ? "✓" : "✗"} ${measurements} measurements (2 per create)`);
    return ok ? 0 : 1;
  } finally {
    for (const host of hosts) await Promise.resolve(host[Symbol.asyncDispose]()).catch(() => {});
  }
}

if (import.meta.main) Deno.exitCode = await main();
