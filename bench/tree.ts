/**
 * A deterministic source tree for the sync benchmark: `files` regular files
 * that a sync sends (about `totalBytes` in all, a few large ones and many
 * small ones spread over nested directories), plus content a sync must leave
 * out — a `build/` directory and `*.log` files named by `.gitignore`, and a
 * `.git/` directory the profile excludes.
 *
 * @module
 */

/** What to generate. */
export interface TreeSpec {
  /** Regular files a sync sends, `.gitignore` included. */
  files: number;
  /** Their total size in bytes (approximately). */
  totalBytes: number;
  /** PRNG seed. */
  seed?: number;
}

/** What was generated. */
export interface TreeInfo {
  /** Files a sync sends. */
  files: number;
  /** Their bytes. */
  bytes: number;
  /** Directories a sync sends (the root not counted). */
  dirs: number;
  /** Files that must not be sent (ignored or excluded). */
  leftOut: number;
}

/** The exclude patterns a profile for this tree uses (rsync syntax). */
export const TREE_EXCLUDES: readonly string[] = [".git/"];

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function bytes(next: () => number, size: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  for (let i = 0; i < words.length; i++) words[i] = next();
  return new Uint8Array(words.buffer, 0, size);
}

/**
 * Write the tree into `dir` (which must exist and be empty).
 *
 * @param dir Target directory.
 * @param spec Size of the tree.
 * @returns Counts.
 */
export async function makeTree(dir: string, spec: TreeSpec): Promise<TreeInfo> {
  const next = xorshift(spec.seed ?? 0x5eed);
  const gitignore = "build/\n*.log\n";
  await Deno.writeTextFile(`${dir}/.gitignore`, gitignore);
  let files = 1;
  let total = gitignore.length;

  // 100 directories, two levels deep.
  const dirs: string[] = [];
  for (let a = 0; a < 20; a++) {
    for (let b = 0; b < 5; b++) dirs.push(`src/pkg${a}/mod${b}`);
  }
  for (const d of dirs) await Deno.mkdir(`${dir}/${d}`, { recursive: true });

  // A few large files (about 35 % of the bytes), the rest small with a long tail.
  const large = Math.max(1, Math.round(spec.files / 200));
  const largeSize = Math.floor((spec.totalBytes * 0.35) / large);
  const small = spec.files - 1 - large;
  const weights = Array.from({ length: small }, () => Math.exp((next() / 2 ** 32) * 4.5));
  const weightSum = weights.reduce((a, b) => a + b, 0);
  const smallBudget = spec.totalBytes - total - large * largeSize;
  for (let i = 0; i < large; i++) {
    await Deno.writeFile(`${dir}/${dirs[i % dirs.length]}/blob${i}.bin`, bytes(next, largeSize));
    files++;
    total += largeSize;
  }
  for (let i = 0; i < small; i++) {
    const size = Math.max(64, Math.floor((weights[i] / weightSum) * smallBudget));
    await Deno.writeFile(`${dir}/${dirs[i % dirs.length]}/file${i}.ts`, bytes(next, size));
    files++;
    total += size;
  }

  // Left out: ignored by .gitignore, or excluded by the profile.
  let leftOut = 0;
  await Deno.mkdir(`${dir}/build/out`, { recursive: true });
  await Deno.mkdir(`${dir}/.git/objects`, { recursive: true });
  for (let i = 0; i < 50; i++) {
    await Deno.writeFile(`${dir}/build/out/obj${i}.o`, bytes(next, 20_000));
    await Deno.writeFile(`${dir}/.git/objects/pack${i}`, bytes(next, 20_000));
    leftOut += 2;
  }
  for (let i = 0; i < 5; i++) {
    await Deno.writeTextFile(`${dir}/${dirs[i]}/debug${i}.log`, "log line\n".repeat(100));
    leftOut++;
  }
  return { files, bytes: total, dirs: dirs.length + 20 + 1, leftOut };
}
