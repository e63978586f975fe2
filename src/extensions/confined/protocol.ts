/**
 * Messages between the manager's thread and a confined extension's worker.
 * Everything crossing is structured-clone data; functions (callbacks, the
 * config source) are replaced by messages.
 *
 * The worker runs third-party code that can post anything, so every message
 * from it is checked here — type, fields, their types and sizes — before the
 * host acts on it; a message that fails is a {@linkcode ProtocolViolation}.
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

/** The methods the host calls in the worker. */
export type Method =
  | "parseConfig"
  | "create"
  | "exec"
  | "sync"
  | "fetch"
  | "destroy"
  | "workspaceOf"
  | "close";

/** Host → worker. */
export type ToWorker =
  | {
    type: "init";
    moduleUrl: string;
    exportName: string;
    acceptNewHostKey: boolean;
    home?: string;
  }
  | { type: "call"; id: number; method: Method; args: unknown[]; source?: SourceTable }
  | { type: "abort"; id: number }
  | { type: "ack"; id: number; error?: WireError };

/** A log level. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Worker → host. */
export type FromWorker =
  | { type: "ready"; extensionId: string }
  | { type: "initError"; error: WireError }
  | { type: "crashed"; error: WireError }
  | { type: "result"; id: number; value: unknown }
  | { type: "error"; id: number; error: WireError }
  | { type: "recordHandle"; id: number; ackId: number; handle: unknown; workspace: string | null }
  | { type: "step"; id: number; ackId: number; name: string }
  | { type: "stdout" | "stderr"; id: number; chunk: Uint8Array }
  | { type: "progress"; id: number; progress: unknown }
  | { type: "log"; level: LogLevel; message: string };

/** The most a worker may send in one message field. */
export const LIMITS = {
  /** A log line or an error message, in characters. */
  text: 64 * 1024,
  /** A path (workspace, progress file), in characters. */
  path: 4096,
  /** A step name, in characters. */
  step: 64,
  /** A handle, as JSON, in characters (it is stored in every journal record). */
  handle: 64 * 1024,
  /** A parsed config, as JSON, in characters. */
  config: 1024 * 1024,
  /** One chunk of command output, in bytes. */
  chunk: 16 * 1024 * 1024,
} as const;

/** A message from a worker that breaks the protocol; the host stops that worker. */
export class ProtocolViolation extends Error {
  /**
   * Create it.
   *
   * @param reason What was wrong with the message, for the one-line error.
   */
  constructor(reason: string) {
    super(reason);
    this.name = "ProtocolViolation";
  }
}

const LEVELS: readonly string[] = ["debug", "info", "warn", "error"];
const TYPES: readonly string[] = [
  "ready",
  "initError",
  "crashed",
  "result",
  "error",
  "recordHandle",
  "step",
  "stdout",
  "stderr",
  "progress",
  "log",
];
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function fail(reason: string): never {
  throw new ProtocolViolation(reason);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function text(value: unknown, field: string, max: number = LIMITS.text): string {
  if (typeof value !== "string") fail(`${field} is ${kindOf(value)}, not a string`);
  if (value.length > max) fail(`${field} is ${value.length} characters, more than ${max}`);
  return value;
}

function callId(value: unknown, field = "id"): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    fail(`${field} is ${kindOf(value)}, not a call number`);
  }
  return value as number;
}

/** A short description of a value's kind for messages, never its content. */
export function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Uint8Array) return "bytes";
  const type = typeof value;
  if (type === "object") {
    const name = Object.getPrototypeOf(value)?.constructor?.name;
    return typeof name === "string" && /^[A-Z]\w{0,40}$/.test(name) && name !== "Object"
      ? `a ${name}`
      : "an object";
  }
  if (type === "number") return Number.isInteger(value) ? `the number ${value}` : "a number";
  return `a ${type}`;
}

/**
 * JSON-compatible data of at most `max` characters as JSON: a handle or a
 * config must survive the journal's JSON round trip unchanged.
 */
function jsonData(value: unknown, field: string, max: number): void {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    fail(`${field} is not JSON data`);
  }
  if (json === undefined) fail(`${field} is not JSON data`);
  if (json.length > max) fail(`${field} is ${json.length} characters as JSON, more than ${max}`);
  const plain = (node: unknown, depth: number): boolean => {
    if (depth > 64) return false;
    if (node === null || typeof node === "string" || typeof node === "boolean") return true;
    if (typeof node === "number") return Number.isFinite(node);
    if (Array.isArray(node)) return node.every((item) => plain(item, depth + 1));
    // An undefined field is simply absent once the journal stores it as JSON.
    return isRecord(node) &&
      Object.values(node).every((item) => item === undefined || plain(item, depth + 1));
  };
  if (!plain(value, 0)) fail(`${field} holds something other than JSON data`);
}

/**
 * Check an error as it crosses the boundary.
 *
 * @param value The `error` field of a message.
 * @returns It, with only the known fields.
 */
export function checkWireError(value: unknown): WireError {
  if (!isRecord(value)) fail(`error is ${kindOf(value)}, not an error`);
  const name = text(value.name, "error.name", 100);
  if (!/^[A-Za-z_$][\w$]*$/.test(name)) fail("error.name is not a class name");
  const wire: WireError = { name, message: text(value.message, "error.message") };
  if (value.code !== undefined) {
    const code = text(value.code, "error.code", 64);
    if (!/^[A-Z][A-Z0-9_]*$/.test(code)) fail("error.code is not an error code");
    wire.code = code;
  }
  if (value.location !== undefined) {
    const location = value.location;
    if (!isRecord(location)) fail(`error.location is ${kindOf(location)}, not a location`);
    const checked: ConfigLocation = {
      file: text(location.file, "error.location.file", LIMITS.path),
    };
    for (const key of ["line", "column"] as const) {
      const number = location[key];
      if (number === undefined) continue;
      if (!Number.isSafeInteger(number) || (number as number) < 1) {
        fail(`error.location.${key} is ${kindOf(number)}, not a line or column`);
      }
      checked[key] = number as number;
    }
    if (location.field !== undefined) {
      checked.field = text(location.field, "error.location.field", 256);
    }
    wire.location = checked;
  }
  return wire;
}

/**
 * Check a message from a worker: a known type with well-formed fields of
 * bounded size. What it refers to (call ids, which call may send what) is
 * checked by the host, which knows its pending calls.
 *
 * @param data What the worker posted.
 * @returns The message, rebuilt from its checked fields only.
 * @throws {ProtocolViolation} when it is malformed.
 */
export function checkFromWorker(data: unknown): FromWorker {
  if (!isRecord(data)) fail(`a message is ${kindOf(data)}, not an object`);
  const type = data.type;
  if (typeof type !== "string" || !TYPES.includes(type)) {
    fail(
      typeof type === "string"
        ? `unknown message type ${JSON.stringify(type.slice(0, 40))}`
        : "a message has no type",
    );
  }
  switch (type) {
    case "ready": {
      const extensionId = text(data.extensionId, "extensionId", 100);
      return { type, extensionId };
    }
    case "initError":
    case "crashed":
      return { type, error: checkWireError(data.error) };
    case "result":
      return { type, id: callId(data.id), value: data.value };
    case "error":
      return { type, id: callId(data.id), error: checkWireError(data.error) };
    case "recordHandle": {
      const handle = data.handle;
      if (!isRecord(handle)) fail(`handle is ${kindOf(handle)}, not an object`);
      jsonData(handle, "handle", LIMITS.handle);
      return {
        type,
        id: callId(data.id),
        ackId: callId(data.ackId, "ackId"),
        handle,
        workspace: workspace(data.workspace),
      };
    }
    case "step": {
      const name = text(data.name, "step name", LIMITS.step);
      if (name === "" || CONTROL.test(name)) fail("step name is empty or has control characters");
      return { type, id: callId(data.id), ackId: callId(data.ackId, "ackId"), name };
    }
    case "stdout":
    case "stderr": {
      const chunk = data.chunk;
      if (!(chunk instanceof Uint8Array)) fail(`${type} chunk is ${kindOf(chunk)}, not bytes`);
      if (chunk.byteLength > LIMITS.chunk) {
        fail(`${type} chunk is ${chunk.byteLength} bytes, more than ${LIMITS.chunk}`);
      }
      return { type, id: callId(data.id), chunk };
    }
    case "progress":
      return { type, id: callId(data.id), progress: checkProgress(data.progress) };
    default: {
      const level = data.level;
      if (typeof level !== "string" || !LEVELS.includes(level)) {
        fail(
          `log level is ${
            typeof level === "string" ? JSON.stringify(level.slice(0, 40)) : kindOf(level)
          }, not one of ${LEVELS.join(", ")}`,
        );
      }
      return { type: "log", level: level as LogLevel, message: text(data.message, "log message") };
    }
  }
}

function workspace(value: unknown): string | null {
  if (value === null) return null;
  const path = text(value, "workspace", LIMITS.path);
  if (path === "" || CONTROL.test(path)) fail("workspace is empty or has control characters");
  return path;
}

function checkProgress(value: unknown): { bytes: number; percent?: number; file?: string } {
  if (!isRecord(value)) fail(`progress is ${kindOf(value)}, not an object`);
  const { bytes, percent, file } = value;
  if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes < 0) {
    fail("progress.bytes is not a byte count");
  }
  const progress: { bytes: number; percent?: number; file?: string } = { bytes };
  if (percent !== undefined) {
    if (typeof percent !== "number" || !(percent >= 0 && percent <= 100)) {
      fail("progress.percent is not from 0 to 100");
    }
    progress.percent = percent;
  }
  if (file !== undefined) progress.file = text(file, "progress.file", LIMITS.path);
  return progress;
}

/**
 * Check a call's result for the method that was called.
 *
 * @param method The method.
 * @param value What the worker returned.
 * @returns The value.
 * @throws {ProtocolViolation} when it is not what that method returns.
 */
export function checkResult(method: Method, value: unknown): unknown {
  switch (method) {
    case "parseConfig":
      jsonData(value, "the parsed config", LIMITS.config);
      return value;
    case "create": {
      if (!isRecord(value) || !isRecord(value.handle)) {
        fail("create's result is not a handle");
      }
      jsonData(value.handle, "handle", LIMITS.handle);
      return { handle: value.handle, workspace: workspace(value.workspace) };
    }
    case "exec":
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 255) {
        fail(`exec's exit code is ${kindOf(value)}, not from 0 to 255`);
      }
      return value;
    case "sync": {
      if (!isRecord(value)) fail(`sync's report is ${kindOf(value)}, not an object`);
      if (!["rsync", "sftp", "tar"].includes(value.method as string)) {
        fail("sync's report has no known method");
      }
      for (const key of ["files", "deleted", "bytes"] as const) {
        const count = value[key];
        if (!Number.isSafeInteger(count) || (count as number) < 0) {
          fail(`sync's report.${key} is ${kindOf(count)}, not a count`);
        }
      }
      return {
        method: value.method,
        files: value.files,
        deleted: value.deleted,
        bytes: value.bytes,
      };
    }
    case "workspaceOf":
      return workspace(value);
    case "fetch":
    case "destroy":
    case "close":
      if (value !== null) fail(`${method}'s result is ${kindOf(value)}, not nothing`);
      return null;
  }
}

/**
 * Turn anything thrown into a {@linkcode WireError}.
 *
 * @param error What was thrown.
 * @returns Its wire form.
 */
export function toWire(error: unknown): WireError {
  if (!(error instanceof Error)) {
    return { name: "Error", message: String(error).slice(0, LIMITS.text) };
  }
  const name = String(error.name);
  const wire: WireError = {
    name: /^[A-Za-z_$][\w$]{0,99}$/.test(name) ? name : "Error",
    message: String(error.message).slice(0, LIMITS.text),
  };
  const extra = error as Error & { code?: unknown; location?: unknown };
  if (typeof extra.code === "string" && /^[A-Z][A-Z0-9_]{0,63}$/.test(extra.code)) {
    wire.code = extra.code;
  }
  if (extra.location !== undefined) {
    try {
      wire.location = checkWireError({ ...wire, location: extra.location }).location;
    } catch {
      // A location that would not pass the host's check is left out, not the error.
    }
  }
  return wire;
}
