/**
 * Small pieces the benchmark is built from: timing a child process, running
 * arms of a comparison in alternation, medians and the result table.
 *
 * @module
 */

/** One side of a comparison. `prepare` and `cleanup` are not timed. */
export interface Arm<C = unknown> {
  /** Short label, unique in its group. */
  name: string;
  /** Untimed setup before each timed run; its value is passed to `run` and `cleanup`. */
  prepare?: (round: number) => Promise<C>;
  /** The timed work. Returns milliseconds when it times itself, otherwise wall time is used. */
  run: (ctx: C, round: number) => Promise<number | void>;
  /** Untimed teardown after each run. */
  cleanup?: (ctx: C, round: number) => Promise<void>;
}

/** Samples (milliseconds) per arm name. */
export type Samples = Map<string, number[]>;

/**
 * Run every arm `runs` times, alternating (A, B, C, then C, B, A, …) so that
 * drift in the machine's state hits all arms alike. One untimed warm-up round
 * comes first.
 *
 * @param arms The arms.
 * @param runs Timed runs per arm.
 * @param onRound Called after each round (for progress output).
 * @param settle Untimed, before each timed run (after `prepare`): e.g. flush dirty pages so
 *   one arm's writeback does not land in the next arm's time.
 * @returns The samples.
 */
export async function alternate(
  // deno-lint-ignore no-explicit-any
  arms: readonly Arm<any>[],
  runs: number,
  onRound?: (round: number) => void,
  settle?: () => Promise<void>,
): Promise<Samples> {
  const samples: Samples = new Map(arms.map((a) => [a.name, []]));
  for (let round = -1; round < runs; round++) {
    const order = round % 2 === 0 ? arms : [...arms].reverse();
    for (const arm of order) {
      const ctx = arm.prepare ? await arm.prepare(round) : undefined;
      if (settle) await settle();
      let ms: number;
      try {
        const started = performance.now();
        const own = await arm.run(ctx, round);
        ms = typeof own === "number" ? own : performance.now() - started;
      } finally {
        if (arm.cleanup) await arm.cleanup(ctx, round);
      }
      if (round >= 0) samples.get(arm.name)!.push(ms);
    }
    if (round >= 0) onRound?.(round);
  }
  return samples;
}

/**
 * The median of some numbers.
 *
 * @param values The numbers (not empty).
 * @returns The median.
 */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * A quantile by linear interpolation.
 *
 * @param values The numbers (not empty).
 * @param q Between 0 and 1.
 * @returns The quantile.
 */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** A child process's result. */
export interface ChildResult {
  /** Wall time from spawn to exit, in milliseconds. */
  ms: number;
  /** Decoded stdout. */
  stdout: string;
  /** Decoded stderr. */
  stderr: string;
}

/**
 * Run a program to completion, timing it; a non-zero exit throws with its stderr.
 *
 * @param argv Program and arguments.
 * @param env Extra environment.
 * @returns Time and output.
 */
export async function runChild(
  argv: readonly string[],
  env: Record<string, string> = {},
): Promise<ChildResult> {
  const [program, ...args] = argv;
  const started = performance.now();
  const output = await new Deno.Command(program, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  const decoder = new TextDecoder();
  const result = {
    ms,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
  if (!output.success) {
    throw new Error(
      `${argv.slice(0, 4).join(" ")}… exited ${output.code}: ${
        result.stderr.trim().slice(0, 1200)
      }`,
    );
  }
  return result;
}

/** One line of the result table. */
export interface Row {
  /** What was measured. */
  metric: string;
  /** sandboxer's median (ms, or the unit in `unit`). */
  ours: number;
  /** The plain tool's median, when there is one. */
  plain?: number;
  /** What the plain tool was. */
  plainLabel?: string;
  /** Target: ratio ours/plain at most this, or (with `absolute`) ours at most this. */
  target?: number;
  /** The target is on `ours` itself, in `unit`. */
  absolute?: boolean;
  /** Unit of `ours`/`plain`; default "ms". */
  unit?: string;
  /** Spread of ours: [p25, p75]. */
  spread?: [number, number];
  /** Number of samples per side. */
  n?: number;
  /** Free text. */
  note?: string;
}

/** The ratio ours/plain, when there is a plain value. */
export function ratio(row: Row): number | undefined {
  return row.plain === undefined ? undefined : row.ours / row.plain;
}

/** "pass", "MISS" or "" for a row. */
export function verdict(row: Row): string {
  if (row.target === undefined) return "";
  const value = row.absolute ? row.ours : ratio(row);
  if (value === undefined) return "";
  return value <= row.target ? "pass" : "MISS";
}

function fmt(value: number | undefined, unit = "ms"): string {
  if (value === undefined) return "—";
  if (unit === "ms") {
    return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(0)} ms`;
  }
  if (unit === "MB") return `${value.toFixed(1)} MB`;
  return `${value.toFixed(1)} ${unit}`;
}

function targetText(row: Row): string {
  if (row.target === undefined) return "";
  return row.absolute ? `≤ ${fmt(row.target, row.unit)}` : `≤ ${row.target}×`;
}

/**
 * The rows as a Markdown table.
 *
 * @param rows The rows.
 * @returns The table text.
 */
export function markdownTable(rows: readonly Row[]): string {
  const lines = [
    "| metric | sandboxer (median) | plain tool (median) | ratio | target | result |",
    "|---|---:|---:|---:|---:|:---:|",
  ];
  for (const row of rows) {
    const r = ratio(row);
    const plain = row.plain === undefined
      ? "—"
      : `${fmt(row.plain, row.unit)}${row.plainLabel ? ` (${row.plainLabel})` : ""}`;
    lines.push(
      `| ${row.metric} | ${fmt(row.ours, row.unit)} | ${plain} | ${
        r === undefined ? "—" : `${r.toFixed(2)}×`
      } | ${targetText(row)} | ${verdict(row)} |`,
    );
  }
  return lines.join("\n");
}

/**
 * The rows as a fixed-width text table for a terminal.
 *
 * @param rows The rows.
 * @returns The table text.
 */
export function textTable(rows: readonly Row[]): string {
  const header = ["metric", "sandboxer", "plain", "ratio", "target", "result", "plain tool"];
  const body = rows.map((row) => {
    const r = ratio(row);
    return [
      row.metric,
      fmt(row.ours, row.unit),
      fmt(row.plain, row.unit),
      r === undefined ? "—" : `${r.toFixed(2)}×`,
      targetText(row),
      verdict(row),
      row.plainLabel ?? "",
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 || i === 6 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join("  ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
