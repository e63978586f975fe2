/**
 * Time limits and retries for anything that talks to another machine.
 *
 * @module
 */

import { TimeoutError } from "./errors.ts";

/**
 * Run `work` with a signal that aborts after `timeoutMs` (or when `outer`
 * aborts); reject with {@linkcode TimeoutError} when the limit is hit.
 *
 * @param what What is being done, for the error ("connect to u@h:22").
 * @param timeoutMs The limit in milliseconds.
 * @param work The operation; it should stop when the signal aborts.
 * @param outer A caller's signal to honour as well.
 * @returns What `work` returned.
 */
export async function withTimeout<T>(
  what: string,
  timeoutMs: number,
  work: (signal: AbortSignal) => Promise<T>,
  outer?: AbortSignal,
): Promise<T> {
  const controller = new AbortController();
  const onOuter = () => controller.abort(outer?.reason);
  outer?.addEventListener("abort", onOuter, { once: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new TimeoutError(what, timeoutMs);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
  });
  try {
    return await Promise.race([work(controller.signal), timeout]);
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onOuter);
  }
}

/** Options for {@linkcode retry}. */
export interface RetryOptions {
  /** Total attempts, including the first. @default {4} */
  attempts?: number;
  /** Delay before the second attempt; doubled each time, with jitter. @default {200} */
  baseDelayMs?: number;
  /** Whether an error is worth another attempt. @default {() => true} */
  retryIf?: (error: unknown) => boolean;
  /** Aborting it stops retrying. */
  signal?: AbortSignal;
}

/**
 * Call `work` until it succeeds, with exponential backoff and jitter.
 *
 * @param work The operation; receives the attempt number (1-based).
 * @param options Attempts, delays and which errors to retry.
 * @returns What `work` returned on its first success.
 * @throws The last error once attempts run out or `retryIf` says no.
 */
export async function retry<T>(
  work: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 4;
  const base = options.baseDelayMs ?? 200;
  for (let attempt = 1;; attempt++) {
    try {
      return await work(attempt);
    } catch (error) {
      if (attempt >= attempts || options.signal?.aborted || !(options.retryIf?.(error) ?? true)) {
        throw error;
      }
      const delay = base * 2 ** (attempt - 1) * (0.5 + Math.random());
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** A counting semaphore whose waiters can give up through a signal. */
export class Semaphore {
  #free: number;
  #waiters: (() => void)[] = [];

  /**
   * A semaphore with `size` permits.
   *
   * @param size How many holders at once.
   */
  constructor(size: number) {
    this.#free = size;
  }

  /**
   * Wait for a permit.
   *
   * @param signal Gives up waiting (rejects with its reason).
   * @returns The release function; calling it twice releases once.
   */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
    } else {
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          this.#waiters.splice(this.#waiters.indexOf(wake), 1);
          reject(signal?.reason);
        };
        this.#waiters.push(wake);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) next();
      else this.#free++;
    };
  }
}

/**
 * Wait `ms` milliseconds, or until `signal` aborts (then reject with its reason).
 *
 * @param ms How long.
 * @param signal Ends the wait early.
 */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
