/**
 * How records and reports look on the terminal. Text that comes from
 * extensions or remote hosts (workspace paths, error messages, handle fields)
 * goes through `escapeControl()` (output.ts) before it reaches a terminal, and
 * secret values are masked by {@linkcode publicRecord} in every output.
 *
 * @module
 */

import type { SandboxRecord } from "../sandbox/record.ts";
import type { JsonObject } from "../core/types.ts";
import { escapeControl, table } from "./output.ts";
import { RESERVED_ENV } from "../extensions/compose_ssh/environment.ts";

/** What a masked secret value prints as. */
export const MASK = "***";

/**
 * A record as sandboxer prints it: values of the profile's `env:` and of the
 * profile's `compose.env` (in a compose handle's `compose_env`; the variables
 * sandboxer sets itself stay) replaced by `***`, the names kept. The
 * journal itself keeps the values (mode 0600), since every command needs them.
 *
 * @param record The record as stored.
 * @returns A copy safe to print.
 */
export function publicRecord(record: SandboxRecord): SandboxRecord {
  const shown: SandboxRecord = { ...record };
  if (record.env) shown.env = record.env.map(maskEntry);
  const composeEnv = record.handle?.compose_env;
  if (record.handle && composeEnv && typeof composeEnv === "object" && !Array.isArray(composeEnv)) {
    // The variables sandboxer sets itself (ports, key paths) are no secret; the profile's are.
    const masked: JsonObject = {};
    for (const [name, value] of Object.entries(composeEnv)) {
      masked[name] = RESERVED_ENV.includes(name) ? value : MASK;
    }
    shown.handle = { ...record.handle, compose_env: masked };
  }
  return shown;
}

function maskEntry(entry: string): string {
  const equals = entry.indexOf("=");
  return equals < 0 ? MASK : `${entry.slice(0, equals)}=${MASK}`;
}

/**
 * A text table of sandboxes.
 *
 * @param records The records.
 * @returns The table.
 */
export function recordsTable(
  records: readonly SandboxRecord[],
  now: Date = new Date(),
): string {
  if (records.length === 0) return "No sandboxes.\n";
  return table(
    ["ID", "STATUS", "PROFILE", "EXTENSION", "HOST", "WORKSPACE", "EXPIRES"],
    records.map((r) =>
      [
        r.id,
        r.status === "failed" && r.step ? `failed (${r.step})` : r.status,
        shortProfile(r.profile),
        r.extension,
        hostOf(r),
        r.workspace ?? "-",
        relativeExpiry(r.expires_at, now),
      ].map(escapeControl)
    ),
  );
}

/**
 * Every field of one sandbox as `key: value` lines, secrets masked and
 * control characters escaped.
 *
 * @param record The record.
 * @returns The text.
 */
export function recordDetails(record: SandboxRecord): string {
  const shown = publicRecord(record);
  const lines = [
    ["id", shown.id],
    ["status", shown.status],
    ["step", shown.step ?? "-"],
    ["error", shown.error ?? "-"],
    ["profile", `${shown.profile} (${shown.profile_file})`],
    ["extension", shown.extension],
    ["host", hostOf(shown)],
    ["workspace", shown.workspace ?? "-"],
    ["created", shown.created_at],
    [
      "expires",
      shown.expires_at ? `${shown.expires_at} (${relativeExpiry(shown.expires_at)})` : "never",
    ],
    ["owner", `${shown.owner.user}@${shown.owner.host} pid ${shown.owner.pid}`],
    ["env", shown.env?.length ? shown.env.join(" ") : "-"],
    [
      "labels",
      Object.entries(shown.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(" ") || "-",
    ],
  ];
  if (shown.ephemeral) lines.splice(10, 0, ["run", "yes: destroyed when its run ends"]);
  const text = lines.map(([k, v]) => `${(k + ":").padEnd(11)}${escapeControl(v)}`);
  text.push(shown.handle ? "handle:" : "handle:    -", ...handleLines(shown.handle ?? {}, "  "));
  return text.join("\n") + "\n";
}

/**
 * Where an SSH-reached sandbox lives, `user@host:port` (with its pool slot),
 * from its handle; `-` for one without.
 *
 * @param record The record.
 * @returns The host.
 */
export function hostOf(record: SandboxRecord): string {
  const handle = record.handle ?? {};
  const target = handle.ssh_target ?? handle.vm_target;
  if (typeof target !== "string") return "-";
  const port = typeof handle.ssh_port === "number" && handle.ssh_port ? `:${handle.ssh_port}` : "";
  const lease = handle.pool_lease;
  const slot = lease && typeof lease === "object" && !Array.isArray(lease)
    ? ` (pool slot ${lease.slot})`
    : "";
  return `${target}${port}${slot}`;
}

/** `profile.web` prints as `web`; anything else as it is. */
export function shortProfile(id: string): string {
  return id.startsWith("profile.") ? id.slice("profile.".length) : id;
}

/**
 * When a sandbox expires, relative to `now`: `in 7h52m`, `expired 3m ago`, or `never`.
 *
 * @param expiresAt ISO time, or null.
 * @param now The time to count from.
 * @returns The text.
 */
export function relativeExpiry(expiresAt: string | null, now: Date = new Date()): string {
  if (expiresAt === null) return "never";
  const ms = Date.parse(expiresAt) - now.getTime();
  if (Number.isNaN(ms)) return expiresAt;
  return ms >= 0 ? `in ${span(ms)}` : `expired ${span(-ms)} ago`;
}

/** Two most significant units, as people say it: 2d3h, 7h52m, 4m10s, 9s. */
function span(ms: number): string {
  const s = Math.floor(ms / 1000);
  const parts: [number, string][] = [
    [Math.floor(s / 86400), "d"],
    [Math.floor(s / 3600) % 24, "h"],
    [Math.floor(s / 60) % 60, "m"],
    [s % 60, "s"],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return "0s";
  return parts.slice(first, first + 2).filter(([n], i) => i === 0 || n > 0)
    .map(([n, unit]) => `${n}${unit}`).join("");
}

/** A handle as indented `key: value` lines, nested objects one level deeper. */
function handleLines(value: JsonObject, indent: string): string[] {
  const lines: string[] = [];
  for (const [key, field] of Object.entries(value)) {
    if (field !== null && typeof field === "object" && !Array.isArray(field)) {
      lines.push(`${indent}${escapeControl(key)}:`, ...handleLines(field, indent + "  "));
    } else {
      const text = typeof field === "string" ? field : JSON.stringify(field);
      lines.push(`${indent}${escapeControl(key)}: ${escapeControl(text)}`);
    }
  }
  return lines;
}
