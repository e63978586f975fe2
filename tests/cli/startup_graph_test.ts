// What every CLI call loads before commander sees its arguments: main.ts's static module graph
// (`deno info --json`, dynamic imports left out). The manager, YAML, ssh2 and ssh-config are
// loaded by the actions that need them (src/cli/context.ts), so `--version`, `--help`, `list` and
// an `exec` over a shared connection never pay for them. One static import of a module that
// reaches the manager from a command file brought all of them back once (--version took 180 ms
// instead of 40–150 ms); this test names the chain that does it.
import assert from "node:assert/strict";
import { ROOT, runProgram } from "../helpers.ts";

/** Loaded only inside the commands' actions. */
const LAZY = [
  "src/sandbox/manager.ts",
  "src/deps/yaml.ts",
  "src/deps/ssh2.ts",
  "src/deps/ssh_config.ts",
  "src/transport/ssh/connection.ts",
];

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; isDynamic?: boolean }[];
}

/** Module → the module that first imports it statically, from main.ts (breadth first). */
async function staticGraph(): Promise<Map<string, string | undefined>> {
  const result = await runProgram(Deno.execPath(), ["info", "--json", `${ROOT}/main.ts`], {
    env: { NO_COLOR: "1" },
  });
  assert.equal(result.code, 0, `deno info main.ts failed:\n${result.stderr}`);
  const info: { roots: string[]; modules: InfoModule[] } = JSON.parse(result.stdout);
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  const parent = new Map<string, string | undefined>([[info.roots[0], undefined]]);
  const queue = [info.roots[0]];
  while (queue.length) {
    const from = queue.shift()!;
    for (const dependency of modules.get(from)?.dependencies ?? []) {
      const to = dependency.code?.specifier;
      if (to === undefined || dependency.isDynamic || parent.has(to)) continue;
      parent.set(to, from);
      queue.push(to);
    }
  }
  return parent;
}

function chain(parent: Map<string, string | undefined>, module: string): string {
  const prefix = new URL(`file://${ROOT}/`).href;
  const links: string[] = [];
  for (let at: string | undefined = module; at !== undefined; at = parent.get(at)) {
    links.push(at.replace(prefix, ""));
  }
  return links.join(" <- ");
}

Deno.test("the CLI loads only commander and its own command table at start", async () => {
  const parent = await staticGraph();
  const prefix = new URL(`file://${ROOT}/`).href;
  assert.ok(parent.has(`${prefix}src/cli/program.ts`), "the walk found the command table");
  const eager = LAZY.filter((path) => parent.has(`${prefix}${path}`));
  assert.deepEqual(
    eager.map((path) => chain(parent, `${prefix}${path}`)),
    [],
    "import these inside the command's action (await import(…)), not at the top of a command file",
  );
  const npm = [...parent.keys()].filter((s) => s.startsWith("npm:"));
  assert.deepEqual(npm.map((s) => s.replace(/@[^@/]+$/, "")), ["npm:@commander-js/extra-typings"]);
});
