/**
 * How records and reports look on the terminal.
 *
 * @module
 */

import type { SandboxRecord } from "../core/journal.ts";
import { table } from "./output.ts";

/**
 * A text table of sandboxes.
 *
 * @param records The records.
 * @returns The table.
 */
export function recordsTable(records: readonly SandboxRecord[]): string {
  if (records.length === 0) return "No sandboxes.\n";
  return table(
    ["ID", "STATUS", "PROFILE", "EXTENSION", "WORKSPACE", "EXPIRES"],
    records.map((r) => [
      r.id,
      r.status === "failed" && r.step ? `failed (${r.step})` : r.status,
      r.profile,
      r.extension,
      r.workspace ?? "-",
      r.expires_at ?? "never",
    ]),
  );
}

/**
 * Every field of one sandbox as `key: value` lines.
 *
 * @param record The record.
 * @returns The text.
 */
export function recordDetails(record: SandboxRecord): string {
  const lines = [
    ["id", record.id],
    ["status", record.status],
    ["step", record.step ?? "-"],
    ["error", record.error ?? "-"],
    ["profile", `${record.profile} (${record.profile_file})`],
    ["extension", record.extension],
    ["workspace", record.workspace ?? "-"],
    ["created", record.created_at],
    ["expires", record.expires_at ?? "never"],
    ["owner", `${record.owner.user}@${record.owner.host} pid ${record.owner.pid}`],
    ["handle", JSON.stringify(record.handle)],
  ];
  return lines.map(([k, v]) => `${(k + ":").padEnd(11)}${v}`).join("\n") + "\n";
}
