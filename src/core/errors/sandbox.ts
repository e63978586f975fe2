/**
 * Errors of a sandbox's lifecycle: its id, its record in the state journal, who owns it.
 *
 * @module
 */

import { SandboxerError } from "./codes.ts";

/**
 * A sandbox id is not of the form `[a-z0-9][a-z0-9-]{0,62}`.
 *
 * @example
 * ```ts
 * import { InvalidIdError } from "@sandboxer/sandboxer/errors";
 * console.log(new InvalidIdError("../x").code); // "INVALID_ID"
 * ```
 */
export class InvalidIdError extends SandboxerError {
  /** The refused id. */
  readonly id: string;
  /**
   * Create it.
   *
   * @param id The refused id.
   */
  constructor(id: string) {
    super(
      "INVALID_ID",
      `Cannot use sandbox id ${
        JSON.stringify(id)
      }: ids are 1-63 characters of a-z, 0-9 and "-", starting with a letter or digit`,
    );
    this.id = id;
  }
}

/**
 * No sandbox with that id is in the journal.
 *
 * @example
 * ```ts
 * import { SandboxNotFoundError } from "@sandboxer/sandboxer/errors";
 * console.log(new SandboxNotFoundError("x").message);
 * ```
 */
export class SandboxNotFoundError extends SandboxerError {
  /** The id that was looked up. */
  readonly id: string;
  /**
   * Create it.
   *
   * @param id The id that was looked up.
   */
  constructor(id: string) {
    super(
      "SANDBOX_NOT_FOUND",
      `Cannot find sandbox "${id}": run "sandboxer list" to see the known sandboxes`,
    );
    this.id = id;
  }
}

/**
 * A sandbox with that id already exists in the journal.
 *
 * @example
 * ```ts
 * import { SandboxExistsError } from "@sandboxer/sandboxer/errors";
 * console.log(new SandboxExistsError("x").code); // "SANDBOX_EXISTS"
 * ```
 */
export class SandboxExistsError extends SandboxerError {
  /** The id that is taken. */
  readonly id: string;
  /**
   * Create it.
   *
   * @param id The id that is taken.
   */
  constructor(id: string) {
    super(
      "SANDBOX_EXISTS",
      `Cannot create sandbox "${id}": that id is already in use; pick another --name or destroy it first`,
    );
    this.id = id;
  }
}

/**
 * The sandbox is in a state that does not allow the operation (for example
 * `exec` on a destroyed sandbox, or `destroy` while another process is still
 * creating it).
 *
 * @example
 * ```ts
 * import { SandboxStateError } from "@sandboxer/sandboxer/errors";
 * console.log(new SandboxStateError("x", "is destroyed").message);
 * ```
 */
export class SandboxStateError extends SandboxerError {
  /** The sandbox id. */
  readonly id: string;
  /** The problem alone, without the `Sandbox "<id>"` prefix. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param id The sandbox id.
   * @param problem What state it is in and what to do.
   */
  constructor(id: string, problem: string) {
    super("SANDBOX_STATE", `Sandbox "${id}" ${problem}`);
    this.id = id;
    this.problem = problem;
  }
}

/**
 * Another process is working on or in the sandbox: an `exec`, `sync` or
 * artifact copy runs in it, or a live `create`, `destroy` or `run` owns it.
 * `destroy` refuses it unless given `--force` (or waits with `--wait`).
 *
 * @example
 * ```ts
 * import { SandboxInUseError } from "@sandboxer/sandboxer/errors";
 * const error = new SandboxInUseError("x", "is in use by exec (process 42 on h)");
 * console.log(error.code); // "SANDBOX_IN_USE"
 * ```
 */
export class SandboxInUseError extends SandboxerError {
  /** The sandbox id. */
  readonly id: string;
  /** Who is at work on or in it, as a phrase after the id (`is in use by exec (…)`). */
  readonly busy: string;
  /**
   * Create it.
   *
   * @param id The sandbox id.
   * @param busy Who is at work on or in it: `is in use by exec (process 42 on h)`.
   * @param fix What to do about it.
   */
  constructor(
    id: string,
    busy: string,
    fix = "wait for it (destroy --wait), or pass --force",
  ) {
    super("SANDBOX_IN_USE", `Sandbox "${id}" ${busy}; ${fix}`);
    this.id = id;
    this.busy = busy;
  }
}

/**
 * This process no longer owns the sandbox's record: while it was stopped or
 * slow, `gc` or `destroy --force` took the sandbox over (and maybe a new
 * sandbox reused the id). The process changes and removes nothing more.
 *
 * @example
 * ```ts
 * import { OwnershipLostError } from "@sandboxer/sandboxer/errors";
 * console.log(new OwnershipLostError("x", "was taken over").code); // "OWNERSHIP_LOST"
 * ```
 */
export class OwnershipLostError extends SandboxerError {
  /** The problem alone, without the `Sandbox "<id>"` prefix. */
  readonly problem: string;
  /** The sandbox id. */
  readonly id: string;
  /**
   * Create it.
   *
   * @param id The sandbox id.
   * @param problem Who took it over, and what to do.
   * @param options Standard error options.
   */
  constructor(id: string, problem: string, options?: ErrorOptions) {
    super("OWNERSHIP_LOST", `Sandbox "${id}" ${problem}`, options);
    this.problem = problem;
    this.id = id;
  }
}

/**
 * The state directory cannot be used: it is a file, its disk is full, it is
 * read-only.
 *
 * @example
 * ```ts
 * import { StateDirError } from "@sandboxer/sandboxer/errors";
 * console.log(new StateDirError("/s", "is a file").message); // State directory /s is a file
 * ```
 */
export class StateDirError extends SandboxerError {
  /** The problem alone. */
  readonly problem: string;
  /** The state directory. */
  readonly path: string;
  /**
   * Create it.
   *
   * @param path The state directory.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options.
   */
  constructor(path: string, problem: string, options?: ErrorOptions) {
    super("STATE_DIR", `State directory ${path} ${problem}`, options);
    this.problem = problem;
    this.path = path;
  }
}

/**
 * The state journal is unreadable or a record in it is corrupt.
 *
 * @example
 * ```ts
 * import { JournalError } from "@sandboxer/sandboxer/errors";
 * console.log(new JournalError("/tmp/x.json", "is not valid JSON").code); // "JOURNAL"
 * ```
 */
export class JournalError extends SandboxerError {
  /** The journal file concerned. */
  readonly path: string;
  /** The problem alone. */
  readonly problem: string;
  /**
   * Create it.
   *
   * @param path The journal file concerned.
   * @param problem What is wrong and how to fix it.
   * @param options Standard error options.
   */
  constructor(path: string, problem: string, options?: ErrorOptions) {
    super("JOURNAL", `Journal file ${path} ${problem}`, options);
    this.path = path;
    this.problem = problem;
  }
}
