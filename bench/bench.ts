/**
 * `deno task bench`: sandboxer against the plain tools, on a private loopback
 * sshd (login user `sbxtest` with `/bin/sh`, throwaway keys) that this
 * process starts and stops.
 *
 * Each comparison runs its arms in alternation (A, B, …, then reversed),
 * after one untimed warm-up round, and reports medians. Two ways of using
 * sandboxer are measured and labelled:
 * - **CLI**: a new `deno run` process per command with the exact flags of
 *   `deno task sandboxer` (Deno start and module load included);
 * - **SDK**: `Manager` from mod.ts in this process, either warm (one manager
 *   kept open, so its SSH connection is reused) or cold (a new manager per
 *   operation, closed afterwards).
 *
 * Options (or env): `--runs N` (`BENCH_RUNS`, default 15), `--concurrent-runs N`
 * (`BENCH_CONCURRENT_RUNS`, default 3), `--concurrency N` (default 32),
 * `--files N` (default 2000), `--mb N` (default 40), `--only a,b` (groups:
 * start, exec, create, sync, resync, concurrent), `--json FILE` (raw samples),
 * `--workspace-dir DIR` (where workspaces live; default a temp dir on the disk. To take the disk
 * out, point it at a symlink to a directory under /dev/shm: Deno refuses /dev paths without
 * --allow-all).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Manager } from "../mod.ts";
import { sshArgs, sshdUnavailableReason } from "../tests/harness/sshd.ts";
import { startTestVm } from "../tests/harness/test_vm.ts";
import { ROOT, sandboxerTaskArgv } from "../tests/helpers.ts";
import {
  alternate,
  type Arm,
  markdownTable,
  median,
  quantile,
  type Row,
  runChild,
  type Samples,
  textTable,
} from "./lib.ts";
import { makeTree, TREE_EXCLUDES } from "./tree.ts";

const encoder = new TextEncoder();
const log = (text: string) => Deno.stderr.writeSync(encoder.encode(text + "\n"));
const say = (text: string) => Deno.stdout.writeSync(encoder.encode(text + "\n"));

function loadavg(): string {
  try {
    return Deno.loadavg().map((n) => n.toFixed(2)).join(" ");
  } catch {
    return "?";
  }
}

function envNumber(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: envNumber("BENCH_RUNS") ?? "15" },
    "concurrent-runs": { type: "string", default: envNumber("BENCH_CONCURRENT_RUNS") ?? "3" },
    concurrency: { type: "string", default: "32" },
    files: { type: "string", default: "2000" },
    mb: { type: "string", default: "40" },
    only: { type: "string" },
    json: { type: "string" },
    "workspace-dir": { type: "string" },
  },
});
const RUNS = Number(flags.runs);
const CONCURRENT_RUNS = Number(flags["concurrent-runs"]);
const CONCURRENCY = Number(flags.concurrency);
const groups = new Set(
  (flags.only ?? "start,exec,create,sync,resync,concurrent").split(",").map((g) => g.trim()),
);

const reason = await sshdUnavailableReason();
if (reason) {
  log(`bench cannot run here: ${reason}`);
  Deno.exit(1);
}

// ---------------------------------------------------------------- the machine

async function firstLine(argv: string[], stream: "stdout" | "stderr" = "stdout"): Promise<string> {
  try {
    const out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    return new TextDecoder().decode(out[stream]).trim().split("\n")[0] ?? "";
  } catch {
    return "unavailable";
  }
}

async function machine(): Promise<Record<string, string>> {
  const lscpu = await new Deno.Command("lscpu", { stdout: "piped" }).output().catch(() =>
    undefined
  );
  const model = lscpu
    ? /^Model name:\s*(.+)$/m.exec(new TextDecoder().decode(lscpu.stdout))?.[1] ?? "?"
    : "?";
  let memory = "?";
  try {
    memory = `${(Deno.systemMemoryInfo().total / 2 ** 30).toFixed(1)} GiB`;
  } catch { /* --allow-sys=systemMemoryInfo missing */ }
  let kernel = "?";
  try {
    kernel = Deno.osRelease();
  } catch { /* --allow-sys=osRelease missing */ }
  return {
    cpus: `${navigator.hardwareConcurrency} × ${model}`,
    memory,
    kernel,
    deno: `${Deno.version.deno} (V8 ${Deno.version.v8})`,
    rsync: await firstLine(["rsync", "--version"]),
    openssh: await firstLine(["ssh", "-V"], "stderr"),
    tar: await firstLine(["tar", "--version"]),
  };
}

const TIME = "/usr/bin/time";
async function hasGnuTime(): Promise<boolean> {
  try {
    return (await Deno.stat(TIME)).isFile;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- setup

const info = await machine();
const loadBefore = loadavg();
log(`machine: ${JSON.stringify(info)}; load average ${loadBefore}`);
await using vm = await startTestVm();
const sshd = vm.sshd;
// Where workspaces (and the plain tools' directories) live; default: the VM's temp dir on disk.
const hostDir = flags["workspace-dir"]
  ? await Deno.makeTempDir({ dir: flags["workspace-dir"], prefix: "sbx-bench-" })
  : vm.dir;
await Deno.chmod(hostDir, 0o755);
const workspaceRoot = flags["workspace-dir"] ? `${hostDir}/build` : vm.root;
if (flags["workspace-dir"]) {
  await Deno.mkdir(workspaceRoot);
  await new Deno.Command("chown", { args: [sshd.user, workspaceRoot] }).output();
}
const profile = `${vm.dir}/bench.yaml`;
await Deno.writeTextFile(
  profile,
  [
    "id: profile.bench",
    "extension: ext.vm-packer",
    "target:",
    `  host: ${sshd.host}`,
    `  port: ${sshd.port}`,
    `  user: ${sshd.user}`,
    `  identity_file: ${sshd.identityFile}`,
    `  known_hosts: ${sshd.knownHostsFile}`,
    "workspace:",
    `  root: ${workspaceRoot}`,
    "sync:",
    `  exclude: [${TREE_EXCLUDES.join(", ")}]`,
    "",
  ].join("\n"),
);
const env = { ...vm.env, NO_COLOR: "1" };
const cli = await sandboxerTaskArgv();
const cliFlags = cli.slice(1, -1); // deno, <flags…>, main.ts
const deno = cli[0];
const sshCmd = ["ssh", ...sshArgs(sshd)];
const sshE = ["ssh", ...sshArgs(sshd).slice(0, -1)].join(" ");
const remote = `${sshd.user}@${sshd.host}`;
const plainRoot = `${hostDir}/plain`;
await Deno.mkdir(plainRoot);
await new Deno.Command("chown", { args: [sshd.user, plainRoot] }).output();

const sourceDir = await Deno.makeTempDir({ prefix: "sbx-bench-src-" });
// Removed however the run ends (the VM's own dir goes with `vm`).
await using _scratch = {
  async [Symbol.asyncDispose]() {
    for (const dir of [sourceDir, ...(hostDir !== vm.dir ? [hostDir] : [])]) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
};
const tree = await makeTree(sourceDir, {
  files: Number(flags.files),
  totalBytes: Number(flags.mb) * 1e6,
});
log(
  `tree: ${tree.files} files, ${
    (tree.bytes / 1e6).toFixed(1)
  } MB, ${tree.dirs} dirs, ${tree.leftOut} files left out by .gitignore/excludes`,
);

await using manager = await Manager.open({ stateDir: vm.env.SANDBOXER_HOME });
const rows: Row[] = [];
const extra: Row[] = [];
const raw: Record<string, Samples> = {};
let plainCounter = 0;

const cliRun = (args: string[]) => runChild([...cli, ...args], env);
const plainDir = () => Promise.resolve(`${plainRoot}/p${plainCounter++}`);
const removeLocal = (path: string) => Deno.remove(path, { recursive: true }).catch(() => {});
const rsyncArgv = (dir: string) => [
  "rsync",
  "-a",
  "--delete",
  "--filter=:- .gitignore",
  ...TREE_EXCLUDES.map((p) => `--exclude=${p}`),
  "-e",
  sshE,
  `${sourceDir}/`,
  `${remote}:${dir}/`,
];

function row(
  samples: Samples,
  metric: string,
  ours: string,
  plain: string | undefined,
  extraFields: Partial<Row> = {},
): Row {
  const s = samples.get(ours)!;
  return {
    metric,
    ours: median(s),
    plain: plain === undefined ? undefined : median(samples.get(plain)!),
    spread: [quantile(s, 0.25), quantile(s, 0.75)],
    n: s.length,
    ...extraFields,
  };
}

function progress(group: string, runs: number) {
  return (round: number) => log(`  ${group}: round ${round + 1}/${runs} (load ${loadavg()})`);
}

async function createSdk(m: Manager = manager): Promise<string> {
  return (await m.create({ profile })).id;
}

async function destroyAll(ids: readonly string[]): Promise<void> {
  await Promise.all(ids.map((id) => manager.destroy(id)));
}

// ---------------------------------------------------------------- CLI start

if (groups.has("start")) {
  log("start: `sandboxer --version` vs `deno run` of an empty file");
  const timed = await hasGnuTime();
  if (!timed) log(`  ${TIME} is missing (Debian package "time"): peak memory is not measured`);
  const rss = new Map<string, number[]>();
  const probe = (name: string, script: string, args: string[] = []): Arm => ({
    name,
    async run() {
      const argv = [deno, ...cliFlags, `${ROOT}/${script}`, ...args];
      if (!timed) return (await runChild(argv, env)).ms;
      const result = await runChild([TIME, "-f", "%M", ...argv], env);
      const kb = Number(result.stderr.trim().split("\n").at(-1));
      rss.set(name, [...(rss.get(name) ?? []), kb / 1024]);
      return result.ms;
    },
  });
  const samples = await alternate(
    [
      probe("cli --version", "main.ts", ["--version"]),
      probe("deno empty", "bench/startup/empty.ts"),
    ],
    RUNS,
    progress("start", RUNS),
  );
  raw.start = samples;
  rows.push(
    row(samples, "CLI start: `sandboxer --version`", "cli --version", "deno empty", {
      plainLabel: "`deno run` empty file",
      target: 100,
      absolute: true,
    }),
  );
  if (timed) {
    const cliRss = rss.get("cli --version")!.slice(-RUNS);
    const emptyRss = rss.get("deno empty")!.slice(-RUNS);
    rows.push({
      metric: "CLI peak RSS: `sandboxer --version`",
      ours: median(cliRss),
      plain: median(emptyRss),
      plainLabel: "`deno run` empty file",
      unit: "MB",
      n: cliRss.length,
    });
  }

  log("start profile: module graph pieces, loaded with the CLI's flags");
  const pieces = await alternate(
    [
      probe("empty", "bench/startup/empty.ts"),
      probe("commander", "bench/startup/commander.ts"),
      probe("yaml", "bench/startup/yaml.ts"),
      probe("ssh2", "bench/startup/ssh2.ts"),
      probe("manager", "bench/startup/manager.ts"),
      probe("program", "bench/startup/program.ts"),
      probe("main --version", "main.ts", ["--version"]),
    ],
    RUNS,
    progress("start profile", RUNS),
  );
  raw.startProfile = pieces;
  const steps = new Map<string, number[]>();
  for (let i = 0; i < RUNS; i++) {
    const out = await runChild([deno, ...cliFlags, `${ROOT}/bench/startup/breakdown.ts`], env);
    for (const [k, v] of Object.entries(JSON.parse(out.stdout) as Record<string, number>)) {
      steps.set(k, [...(steps.get(k) ?? []), v]);
    }
  }
  for (const [k, v] of steps) {
    extra.push({ metric: `in-process import: ${k}`, ours: median(v), n: v.length });
  }
  for (const name of pieces.keys()) {
    extra.push({
      metric: `load ${name}`,
      ours: median(pieces.get(name)!),
      plain: median(pieces.get("empty")!),
      plainLabel: "empty",
      note: rss.has(name) ? `${median(rss.get(name)!.slice(-RUNS)).toFixed(1)} MB` : undefined,
    });
  }
}

// ---------------------------------------------------------------- exec

if (groups.has("exec")) {
  log("exec: `sandboxer exec ID -- true` vs `ssh … true`");
  const id = await createSdk();
  const samples = await alternate(
    [
      { name: "cli", run: async () => (await cliRun(["exec", id, "--", "true"])).ms },
      { name: "ssh", run: async () => (await runChild([...sshCmd, "true"])).ms },
      { name: "sdk warm", run: async () => void (await manager.exec(id, ["true"])) },
      {
        name: "sdk cold",
        async run() {
          await using m = await Manager.open({ stateDir: vm.env.SANDBOXER_HOME });
          await m.exec(id, ["true"]);
        },
      },
    ],
    RUNS,
    progress("exec", RUNS),
  );
  raw.exec = samples;
  await destroyAll([id]);
  const plain = { plainLabel: "`ssh … true`", target: 0.8 };
  rows.push(row(samples, "exec `true` — CLI process", "cli", "ssh", plain));
  rows.push(row(samples, "exec `true` — SDK, new Manager", "sdk cold", "ssh", plain));
  rows.push(row(samples, "exec `true` — SDK, warm Manager", "sdk warm", "ssh", plain));
}

// ---------------------------------------------------------------- create

if (groups.has("create")) {
  log("create: `sandboxer create` (attach + workspace) vs `ssh … mkdir`");
  const made: string[] = [];
  const samples = await alternate(
    [
      {
        name: "cli",
        async run() {
          const result = await cliRun(["create", "-p", profile, "--json"]);
          made.push(JSON.parse(result.stdout).id);
          return result.ms;
        },
      },
      {
        name: "ssh mkdir",
        prepare: plainDir,
        run: async (dir: string) => (await runChild([...sshCmd, "mkdir", dir])).ms,
        cleanup: removeLocal,
      },
      { name: "sdk warm", run: async () => void made.push(await createSdk()) },
      {
        name: "sdk cold",
        async run() {
          await using m = await Manager.open({ stateDir: vm.env.SANDBOXER_HOME });
          made.push(await createSdk(m));
        },
      },
    ],
    RUNS,
    progress("create", RUNS),
  );
  raw.create = samples;
  await destroyAll(made);
  const plain = { plainLabel: "`ssh … mkdir`", target: 1.0 };
  rows.push(row(samples, "create — CLI process", "cli", "ssh mkdir", plain));
  rows.push(row(samples, "create — SDK, new Manager", "sdk cold", "ssh mkdir", plain));
  rows.push(row(samples, "create — SDK, warm Manager", "sdk warm", "ssh mkdir", plain));
}

// ---------------------------------------------------------------- first sync

/** Write dirty pages back (sync(1)) so that writeback from one run does not slow the next. */
const flushDisk = async () => {
  await new Deno.Command("sync").output();
};

if (groups.has("sync")) {
  log(
    `first sync: ${tree.files} files / ${(tree.bytes / 1e6).toFixed(0)} MB into an empty workspace`,
  );
  const newSandbox = () => createSdk();
  const drop = (id: string) => manager.destroy(id).then(() => {});
  const samples = await alternate(
    [
      {
        name: "cli",
        prepare: newSandbox,
        run: async (id: string) => (await cliRun(["sync", id, "--repo", sourceDir])).ms,
        cleanup: drop,
      },
      {
        name: "sdk warm",
        prepare: newSandbox,
        run: async (id: string) => void (await manager.sync(id, { repo: sourceDir })),
        cleanup: drop,
      },
      {
        name: "rsync",
        async prepare() {
          const dir = await plainDir();
          await runChild([...sshCmd, "mkdir", dir]);
          return dir;
        },
        run: async (dir: string) => (await runChild(rsyncArgv(dir))).ms,
        cleanup: removeLocal,
      },
    ],
    RUNS,
    progress("first sync", RUNS),
    flushDisk,
  );
  raw.sync = samples;
  const plain = { plainLabel: "`rsync -a` over ssh", target: 0.6 };
  rows.push(row(samples, "first sync — CLI process (sandboxer sync)", "cli", "rsync", plain));
  rows.push(
    row(samples, "first sync — SDK, warm Manager (sandboxer sync)", "sdk warm", "rsync", plain),
  );
}

// ---------------------------------------------------------------- no-change re-sync

if (groups.has("resync")) {
  log("no-change re-sync");
  const id = await createSdk();
  await manager.sync(id, { repo: sourceDir });
  const dir = await plainDir();
  await runChild([...sshCmd, "mkdir", dir]);
  await runChild(rsyncArgv(dir));
  const samples = await alternate(
    [
      { name: "cli", run: async () => (await cliRun(["sync", id, "--repo", sourceDir])).ms },
      { name: "sdk warm", run: async () => void (await manager.sync(id, { repo: sourceDir })) },
      {
        name: "sdk cold",
        async run() {
          await using m = await Manager.open({ stateDir: vm.env.SANDBOXER_HOME });
          await m.sync(id, { repo: sourceDir });
        },
      },
      { name: "rsync", run: async () => (await runChild(rsyncArgv(dir))).ms },
    ],
    RUNS,
    progress("re-sync", RUNS),
    flushDisk,
  );
  raw.resync = samples;
  await destroyAll([id]);
  await removeLocal(dir);
  const plain = { plainLabel: "`rsync -a` over ssh", target: 1.05 };
  rows.push(row(samples, "no-change re-sync — CLI process", "cli", "rsync", plain));
  rows.push(row(samples, "no-change re-sync — SDK, new Manager", "sdk cold", "rsync", plain));
  rows.push(row(samples, "no-change re-sync — SDK, warm Manager", "sdk warm", "rsync", plain));
}

// ---------------------------------------------------------------- concurrent creates

if (groups.has("concurrent")) {
  log(`${CONCURRENCY} concurrent creates vs one create`);
  const made: string[] = [];
  const failures: string[] = [];
  const cliCreate = async () => {
    try {
      const result = await cliRun(["create", "-p", profile, "--json"]);
      made.push(JSON.parse(result.stdout).id);
    } catch (error) {
      failures.push((error as Error).message.split("\n")[0]);
    }
  };
  const plainMade: string[] = [];
  let sshFailures = 0;
  const sshMkdir = async () => {
    const dir = await plainDir();
    try {
      await runChild([...sshCmd, "mkdir", dir]);
      plainMade.push(dir);
    } catch {
      sshFailures++;
    }
  };
  const cleanup = async () => {
    await destroyAll(made.splice(0));
    await Promise.all(plainMade.splice(0).map(removeLocal));
  };
  const samples = await alternate(
    [
      { name: "cli 1", run: cliCreate, cleanup },
      { name: "ssh 1", run: sshMkdir, cleanup },
      {
        name: `ssh ${CONCURRENCY}`,
        run: () => Promise.all(Array.from({ length: CONCURRENCY }, sshMkdir)).then(() => {}),
        cleanup,
      },
      {
        name: `cli ${CONCURRENCY}`,
        run: () => Promise.all(Array.from({ length: CONCURRENCY }, cliCreate)).then(() => {}),
        cleanup,
      },
      {
        name: "sdk 1",
        async run() {
          await using m = await Manager.open({ stateDir: vm.env.SANDBOXER_HOME });
          made.push(await createSdk(m));
        },
        cleanup,
      },
      {
        name: `sdk ${CONCURRENCY}`,
        async run() {
          await using m = await Manager.open({ stateDir: vm.env.SANDBOXER_HOME });
          const ids = await Promise.all(Array.from({ length: CONCURRENCY }, () => createSdk(m)));
          made.push(...ids);
        },
        cleanup,
      },
    ],
    CONCURRENT_RUNS,
    progress("concurrent", CONCURRENT_RUNS),
  );
  raw.concurrent = samples;
  const note = failures.length ? `${failures.length} creates failed: ${failures[0]}` : undefined;
  rows.push(
    row(
      samples,
      `${CONCURRENCY} concurrent creates — CLI processes`,
      `cli ${CONCURRENCY}`,
      "cli 1",
      {
        plainLabel: "one CLI create",
        target: 4,
        note,
      },
    ),
  );
  rows.push(
    row(
      samples,
      `${CONCURRENCY} concurrent creates — SDK, one new Manager`,
      `sdk ${CONCURRENCY}`,
      "sdk 1",
      {
        plainLabel: "one SDK create (new Manager)",
        target: 4,
      },
    ),
  );
  rows.push(
    row(
      samples,
      `${CONCURRENCY} concurrent plain \`ssh … mkdir\` (reference, no sandboxer)`,
      `ssh ${CONCURRENCY}`,
      "ssh 1",
      {
        plainLabel: "one `ssh … mkdir`",
        note: sshFailures
          ? `${sshFailures} of the plain ssh runs failed (sshd MaxStartups drops; ssh does not retry)`
          : undefined,
      },
    ),
  );
  if (failures.length) log(`  ${failures.length} CLI creates failed, e.g. ${failures[0]}`);
}

// ---------------------------------------------------------------- report

say("");
say(
  `sandboxer benchmark — medians of ${RUNS} alternating runs per arm (${CONCURRENT_RUNS} for concurrency)`,
);
for (const [k, v] of Object.entries(info)) say(`  ${k}: ${v}`);
say(`  tree: ${tree.files} files, ${(tree.bytes / 1e6).toFixed(1)} MB (+${tree.leftOut} left out)`);
say(`  load average (1/5/15 min): ${loadBefore} before, ${loadavg()} after`);
say("");
say(textTable(rows));
for (const r of rows) if (r.note) say(`  note (${r.metric}): ${r.note}`);
if (extra.length) {
  say("");
  say("profile:");
  say(textTable(extra));
  for (const r of extra) if (r.note) say(`  ${r.metric}: peak RSS ${r.note}`);
}
say("");
say("Markdown:");
say("");
say(markdownTable(rows));
if (extra.length) {
  say("");
  say(markdownTable(extra));
}
if (flags.json) {
  const plainSamples = Object.fromEntries(
    Object.entries(raw).map(([group, samples]) => [group, Object.fromEntries(samples)]),
  );
  await Deno.writeTextFile(
    flags.json,
    JSON.stringify(
      { machine: info, load: [loadBefore, loadavg()], tree, rows, extra, samples: plainSamples },
      null,
      2,
    ),
  );
}
