/**
 * "Did you mean …?" suggestions for misspelt field names and values.
 *
 * @module
 */

/**
 * Edit distance between two strings, counting insertions, deletions,
 * substitutions and swaps of two neighbouring characters as one edit each
 * (the optimal-string-alignment variant of Damerau–Levenshtein).
 *
 * @param a First string.
 * @param b Second string.
 * @returns The number of edits that turn `a` into `b`.
 *
 * @example
 * ```ts
 * import { editDistance } from "./did_you_mean.ts";
 * console.log(editDistance("setpu", "setup")); // 1
 * ```
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (!a.length) return b.length;
  if (!b.length) return a.length;
  // Three rolling rows: two back (for swaps), previous and current.
  let before: number[] = [];
  let previous: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, before[j - 2] + 1);
      }
      current.push(best);
    }
    before = previous;
    previous = current;
  }
  return previous[b.length];
}

/**
 * Pick the candidate closest to `word`, ignoring case, when it is close
 * enough to be a likely typo: at most one edit for words of up to four
 * characters, and up to a third of the word's length beyond that.
 *
 * @param word What the user wrote.
 * @param candidates The names that would have been accepted.
 * @returns The best candidate, or `undefined` when none is close.
 *
 * @example
 * ```ts
 * import { didYouMean } from "./did_you_mean.ts";
 * console.log(didYouMean("target.hots", ["target.host", "target.port"])); // "target.host"
 * console.log(didYouMean("colour", ["size", "shape"])); // undefined
 * ```
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const wanted = word.toLowerCase();
  const limit = Math.max(1, Math.floor(wanted.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    const distance = editDistance(wanted, candidate.toLowerCase());
    if (distance <= limit && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * Format a suggestion as a suffix for an error message.
 *
 * @param word What the user wrote.
 * @param candidates The names that would have been accepted.
 * @returns ` (did you mean "x"?)`, or `""` when nothing is close.
 *
 * @example
 * ```ts
 * import { suggestionSuffix } from "./did_you_mean.ts";
 * console.log("unknown field" + suggestionSuffix("setpu", ["setup"])); // unknown field (did you mean "setup"?)
 * ```
 */
export function suggestionSuffix(word: string, candidates: readonly string[]): string {
  const match = didYouMean(word, candidates);
  return match === undefined ? "" : ` (did you mean ${JSON.stringify(match)}?)`;
}
