/**
 * Durations written as seconds (`90`) or with units (`90s`, `30m`, `8h`,
 * `2d`, `1h30m`).
 *
 * @module
 */

const UNIT_SECONDS: Readonly<Record<string, number>> = { d: 86_400, h: 3_600, m: 60, s: 1 };
const UNIT_ORDER = "dhms";
const EXAMPLES = `"90s", "30m", "8h", "2d" or "1h30m"`;

/**
 * Parse a duration into whole seconds.
 *
 * A number (or a string of digits) is a count of seconds. Otherwise the
 * string is one or more `<digits><unit>` parts with units `d`, `h`, `m`, `s`,
 * largest first and each at most once.
 *
 * @param value The duration as written.
 * @returns The duration in seconds.
 * @throws {RangeError} when the value is not a non-negative whole duration.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./duration.ts";
 * console.log(parseDuration("1h30m")); // 5400
 * console.log(parseDuration(90)); // 90
 * ```
 */
export function parseDuration(value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(
        `Cannot use ${value} as a duration: give a whole number of seconds (0 or more) or a value like ${EXAMPLES}`,
      );
    }
    return value;
  }
  const text = value.trim();
  const fail = (why: string): never => {
    throw new RangeError(
      `Cannot parse duration ${JSON.stringify(value)}: ${why}; write it like ${EXAMPLES}`,
    );
  };
  if (text === "") fail("it is empty");
  if (/^\d+$/.test(text)) return checked(Number(text), value);
  const parts = [...text.matchAll(/(\d+)([a-zA-Z]+)/gy)];
  if (!parts.length || parts.reduce((n, part) => n + part[0].length, 0) !== text.length) {
    fail("expected a number followed by a unit (d, h, m or s)");
  }
  let total = 0;
  let lastRank = -1;
  for (const [, digits, unit] of parts) {
    const rank = UNIT_ORDER.indexOf(unit);
    if (unit.length !== 1 || rank < 0) fail(`"${unit}" is not a unit (use d, h, m or s)`);
    if (rank <= lastRank) fail("units must go from largest to smallest, each at most once");
    lastRank = rank;
    total += Number(digits) * UNIT_SECONDS[unit];
  }
  return checked(total, value);
}

function checked(seconds: number, value: string): number {
  if (!Number.isSafeInteger(seconds)) {
    throw new RangeError(`Cannot use duration ${JSON.stringify(value)}: it is too long`);
  }
  return seconds;
}

/**
 * Format seconds as a compact duration such as `1h30m` or `2d`, the inverse of
 * {@linkcode parseDuration}. Fractions of a second are dropped; a negative
 * value gets a leading `-`.
 *
 * @param seconds The duration in seconds.
 * @returns The duration with units, `0s` for zero.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./duration.ts";
 * console.log(formatDuration(5400)); // "1h30m"
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return String(seconds);
  let rest = Math.trunc(Math.abs(seconds));
  if (rest === 0) return "0s";
  let text = "";
  for (const unit of UNIT_ORDER) {
    const size = UNIT_SECONDS[unit];
    if (rest >= size) {
      text += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return seconds < 0 ? `-${text}` : text;
}

/** The longest ttl sandboxer accepts (365 days), in seconds: enough for any build, and far from a date overflow. */
export const MAX_TTL_SECONDS: number = 365 * 86_400;
