/**
 * The port registry: local TCP ports for VMs' SSH servers, leased per user
 * from a range (`SANDBOXER_PORT_RANGE`, default 12222-12299).
 *
 * A lease is one file, `<stateDir>/ports/<port>.json`, put in place with
 * `link(2)` from a complete temporary file: link fails when the name exists,
 * so two sandboxer processes can never lease the same port, and a reader never
 * sees half a lease. A lease belongs either to a sandbox (`kind: "sandbox"`,
 * released at destroy, reaped by `gc` once its record is gone) or to a
 * long-lived VM registered by name (`kind: "vm"`, e.g. a build VM behind a
 * reverse tunnel, released only by `ports release`).
 *
 * Nothing here stops a process or touches anything outside `ports/`.
 *
 * @module
 */

import { PortError } from "../errors.ts";

/** The range used when `SANDBOXER_PORT_RANGE` is unset. */
export const DEFAULT_PORT_RANGE: PortRange = { first: 12222, last: 12299 };

/** An inclusive range of TCP ports. */
export interface PortRange {
  /** First port. */
  first: number;
  /** Last port (inclusive). */
  last: number;
}

/** One leased port. */
export interface PortLease {
  /** The port. */
  port: number;
  /** `sandbox`: leased to a sandbox id; `vm`: a VM registered by name. */
  kind: "sandbox" | "vm";
  /** The sandbox id or the registered VM's name. */
  name: string;
  /** The sandbox's creation nonce (empty for registered VMs). */
  nonce: string;
  /** Process id that leased it. */
  pid: number;
  /** When, as an ISO date. */
  created_at: string;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/**
 * Parse `SANDBOXER_PORT_RANGE` (`FIRST-LAST`).
 *
 * @param text The variable's value, or undefined for the default.
 * @returns The range.
 * @throws {PortError} when it is not two ports in order.
 *
 * @example
 * ```ts
 * import { parsePortRange } from "./registry.ts";
 * console.log(parsePortRange("20000-20009")); // { first: 20000, last: 20009 }
 * ```
 */
export function parsePortRange(text: string | undefined): PortRange {
  if (text === undefined || text.trim() === "") return DEFAULT_PORT_RANGE;
  const match = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const first = Number(match?.[1]);
  const last = Number(match?.[2]);
  if (!match || first < 1024 || last > 65535 || first > last) {
    throw new PortError(
      `range ${JSON.stringify(text)}`,
      "is not valid; set SANDBOXER_PORT_RANGE to FIRST-LAST with 1024 <= FIRST <= LAST <= 65535 (e.g. 12222-12299)",
    );
  }
  return { first, last };
}

/**
 * Whether nothing listens on `127.0.0.1:port` now (a listen succeeds).
 *
 * @param port The port.
 * @returns True when it could be bound.
 */
export function portIsFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.PermissionDenied) {
      return false;
    }
    throw error;
  }
}

/** Options for {@linkcode PortRegistry}. */
export interface PortRegistryOptions {
  /** The range to allocate from. Default {@linkcode DEFAULT_PORT_RANGE}. */
  range?: PortRange;
  /** Whether a port is free to bind; default {@linkcode portIsFree}. */
  isFree?: (port: number) => boolean;
}

/**
 * Leases of local ports, shared by every sandboxer process of a user (they
 * share the state directory).
 *
 * @example
 * ```ts ignore
 * import { PortRegistry } from "./registry.ts";
 * const ports = new PortRegistry("/home/me/.local/state/sandboxer");
 * const lease = await ports.allocate("a1", "5f0c…");
 * await ports.release("a1", "5f0c…");
 * ```
 */
export class PortRegistry {
  /** `<stateDir>/ports`. */
  readonly dir: string;
  /** The range sandboxes' ports come from. */
  readonly range: PortRange;
  #isFree: (port: number) => boolean;

  /**
   * Create it.
   *
   * @param stateDir sandboxer's state directory.
   * @param options Range and the free-port check.
   */
  constructor(stateDir: string, options: PortRegistryOptions = {}) {
    this.dir = `${stateDir}/ports`;
    this.range = options.range ?? DEFAULT_PORT_RANGE;
    this.#isFree = options.isFree ?? portIsFree;
  }

  /**
   * Lease a free port of the range to sandbox `id`. Ports leased to anyone,
   * and ports something else listens on, are skipped. A lease this sandbox
   * already holds with the same nonce is returned again.
   *
   * @param id The sandbox id.
   * @param nonce The sandbox's creation nonce.
   * @returns The lease.
   * @throws {PortError} when every port of the range is leased or taken.
   */
  async allocate(id: string, nonce: string): Promise<PortLease> {
    checkName(id);
    const mine = (await this.list()).find((l) =>
      l.kind === "sandbox" && l.name === id && l.nonce === nonce
    );
    if (mine) return mine;
    let taken = 0;
    for (let port = this.range.first; port <= this.range.last; port++) {
      if (await this.get(port)) continue;
      if (!this.#isFree(port)) {
        taken++;
        continue;
      }
      const lease = await this.#put({ port, kind: "sandbox", name: id, nonce });
      if (lease) return lease;
    }
    throw new PortError(
      `range ${this.range.first}-${this.range.last}`,
      `has no free port (${taken} taken by other programs, the rest leased; see "sandboxer ports"); run "sandboxer gc", release registered VMs you no longer use, or widen SANDBOXER_PORT_RANGE`,
    );
  }

  /**
   * Record a long-lived VM by name: `port` when given (any port, inside the
   * range or not; something may already listen there, such as its reverse
   * tunnel), else a free port of the range.
   *
   * @param name The VM's name (`[a-z0-9][a-z0-9._-]*`).
   * @param port The port, or undefined to pick one.
   * @returns The lease.
   * @throws {PortError} when the name is registered already or the port is leased.
   */
  async register(name: string, port?: number): Promise<PortLease> {
    checkName(name);
    const existing = (await this.list()).find((l) => l.kind === "vm" && l.name === name);
    if (existing) {
      throw new PortError(
        `name ${name}`,
        `is registered already, on port ${existing.port}; release it first ("sandboxer ports release ${name}")`,
      );
    }
    if (port === undefined) {
      for (let p = this.range.first; p <= this.range.last; p++) {
        if (await this.get(p) || !this.#isFree(p)) continue;
        const lease = await this.#put({ port: p, kind: "vm", name, nonce: "" });
        if (lease) return lease;
      }
      throw new PortError(
        `range ${this.range.first}-${this.range.last}`,
        "has no free port; give the port (sandboxer ports register NAME PORT)",
      );
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new PortError(`port ${port}`, "is not a TCP port; give 1-65535");
    }
    const lease = await this.#put({ port, kind: "vm", name, nonce: "" });
    if (lease) return lease;
    const holder = await this.get(port);
    throw new PortError(
      `port ${port}`,
      `is leased to ${holder ? describe(holder) : "another process"}; pick another port`,
    );
  }

  /**
   * Release a registered VM's port.
   *
   * @param name The registered name.
   * @returns The lease removed.
   * @throws {PortError} when no VM of that name is registered.
   */
  async releaseVm(name: string): Promise<PortLease> {
    const lease = (await this.list()).find((l) => l.kind === "vm" && l.name === name);
    if (!lease) {
      throw new PortError(`name ${name}`, 'is not registered; see "sandboxer ports"');
    }
    await this.#remove(lease);
    return lease;
  }

  /**
   * Release the lease of sandbox `id` whose nonce is `nonce` (another
   * sandbox's of the same name is left alone). Idempotent.
   *
   * @param id The sandbox id.
   * @param nonce Its creation nonce.
   * @returns The ports released.
   */
  async release(id: string, nonce: string): Promise<number[]> {
    const released: number[] = [];
    for (const lease of await this.list()) {
      if (lease.kind === "sandbox" && lease.name === id && lease.nonce === nonce) {
        await this.#remove(lease);
        released.push(lease.port);
      }
    }
    return released;
  }

  /**
   * Remove the sandbox leases whose sandbox is no longer alive (the record is
   * gone or destroyed), for `gc`. Registered VMs are never reaped.
   *
   * @param alive Whether sandbox `id` still has a record that is not destroyed.
   * @returns The leases removed.
   */
  async reap(alive: (id: string) => Promise<boolean>): Promise<PortLease[]> {
    const reaped: PortLease[] = [];
    for (const lease of await this.list()) {
      if (lease.kind !== "sandbox" || await alive(lease.name)) continue;
      await this.#remove(lease);
      reaped.push(lease);
    }
    return reaped;
  }

  /**
   * The port a registered VM has.
   *
   * @param name The registered name.
   * @returns The port.
   * @throws {PortError} when it is not registered.
   */
  async portOf(name: string): Promise<number> {
    const lease = (await this.list()).find((l) => l.kind === "vm" && l.name === name);
    if (!lease) {
      throw new PortError(
        `name ${name}`,
        `is not registered; record the VM's port first ("sandboxer ports register ${name} PORT")`,
      );
    }
    return lease.port;
  }

  /**
   * Every lease, by port.
   *
   * @returns The leases.
   */
  async list(): Promise<PortLease[]> {
    const leases: PortLease[] = [];
    try {
      for await (const entry of Deno.readDir(this.dir)) {
        const match = /^(\d{1,5})\.json$/.exec(entry.name);
        if (!match || !entry.isFile) continue;
        const lease = await this.get(Number(match[1]));
        if (lease) leases.push(lease);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return leases.sort((a, b) => a.port - b.port);
  }

  /**
   * The lease of one port.
   *
   * @param port The port.
   * @returns The lease, or undefined when the port is not leased.
   */
  async get(port: number): Promise<PortLease | undefined> {
    let text: string;
    try {
      text = await Deno.readTextFile(`${this.dir}/${port}.json`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    try {
      const lease = JSON.parse(text) as PortLease;
      if (lease.port === port && (lease.kind === "sandbox" || lease.kind === "vm")) return lease;
    } catch {
      // Not ours to interpret; it still blocks the port (the file exists).
    }
    return { port, kind: "vm", name: "(unreadable lease)", nonce: "", pid: 0, created_at: "" };
  }

  /** Put a lease in place atomically; undefined when the port was leased meanwhile. */
  async #put(fields: Omit<PortLease, "pid" | "created_at">): Promise<PortLease | undefined> {
    await Deno.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const lease: PortLease = { ...fields, pid: Deno.pid, created_at: new Date().toISOString() };
    const temp = `${this.dir}/.${fields.port}.${Deno.pid}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(temp, JSON.stringify(lease) + "\n", { mode: 0o600 });
    try {
      await Deno.link(temp, `${this.dir}/${fields.port}.json`);
      return lease;
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) return undefined;
      throw error;
    } finally {
      await Deno.remove(temp).catch(() => {});
    }
  }

  /** Remove a lease file, only if it still holds exactly this lease. */
  async #remove(lease: PortLease): Promise<void> {
    const now = await this.get(lease.port);
    if (!now || now.name !== lease.name || now.nonce !== lease.nonce || now.kind !== lease.kind) {
      return;
    }
    await Deno.remove(`${this.dir}/${lease.port}.json`).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
}

function checkName(name: string): void {
  if (!NAME.test(name)) {
    throw new PortError(
      `name ${JSON.stringify(name)}`,
      "is not valid; use lowercase letters, digits, '.', '_' and '-' (up to 63, starting with a letter or digit)",
    );
  }
}

function describe(lease: PortLease): string {
  return lease.kind === "vm" ? `registered VM ${lease.name}` : `sandbox ${lease.name}`;
}

/**
 * The registry of a state directory, with the range from
 * `SANDBOXER_PORT_RANGE` (read by the caller).
 *
 * @param stateDir sandboxer's state directory.
 * @param rangeText The variable's value, or undefined.
 * @returns The registry.
 * @throws {PortError} when the range is malformed.
 */
export function openPortRegistry(stateDir: string, rangeText: string | undefined): PortRegistry {
  return new PortRegistry(stateDir, { range: parsePortRange(rangeText) });
}
