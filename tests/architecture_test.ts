// The layering of docs/architecture.md, enforced on the real module graph: `deno info --json` of
// every entry point (main.ts, the three SDK entries, the confined-extension worker). An import
// may only run down the list of LAYERS (or stay inside one layer), and no module may reach itself
// through its imports.
import assert from "node:assert/strict";
import { ROOT, runProgram } from "./helpers.ts";

/** Bottom to top; a module may import from its own layer and the ones before it. */
const LAYERS = [
  "data", // the built-in registrations and profiles (extensions/*.yaml, profiles/*.yaml), embedded
  "src/deps", // third-party pins: the only npm: specifiers; imports nothing of ours
  "src/core", // errors, shared types, ids, async helpers, env and permission lookups, ports
  "src/process", // local programs, argv only
  "src/transport", // SSH, host keys, remote quoting
  "src/sync", // rsync and SFTP transfers, which files to send
  "src/config", // YAML files: profiles, registrations, schemas, ssh config
  "src/extensions", // the SandboxExtension contract and the built-in backends
  "src/sandbox", // manager, journal, gc, run: the lifecycle
  "api", // mod.ts, extension.ts, errors.ts: re-exports only
  "src/cli", // commands, rendering, exit codes
  "entry", // main.ts and the confined extension's worker entry
] as const;

const ENTRIES = ["main.ts", "mod.ts", "extension.ts", "errors.ts"];
/** Loaded with `new Worker(url)`, so no import edge reaches it: a root of its own. */
const WORKER_ENTRY = "src/extensions/confined/worker_main.ts";

/** The layer of a repository path, or undefined for a module outside the layering. */
export function layerOf(path: string): number | undefined {
  if (path === "main.ts" || path === WORKER_ENTRY) return LAYERS.indexOf("entry");
  if (["mod.ts", "extension.ts", "errors.ts"].includes(path)) return LAYERS.indexOf("api");
  if (/^(extensions|profiles)\/[^/]+\.yaml$/.test(path)) return LAYERS.indexOf("data");
  const index = LAYERS.findIndex((layer) => path.startsWith(`${layer}/`));
  return index === -1 ? undefined : index;
}

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
}

/** Import edges between this repository's modules, as repository paths. */
async function graph(): Promise<Map<string, Set<string>>> {
  const prefix = new URL(`file://${ROOT}/`).href;
  const edges = new Map<string, Set<string>>();
  for (const entry of [...ENTRIES, WORKER_ENTRY]) {
    const result = await runProgram(Deno.execPath(), ["info", "--json", `${ROOT}/${entry}`], {
      env: { NO_COLOR: "1" },
    });
    assert.equal(result.code, 0, `deno info ${entry} failed:\n${result.stderr}`);
    const modules: InfoModule[] = JSON.parse(result.stdout).modules;
    for (const module of modules) {
      if (!module.specifier.startsWith(prefix)) continue;
      const from = module.specifier.slice(prefix.length);
      const targets = edges.get(from) ?? new Set<string>();
      edges.set(from, targets);
      for (const dependency of module.dependencies ?? []) {
        for (const resolved of [dependency.code?.specifier, dependency.type?.specifier]) {
          if (resolved?.startsWith(prefix)) targets.add(resolved.slice(prefix.length));
        }
      }
    }
  }
  return edges;
}

/**
 * Imports that run upward (or leave the layering), as `from -> to (why)`.
 *
 * @param edges Module → the modules it imports.
 */
export function wrongWay(edges: Map<string, Set<string>>): string[] {
  const wrong: string[] = [];
  for (const [from, targets] of edges) {
    const fromLayer = layerOf(from);
    for (const to of targets) {
      const toLayer = layerOf(to);
      if (fromLayer === undefined || toLayer === undefined) {
        wrong.push(`${from} -> ${to} (outside the layers)`);
      } else if (toLayer > fromLayer) {
        wrong.push(`${from} -> ${to} (${LAYERS[fromLayer]} may not import ${LAYERS[toLayer]})`);
      }
    }
  }
  return wrong.sort();
}

/**
 * Every cycle, as the modules of each strongly connected component with more than one module
 * (or one that imports itself). Tarjan's algorithm, iterative so deep graphs cannot overflow.
 *
 * @param edges Module → the modules it imports.
 */
export function cycles(edges: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const found: string[][] = [];
  let counter = 0;
  for (const start of edges.keys()) {
    if (index.has(start)) continue;
    const work: [string, string[]][] = [[start, [...(edges.get(start) ?? [])]]];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const [node, pending] = work[work.length - 1];
      const next = pending.shift();
      if (next !== undefined) {
        if (!index.has(next)) {
          index.set(next, counter);
          low.set(next, counter++);
          stack.push(next);
          onStack.add(next);
          work.push([next, [...(edges.get(next) ?? [])]]);
        } else if (onStack.has(next)) {
          low.set(node, Math.min(low.get(node)!, index.get(next)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1][0];
        low.set(parent, Math.min(low.get(parent)!, low.get(node)!));
      }
      if (low.get(node) === index.get(node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== node);
        if (component.length > 1 || edges.get(node)?.has(node)) found.push(component.sort());
      }
    }
  }
  return found;
}

Deno.test("layerOf() places entry points, SDK entries and src/ directories", () => {
  assert.equal(layerOf("main.ts"), LAYERS.indexOf("entry"));
  assert.equal(layerOf("extension.ts"), LAYERS.indexOf("api"));
  assert.equal(layerOf("src/core/errors.ts"), LAYERS.indexOf("src/core"));
  assert.equal(layerOf("profiles/dev.yaml"), LAYERS.indexOf("data"));
  assert.equal(layerOf("src/sandbox/manager.ts"), LAYERS.indexOf("src/sandbox"));
  assert.equal(layerOf("tests/helpers.ts"), undefined);
});

Deno.test("wrongWay() and cycles() catch what they are for", () => {
  const edges = new Map([
    ["src/core/journal.ts", new Set(["src/config/types.ts"])],
    ["src/config/types.ts", new Set(["src/core/journal.ts"])],
    ["src/cli/program.ts", new Set(["src/core/errors.ts"])],
  ]);
  assert.deepEqual(wrongWay(edges), [
    "src/core/journal.ts -> src/config/types.ts (src/core may not import src/config)",
  ]);
  assert.deepEqual(cycles(edges), [["src/config/types.ts", "src/core/journal.ts"]]);
});

Deno.test("every import runs down the layers of docs/architecture.md", async () => {
  const edges = await graph();
  assert.ok(edges.size > 50, `the graph has ${edges.size} modules`);
  assert.deepEqual(
    wrongWay(edges),
    [],
    "move the shared piece down a layer (core/ for types and helpers) rather than importing up",
  );
});

Deno.test("no module imports itself through others (no cycles)", async () => {
  assert.deepEqual(cycles(await graph()), [], "break the cycle by moving the shared part down");
});
