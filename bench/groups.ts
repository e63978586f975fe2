/**
 * The benchmark's groups, each comparing sandboxer with the plain tool on one
 * host ({@linkcode BenchContext}): exec, create, first sync, no-change re-sync
 * and concurrent creates. `bench/bench.ts` runs them on each link and prints
 * the table.
 *
 * @module
 */

import { Manager } from "../mod.ts";
import { strictSshArgs } from "../tests/harness/sshd.ts";
import { sandboxerTaskArgv } from "../tests/helpers.ts";
import { alternate, median, quantile, type Row, runChild, type Samples } from "./lib.ts";
import {
  cliRun,
  cliRunUnshared,
  emptyRsyncArm,
  flushDisk,
  plainDir,
  removeLocal,
  rsyncArgv,
} from "./arms.ts";
import type { BenchHost } from "./link.ts";
import { TREE_EXCLUDES } from "./tree.ts";

/** What every group needs: the host, a profile for it, the CLI and the plain tools' argv. */
export interface BenchContext {
  readonly host: BenchHost;
  /** Profile file (ext.vm-packer) pointing at the host. */
  readonly profile: string;
  /** Environment of every CLI process. */
  readonly env: Record<string, string>;
  /** `deno run <task flags> main.ts`. */
  readonly cli: readonly string[];
  /** `ssh <strict options> user@host` (append the remote command). */
  readonly sshCmd: readonly string[];
  /** rsync's `-e`: the same ssh without the destination. */
  readonly sshE: string;
  /** `user@host`. */
  readonly remote: string;
  /** Where the plain tools' directories go (owned by the login user). */
  readonly plainRoot: string;
  /** The profile's workspace root on the host. */
  readonly workspaceRoot: string;
  /** The tree to sync. */
  readonly sourceDir: string;
  /** Kept open for the whole run ("SDK, warm Manager"). */
  readonly manager: Manager;
  /** Timed runs per arm. */
  readonly runs: number;
  /** Progress lines (stderr). */
  log(text: string): void;
}

/** Rows and raw samples of one group. */
export interface GroupResult {
  rows: Row[];
  samples: Samples;
}

/**
 * Set up the profile, plain directory and warm Manager for `host`.
 *
 * @param host The host.
 * @param options Workspace root override, tree, runs and logger.
 * @returns The context; dispose it to close the Manager.
 */
export async function benchContext(
  host: BenchHost,
  options: { workspaceRoot?: string; sourceDir: string; runs: number; log(text: string): void },
): Promise<BenchContext & AsyncDisposable> {
  const profile = `${host.dir}/bench.yaml`;
  await Deno.writeTextFile(
    profile,
    [
      "id: profile.bench",
      "extension: ext.vm-packer",
      "target:",
      `  host: ${host.host}`,
      `  port: ${host.port}`,
      `  user: ${host.user}`,
      `  identity_file: ${host.identityFile}`,
      `  known_hosts: ${host.knownHostsFile}`,
      "workspace:",
      `  root: ${options.workspaceRoot ?? host.root}`,
      "sync:",
      `  exclude: [${TREE_EXCLUDES.join(", ")}]`,
      "",
    ].join("\n"),
  );
  const ssh = strictSshArgs({
    destination: `${host.user}@${host.host}`,
    port: host.port,
    identityFile: host.identityFile,
    knownHostsFile: host.knownHostsFile,
  });
  const plainRoot = `${options.workspaceRoot ?? host.root}/../plain-${host.key}`;
  await Deno.mkdir(plainRoot);
  await new Deno.Command("chown", { args: [host.user, plainRoot] }).output();
  const manager = await Manager.open({ stateDir: host.env.SANDBOXER_HOME });
  return {
    host,
    profile,
    env: { ...host.env, NO_COLOR: "1" },
    cli: await sandboxerTaskArgv(),
    sshCmd: ["ssh", ...ssh],
    sshE: ["ssh", ...ssh.slice(0, -1)].join(" "),
    remote: `${host.user}@${host.host}`,
    plainRoot,
    workspaceRoot: options.workspaceRoot ?? host.root,
    sourceDir: options.sourceDir,
    manager,
    runs: options.runs,
    log: options.log,
    async [Symbol.asyncDispose]() {
      await manager.close();
      await Deno.remove(plainRoot, { recursive: true }).catch(() => {});
    },
  };
}

const createSdk = async (ctx: BenchContext, m: Manager = ctx.manager) =>
  (await m.create({ profile: ctx.profile })).id;
const destroyAll = (ctx: BenchContext, ids: readonly string[]) =>
  Promise.all(ids.map((id) => ctx.manager.destroy(id))).then(() => {});
const coldManager = (ctx: BenchContext) => Manager.open({ stateDir: ctx.host.env.SANDBOXER_HOME });

/**
 * One table row from a group's samples; the metric names the link unless it is loopback.
 *
 * @param ctx The context (for the link label).
 * @param samples The group's samples.
 * @param metric What is measured.
 * @param ours Arm name of sandboxer's side.
 * @param plain Arm name of the plain tool, if any.
 * @param extra Further fields (label, target, note).
 * @returns The row.
 */
export function row(
  ctx: Pick<BenchContext, "host">,
  samples: Samples,
  metric: string,
  ours: string,
  plain: string | undefined,
  extra: Partial<Row> = {},
): Row {
  const s = samples.get(ours)!;
  return {
    metric: ctx.host.key === "loopback" ? metric : `[${ctx.host.label}] ${metric}`,
    ours: median(s),
    plain: plain === undefined ? undefined : median(samples.get(plain)!),
    spread: [quantile(s, 0.25), quantile(s, 0.75)],
    n: s.length,
    ...extra,
  };
}

/** A progress callback for {@linkcode alternate}. */
export function progress(ctx: Pick<BenchContext, "log">, group: string, runs: number) {
  return (round: number) => ctx.log(`  ${group}: round ${round + 1}/${runs}`);
}

/**
 * `sandboxer exec ID -- true` against `ssh … true`: the CLI with its shared
 * connection already up (as a second exec finds it), without sharing, and
 * the SDK.
 *
 * @param ctx The context.
 * @param cliTarget The CLI's target ratio on this link.
 * @returns Rows and samples.
 */
export async function execGroup(ctx: BenchContext, cliTarget: number): Promise<GroupResult> {
  ctx.log(`exec (${ctx.host.label}): \`sandboxer exec ID -- true\` vs \`ssh … true\``);
  const id = await createSdk(ctx);
  // The shared connection's master is up, as a second exec finds it (it stays 60 s idle).
  await cliRun(ctx, ["exec", id, "--", "true"]);
  const samples = await alternate(
    [
      { name: "cli", run: async () => (await cliRun(ctx, ["exec", id, "--", "true"])).ms },
      {
        name: "cli unshared",
        run: async () => (await cliRunUnshared(ctx, ["exec", id, "--", "true"])).ms,
      },
      { name: "ssh", run: async () => (await runChild([...ctx.sshCmd, "true"])).ms },
      { name: "sdk warm", run: async () => void (await ctx.manager.exec(id, ["true"])) },
      {
        name: "sdk cold",
        async run() {
          await using m = await coldManager(ctx);
          await m.exec(id, ["true"]);
        },
      },
    ],
    ctx.runs,
    progress(ctx, "exec", ctx.runs),
  );
  await destroyAll(ctx, [id]);
  const plain = { plainLabel: "`ssh … true`" };
  return {
    samples,
    rows: [
      row(ctx, samples, "exec `true` — CLI process, shared connection up", "cli", "ssh", {
        ...plain,
        target: cliTarget,
      }),
      row(ctx, samples, "exec `true` — CLI process, SANDBOXER_SSH_MUX=0", "cli unshared", "ssh", {
        ...plain,
      }),
      row(ctx, samples, "exec `true` — SDK, new Manager", "sdk cold", "ssh", {
        ...plain,
        target: 0.8,
      }),
      row(ctx, samples, "exec `true` — SDK, warm Manager", "sdk warm", "ssh", {
        ...plain,
        target: 0.8,
      }),
    ],
  };
}

/**
 * `sandboxer create` (attach + workspace) against `ssh … mkdir`.
 *
 * @param ctx The context.
 * @returns Rows and samples.
 */
export async function createGroup(ctx: BenchContext): Promise<GroupResult> {
  ctx.log(`create (${ctx.host.label}): \`sandboxer create\` vs \`ssh … mkdir\``);
  const made: string[] = [];
  const cliCreate = (result: Awaited<ReturnType<typeof cliRun>>) => {
    made.push(JSON.parse(result.stdout).id);
    return result.ms;
  };
  const args = ["create", "-p", ctx.profile, "--json"];
  const samples = await alternate(
    [
      // The first create of a script leaves the shared connection up; later ones run over it.
      { name: "cli", run: async () => cliCreate(await cliRun(ctx, args)) },
      { name: "cli unshared", run: async () => cliCreate(await cliRunUnshared(ctx, args)) },
      {
        name: "ssh mkdir",
        prepare: () => plainDir(ctx),
        run: async (dir: string) => (await runChild([...ctx.sshCmd, "mkdir", dir])).ms,
        cleanup: removeLocal,
      },
      { name: "sdk warm", run: async () => void made.push(await createSdk(ctx)) },
      {
        name: "sdk cold",
        async run() {
          await using m = await coldManager(ctx);
          made.push(await createSdk(ctx, m));
        },
      },
    ],
    ctx.runs,
    progress(ctx, "create", ctx.runs),
  );
  await destroyAll(ctx, made);
  const plain = { plainLabel: "`ssh … mkdir`", target: 1.0 };
  return {
    samples,
    rows: [
      row(ctx, samples, "create — CLI process, shared connection up", "cli", "ssh mkdir", plain),
      row(ctx, samples, "create — CLI process, SANDBOXER_SSH_MUX=0", "cli unshared", "ssh mkdir", {
        plainLabel: plain.plainLabel,
      }),
      row(ctx, samples, "create — SDK, new Manager", "sdk cold", "ssh mkdir", plain),
      row(ctx, samples, "create — SDK, warm Manager", "sdk warm", "ssh mkdir", plain),
    ],
  };
}

/**
 * The first sync of the tree into an empty workspace against `rsync -a` into an empty directory.
 *
 * @param ctx The context.
 * @param what The tree, for the progress line.
 * @param target The target ratio on this link, or why there is none (printed as the note).
 * @returns Rows and samples.
 */
export async function firstSyncGroup(
  ctx: BenchContext,
  what: string,
  target: number | string,
): Promise<GroupResult> {
  ctx.log(`first sync (${ctx.host.label}): ${what} into an empty workspace`);
  const newSandbox = () => createSdk(ctx);
  const drop = (id: string) => ctx.manager.destroy(id).then(() => {});
  // The same empty workspace without its fresh-workspace note: the first sync is rsync's (the
  // path before tar), to show what the tar stream gains.
  const newSandboxForRsync = async () => {
    const record = await ctx.manager.create({ profile: ctx.profile });
    const nonce = (record.handle as { nonce?: string } | null)?.nonce ?? "legacy";
    await Deno.remove(`${ctx.host.env.SANDBOXER_HOME}/fresh/${record.id}.${nonce}`);
    return record.id;
  };
  // As in a script: `sandboxer create`, then `sandboxer sync` over the connection it left up.
  const newCliSandbox = async () =>
    JSON.parse((await cliRun(ctx, ["create", "-p", ctx.profile, "--json"])).stdout).id as string;
  const syncAlone = async (id: string) =>
    (await cliRunUnshared(ctx, ["sync", id, "--repo", ctx.sourceDir])).ms;
  const samples = await alternate(
    [
      {
        name: "cli",
        prepare: newCliSandbox,
        run: async (id: string) => (await cliRun(ctx, ["sync", id, "--repo", ctx.sourceDir])).ms,
        cleanup: drop,
      },
      { name: "cli unshared", prepare: newSandbox, run: syncAlone, cleanup: drop },
      { name: "cli rsync path", prepare: newSandboxForRsync, run: syncAlone, cleanup: drop },
      {
        name: "sdk warm",
        prepare: newSandbox,
        run: async (id: string) => void (await ctx.manager.sync(id, { repo: ctx.sourceDir })),
        cleanup: drop,
      },
      emptyRsyncArm(ctx, "rsync"),
    ],
    ctx.runs,
    progress(ctx, "first sync", ctx.runs),
    flushDisk,
  );
  const plain = typeof target === "number"
    ? { plainLabel: "`rsync -a` over ssh", target }
    : { plainLabel: "`rsync -a` over ssh", note: target };
  return {
    samples,
    rows: [
      row(
        ctx,
        samples,
        "first sync — CLI process (sandboxer sync after sandboxer create)",
        "cli",
        "rsync",
        plain,
      ),
      row(
        ctx,
        samples,
        "first sync — CLI process, SANDBOXER_SSH_MUX=0",
        "cli unshared",
        "rsync",
        { plainLabel: plain.plainLabel },
      ),
      row(
        ctx,
        samples,
        "first sync — CLI by its rsync path (no tar, SANDBOXER_SSH_MUX=0), for comparison",
        "cli rsync path",
        "rsync",
      ),
      row(ctx, samples, "first sync — SDK, warm Manager", "sdk warm", "rsync", plain),
    ],
  };
}

/**
 * A re-sync with nothing changed against the same `rsync -a` again.
 *
 * @param ctx The context.
 * @returns Rows and samples.
 */
export async function resyncGroup(ctx: BenchContext): Promise<GroupResult> {
  ctx.log(`no-change re-sync (${ctx.host.label})`);
  const id = await createSdk(ctx);
  await ctx.manager.sync(id, { repo: ctx.sourceDir });
  const dir = await plainDir(ctx);
  await runChild([...ctx.sshCmd, "mkdir", dir]);
  await runChild(rsyncArgv(ctx, dir));
  // The shared connection's master is up, as after the `create` of a script (it stays 60 s idle).
  await cliRun(ctx, ["exec", id, "--", "true"]);
  const samples = await alternate(
    [
      {
        name: "cli",
        run: async () => (await cliRun(ctx, ["sync", id, "--repo", ctx.sourceDir])).ms,
      },
      {
        name: "cli unshared",
        run: async () => (await cliRunUnshared(ctx, ["sync", id, "--repo", ctx.sourceDir])).ms,
      },
      {
        name: "sdk warm",
        run: async () => void (await ctx.manager.sync(id, { repo: ctx.sourceDir })),
      },
      {
        name: "sdk cold",
        async run() {
          await using m = await coldManager(ctx);
          await m.sync(id, { repo: ctx.sourceDir });
        },
      },
      { name: "rsync", run: async () => (await runChild(rsyncArgv(ctx, dir))).ms },
    ],
    ctx.runs,
    progress(ctx, "re-sync", ctx.runs),
    flushDisk,
  );
  await destroyAll(ctx, [id]);
  await removeLocal(dir);
  const plain = { plainLabel: "`rsync -a` over ssh", target: 1.05 };
  return {
    samples,
    rows: [
      row(
        ctx,
        samples,
        "no-change re-sync — CLI process, shared connection up",
        "cli",
        "rsync",
        plain,
      ),
      row(
        ctx,
        samples,
        "no-change re-sync — CLI process, SANDBOXER_SSH_MUX=0",
        "cli unshared",
        "rsync",
        {
          plainLabel: plain.plainLabel,
        },
      ),
      row(ctx, samples, "no-change re-sync — SDK, new Manager", "sdk cold", "rsync", plain),
      row(ctx, samples, "no-change re-sync — SDK, warm Manager", "sdk warm", "rsync", plain),
    ],
  };
}

/**
 * `concurrency` creates at once against one, for the CLI, the SDK and plain `ssh … mkdir`.
 *
 * @param ctx The context.
 * @param concurrency How many at once.
 * @param runs Timed runs per arm (fewer than the other groups: each is expensive).
 * @returns Rows and samples.
 */
export async function concurrentGroup(
  ctx: BenchContext,
  concurrency: number,
  runs: number,
): Promise<GroupResult> {
  ctx.log(`${concurrency} concurrent creates vs one create (${ctx.host.label})`);
  const made: string[] = [];
  const failures: string[] = [];
  const cliCreate = async () => {
    try {
      const result = await cliRun(ctx, ["create", "-p", ctx.profile, "--json"]);
      made.push(JSON.parse(result.stdout).id);
    } catch (error) {
      failures.push((error as Error).message.split("\n")[0]);
    }
  };
  const plainMade: string[] = [];
  let sshFailures = 0;
  const sshMkdir = async () => {
    const dir = await plainDir(ctx);
    try {
      await runChild([...ctx.sshCmd, "mkdir", dir]);
      plainMade.push(dir);
    } catch {
      sshFailures++;
    }
  };
  const cleanup = async () => {
    await destroyAll(ctx, made.splice(0));
    await Promise.all(plainMade.splice(0).map(removeLocal));
  };
  const many = <T>(fn: () => Promise<T>) =>
    Promise.all(Array.from({ length: concurrency }, fn)).then(() => {});
  const samples = await alternate(
    [
      { name: "cli 1", run: cliCreate, cleanup },
      { name: "ssh 1", run: sshMkdir, cleanup },
      { name: `ssh ${concurrency}`, run: () => many(sshMkdir), cleanup },
      { name: `cli ${concurrency}`, run: () => many(cliCreate), cleanup },
      {
        name: "sdk 1",
        async run() {
          await using m = await coldManager(ctx);
          made.push(await createSdk(ctx, m));
        },
        cleanup,
      },
      {
        name: `sdk ${concurrency}`,
        async run() {
          await using m = await coldManager(ctx);
          made.push(
            ...await Promise.all(Array.from({ length: concurrency }, () => createSdk(ctx, m))),
          );
        },
        cleanup,
      },
    ],
    runs,
    progress(ctx, "concurrent", runs),
  );
  if (failures.length) ctx.log(`  ${failures.length} CLI creates failed, e.g. ${failures[0]}`);
  return {
    samples,
    rows: [
      row(
        ctx,
        samples,
        `${concurrency} concurrent creates — CLI processes`,
        `cli ${concurrency}`,
        "cli 1",
        {
          plainLabel: "one CLI create",
          target: 4,
          note: failures.length ? `${failures.length} creates failed: ${failures[0]}` : undefined,
        },
      ),
      row(
        ctx,
        samples,
        `${concurrency} concurrent creates — SDK, one new Manager`,
        `sdk ${concurrency}`,
        "sdk 1",
        {
          plainLabel: "one SDK create (new Manager)",
          target: 4,
        },
      ),
      row(
        ctx,
        samples,
        `${concurrency} concurrent plain \`ssh … mkdir\` (reference, no sandboxer)`,
        `ssh ${concurrency}`,
        "ssh 1",
        {
          plainLabel: "one `ssh … mkdir`",
          note: sshFailures
            ? `${sshFailures} of the plain ssh runs failed (sshd MaxStartups drops; ssh does not retry)`
            : undefined,
        },
      ),
    ],
  };
}
