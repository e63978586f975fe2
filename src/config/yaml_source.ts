/**
 * Parse YAML while keeping where every value was written, so configuration
 * errors can say `file:line:column: field`.
 *
 * @module
 */

import * as yaml from "../deps/yaml.ts";
import { ConfigError, type ConfigLocation, PermissionError } from "../core/errors.ts";
import { mapPermissionError } from "../core/permissions.ts";
import type { ConfigSource } from "./types.ts";

/** A parsed YAML document: its data and where each value came from. */
export interface YamlDocument {
  /** The document as plain data (`null` for an empty document). */
  data: unknown;
  /** Locates dotted field paths in the document. */
  source: ConfigSource;
}

/** Environment variables the `yaml` package reads on every parse. */
const YAML_ENV_FLAG = "--allow-env=LOG_TOKENS,LOG_STREAM";

/**
 * Split a field path into its segments: `sync.exclude[2]` → `["sync",
 * "exclude", "2"]`.
 *
 * @param field A dotted path, list indices as `[n]` or `.n`.
 * @returns The segments.
 *
 * @example
 * ```ts
 * import { splitFieldPath } from "./yaml_source.ts";
 * console.log(splitFieldPath("sync.exclude[2]")); // ["sync", "exclude", "2"]
 * ```
 */
export function splitFieldPath(field: string): string[] {
  return field.split(/\.|\[(\d+)\]/).filter((segment) => segment !== undefined && segment !== "");
}

/**
 * Parse one YAML document. Duplicate keys are errors.
 *
 * @param file The file name used in locations (as the user gave it).
 * @param text The file's contents.
 * @returns The data and a {@linkcode ConfigSource} for it.
 * @throws {ConfigError} on a syntax error or duplicate key, at its line and
 * column.
 * @throws {PermissionError} when the `yaml` package may not read the
 * `LOG_TOKENS`/`LOG_STREAM` environment variables it checks.
 *
 * @example
 * ```ts
 * import { parseYamlDocument } from "./yaml_source.ts";
 * const { data, source } = parseYamlDocument("dev.yaml", "target:\n  port: 22\n");
 * console.log(data); // { target: { port: 22 } }
 * console.log(source.locate("target.port")); // { file: "dev.yaml", line: 2, column: 9, field: "target.port" }
 * ```
 */
export function parseYamlDocument(file: string, text: string): YamlDocument {
  const lineCounter = new yaml.LineCounter();
  const doc = yamlCall(() =>
    yaml.parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true })
  );
  const [first, ...more] = doc.errors;
  if (first) {
    const at = first.linePos?.[0] ?? lineCounter.linePos(first.pos[0]);
    const others = more.length ? ` (and ${more.length} more YAML error${plural(more.length)})` : "";
    throw new ConfigError(
      { file, line: at.line, column: at.col },
      `${describeYamlError(doc, first.code, first.message, first.pos[0], lineCounter)}${others}`,
    );
  }
  let data: unknown;
  try {
    data = yamlCall(() => doc.toJS({ maxAliasCount: 100 }));
  } catch (error) {
    if (error instanceof PermissionError) throw error;
    throw new ConfigError(
      { file },
      `cannot be read as data: ${
        (error as Error).message
      }; fix the anchors and aliases (&name, *name)`,
      { cause: error },
    );
  }
  return { data: data ?? null, source: new YamlSource(file, doc, lineCounter) };
}

/**
 * A source that knows only the file name, for data that did not come from
 * YAML text (every location is the file alone).
 *
 * @param file The file name to report.
 * @returns A source whose `locate` returns `{ file, field }`.
 *
 * @example
 * ```ts
 * import { fileSource } from "./yaml_source.ts";
 * console.log(fileSource("built-in").locate("ttl")); // { file: "built-in", field: "ttl" }
 * ```
 */
export function fileSource(file: string): ConfigSource {
  return { file, locate: (field) => ({ file, field }) };
}

/**
 * Wrap a source so that fields set on the command line are located at their
 * `--set` flag instead of the file. A field below an overridden one (say
 * `target.port` after `--set 'target={port: x}'`) is located at that
 * override too.
 *
 * @param source The file's source.
 * @param fields Dotted path → the override as written (`target.port=abc`),
 * as returned by `applyOverrides`.
 * @returns A source reporting `{ file: "--set target.port=abc", field }` for
 * overridden fields.
 *
 * @example
 * ```ts
 * import { fileSource, withOverrides } from "./yaml_source.ts";
 * const source = withOverrides(fileSource("dev.yaml"), new Map([["target.port", "target.port=x"]]));
 * console.log(source.locate("target.port").file); // "--set target.port=x"
 * ```
 */
export function withOverrides(
  source: ConfigSource,
  fields: ReadonlyMap<string, string>,
): ConfigSource {
  if (!fields.size) return source;
  return {
    file: source.file,
    locate(field: string): ConfigLocation {
      const segments = splitFieldPath(field);
      for (let length = segments.length; length > 0; length--) {
        const written = fields.get(segments.slice(0, length).join("."));
        if (written !== undefined) return { file: `--set ${written}`, field };
      }
      return source.locate(field);
    },
  };
}

interface Found {
  depth: number;
  key?: unknown;
  value?: unknown;
}

class YamlSource implements ConfigSource {
  readonly file: string;
  readonly #doc: yaml.Document;
  readonly #lines: yaml.LineCounter;

  constructor(file: string, doc: yaml.Document, lines: yaml.LineCounter) {
    this.file = file;
    this.#doc = doc;
    this.#lines = lines;
  }

  locate(field: string): ConfigLocation {
    const segments = splitFieldPath(field);
    const found = find(this.#doc.contents, segments, 0);
    // A scalar is located where it is written; a mapping or list (which may
    // start lines below) and an empty value are located at their key.
    const value = rangeOf(found.value);
    const valueStart = found.depth === segments.length && value && value[1] > value[0] &&
        !yaml.isCollection(found.value)
      ? value[0]
      : undefined;
    const start = valueStart ?? rangeOf(found.key)?.[0] ?? value?.[0];
    if (found.depth === 0 || start === undefined) return { file: this.file, field };
    const { line, col } = this.#lines.linePos(start);
    return { file: this.file, line, column: col, field };
  }
}

/** Deepest match of `segments[from..]` under `node`; keys may contain dots. */
function find(node: unknown, segments: readonly string[], from: number): Found {
  let best: Found = { depth: from };
  if (from >= segments.length) return best;
  if (yaml.isMap(node)) {
    for (let end = segments.length; end > from; end--) {
      const name = segments.slice(from, end).join(".");
      const pair = node.items.find((item) =>
        yaml.isPair(item) && yaml.isScalar(item.key) && String(item.key.value) === name
      );
      if (!pair) continue;
      const below = find(pair.value, segments, end);
      const found = below.depth > end ? below : { depth: end, key: pair.key, value: pair.value };
      if (found.depth > best.depth) best = found;
      if (best.depth === segments.length) break;
    }
  } else if (yaml.isSeq(node) && /^\d+$/.test(segments[from])) {
    const item = node.items[Number(segments[from])];
    if (item !== undefined) {
      const below = find(item, segments, from + 1);
      best = below.depth > from + 1 ? below : { depth: from + 1, key: item, value: item };
    }
  }
  return best;
}

function rangeOf(node: unknown): readonly [number, number, number] | undefined {
  return yaml.isNode(node) ? node.range ?? undefined : undefined;
}

function describeYamlError(
  doc: yaml.Document,
  code: string,
  message: string,
  offset: number,
  lines: yaml.LineCounter,
): string {
  switch (code) {
    case "DUPLICATE_KEY": {
      const duplicate = findDuplicateKey(doc.contents, offset);
      if (duplicate) {
        const firstLine = lines.linePos(duplicate.firstOffset).line;
        return `duplicate key ${
          JSON.stringify(duplicate.name)
        } (first set on line ${firstLine}); remove one of the two`;
      }
      return "duplicate key; remove one of the two";
    }
    case "MULTIPLE_DOCS":
      return "holds more than one YAML document; remove the `---` line and keep one document";
    case "TAB_AS_INDENT":
      return "tabs are not allowed for indentation in YAML; indent with spaces";
  }
  const text = message.replace(/ at line \d+, column \d+:?\n[\s\S]*$/, "").trim();
  return `invalid YAML: ${text}; fix the syntax here`;
}

function findDuplicateKey(
  node: unknown,
  offset: number,
): { name: string; firstOffset: number } | undefined {
  if (yaml.isMap(node)) {
    const seen = new Map<string, number>();
    for (const pair of node.items) {
      if (yaml.isScalar(pair.key)) {
        const name = String(pair.key.value);
        const start = rangeOf(pair.key)?.[0] ?? -1;
        const first = seen.get(name);
        if (first !== undefined && start === offset) return { name, firstOffset: first };
        if (first === undefined) seen.set(name, start);
      }
      const below = findDuplicateKey(pair.value, offset);
      if (below) return below;
    }
  } else if (yaml.isSeq(node)) {
    for (const item of node.items) {
      const below = findDuplicateKey(item, offset);
      if (below) return below;
    }
  }
  return undefined;
}

/**
 * Run a call into the `yaml` package, which reads `process.env.LOG_TOKENS`
 * and `LOG_STREAM` on every parse: without `--allow-env` for them Deno throws
 * `NotCapable`.
 */
function yamlCall<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw mapPermissionError(
        error,
        "env",
        "LOG_TOKENS and LOG_STREAM (the YAML parser reads them)",
        YAML_ENV_FLAG,
      );
    }
    throw error;
  }
}

function plural(count: number): string {
  return count === 1 ? "" : "s";
}
