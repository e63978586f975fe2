/**
 * Messages between the manager's thread and a confined extension's worker.
 * Everything crossing is structured-clone data; functions (callbacks, the
 * config source) are replaced by messages.
 *
 * @module
 */

import type { ConfigLocation } from "../../core/errors.ts";

/** A location table standing in for a ConfigSource across the thread boundary. */
export interface SourceTable {
  /** The file. */
  file: string;
  /** Locations of every field present, by dotted path. */
  fields: Record<string, ConfigLocation>;
}

/** An error as it crosses the boundary. */
export interface WireError {
  /** Error class name (`NotCapable`, `ConfigError`, …). */
  name: string;
  /** Its message. */
  message: string;
  /** `SandboxerError.code`, when it has one. */
  code?: string;
  /** `ConfigError.location`, when it has one. */
  location?: ConfigLocation;
}

/** Host → worker. */
export type ToWorker =
  | {
    type: "init";
    moduleUrl: string;
    exportName: string;
    acceptNewHostKey: boolean;
    home?: string;
  }
  | { type: "call"; id: number; method: string; args: unknown[]; source?: SourceTable }
  | { type: "abort"; id: number }
  | { type: "ack"; id: number; error?: WireError };

/** Worker → host. */
export type FromWorker =
  | { type: "ready"; extensionId: string }
  | { type: "initError"; error: WireError }
  | { type: "result"; id: number; value: unknown }
  | { type: "error"; id: number; error: WireError }
  | { type: "recordHandle"; id: number; ackId: number; handle: unknown; workspace: string | null }
  | { type: "step"; id: number; ackId: number; name: string }
  | { type: "stdout" | "stderr"; id: number; chunk: Uint8Array }
  | { type: "progress"; id: number; progress: unknown }
  | { type: "log"; level: "debug" | "info" | "warn" | "error"; message: string };

/**
 * Turn anything thrown into a {@linkcode WireError}.
 *
 * @param error What was thrown.
 * @returns Its wire form.
 */
export function toWire(error: unknown): WireError {
  if (error instanceof Error) {
    const wire: WireError = { name: error.name, message: error.message };
    const extra = error as Error & { code?: unknown; location?: ConfigLocation };
    if (typeof extra.code === "string") wire.code = extra.code;
    if (extra.location) wire.location = extra.location;
    return wire;
  }
  return { name: "Error", message: String(error) };
}
