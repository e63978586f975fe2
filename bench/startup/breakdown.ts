/**
 * Startup probe: where module-load time goes. Imports the CLI's heavy pieces
 * one after another (each import only pays for what is not loaded yet) and
 * prints the incremental milliseconds as JSON.
 *
 * @module
 */
const times: Record<string, number> = { "runtime ready": performance.now() };
let last = performance.now();
const step = async (name: string, load: () => Promise<unknown>) => {
  await load();
  const now = performance.now();
  times[name] = now - last;
  last = now;
};
await step("commander", () => import("../../src/deps/commander.ts"));
await step("yaml", () => import("../../src/deps/yaml.ts"));
await step("ssh2", async () => (await import("../../src/deps/ssh2.ts")).loadSsh2());
await step(
  "transport (ssh.ts, known_hosts, ssh-config)",
  () => import("../../src/transport/ssh/connection.ts"),
);
await step("manager (config, journal, extensions)", () => import("../../src/sandbox/manager.ts"));
await step("cli program (commands)", () => import("../../src/cli/program.ts"));
times.total = performance.now();
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(times) + "\n"));
