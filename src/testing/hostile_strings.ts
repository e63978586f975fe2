/**
 * Hostile argv words shared by the quoter unit test and the ssh integration test.
 *
 * @module
 */

/** Small seeded PRNG so a failing case can be replayed from its seed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HOSTILE_ALPHABET = [
  ..."'\"`$\\ \t\n\r;|&<>*?[]{}()~!#=%,.:/-_^+@aZ09",
  "é",
  "漢",
  "😀",
  "\u00a0",
  "\u200b",
  "$(",
  "${",
  "'\"'\"'",
  "\x1b[31m",
];

/** Hostile argv words generated from a seed. */
export function hostileStrings(seed: number, count: number): string[] {
  const random = mulberry32(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const length = Math.floor(random() * 24);
    let s = "";
    for (let j = 0; j < length; j++) {
      s += HOSTILE_ALPHABET[Math.floor(random() * HOSTILE_ALPHABET.length)];
    }
    out.push(s);
  }
  return out;
}

/** Hand-picked hostile words. */
export const HOSTILE_WORDS: readonly string[] = [
  "",
  " ",
  "'",
  "''",
  '"',
  "it's",
  "$HOME",
  "${HOME}",
  "$(id)",
  "`id`",
  "a;b",
  "a|b",
  "a&b",
  "a&&b",
  "<in",
  ">out",
  "*",
  "?",
  "[a-z]",
  "{a,b}",
  "~",
  "~root",
  "#comment",
  "!",
  "!!",
  "line1\nline2",
  "\n",
  "tab\there",
  "cr\rhere",
  "-n",
  "-e",
  "--",
  "--help",
  "back\\slash",
  "\\",
  "é漢😀",
  "\u00a0nbsp",
  "\x1b[31mred",
  "a=b",
  "key=$(rm -rf /)",
  "'; rm -rf / #",
  "x".repeat(50_000),
];
