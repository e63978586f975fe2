/**
 * The first byte of an exec wrapper's stdout says whether it ran the program.
 *
 * @module
 */

import { EXEC_REFUSED, EXEC_STARTED } from "./remote_scripts.ts";

/**
 * Reads an exec wrapper's first stdout byte (EXEC_STARTED or EXEC_REFUSED)
 * and passes everything after it on: the program's output is unchanged.
 */
export class ExecGate {
  #out: ((chunk: Uint8Array) => void) | undefined;
  #state: "waiting" | "started" | "refused" = "waiting";
  #reason = "";

  /** @param out Where the program's output goes. */
  constructor(out: ((chunk: Uint8Array) => void) | undefined) {
    this.#out = out;
  }

  /** Whether the wrapper started the program. */
  get started(): boolean {
    return this.#state === "started";
  }

  /** Why the wrapper refused, as it said. */
  get reason(): string {
    return this.#reason.trim();
  }

  /** The stdout sink to hand to the exec. */
  write = (chunk: Uint8Array): void => {
    if (this.#state === "started") return this.#out?.(chunk);
    if (chunk.length === 0) return;
    if (this.#state === "waiting") {
      if (chunk[0] === EXEC_STARTED) {
        this.#state = "started";
        if (chunk.length > 1) this.#out?.(chunk.subarray(1));
        return;
      }
      this.#state = "refused";
      if (chunk[0] === EXEC_REFUSED) chunk = chunk.subarray(1);
    }
    if (this.#reason.length < 2_000) this.#reason += new TextDecoder().decode(chunk);
  };
}
