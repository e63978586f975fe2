/**
 * `ext.vm-packer`, in two modes.
 *
 * - **attach** (the default): SSH to a pre-built VM (often through a
 *   reverse-tunnel port such as 12222, or a VM registered in the port
 *   registry and named by `target.vm`) and give each sandbox its own
 *   `<workspace.root>/sbx-<id>/`. Teardown removes that workspace only; the
 *   VM keeps running.
 * - **boot**: boot a throwaway VM on this machine from a Packer-built image
 *   on a copy-on-write overlay (boot/), with a per-sandbox host key pinned
 *   before the boot and an SSH port from the port registry. Teardown stops
 *   the VM through its QMP socket, deletes the overlay and releases the port.
 *
 * @module
 */

import { resolve } from "node:path";
import {
  ConfigError,
  HostKeyError,
  ImageError,
  SshError,
  TimeoutError,
  VmError,
} from "../../core/errors.ts";
import { isFile } from "../../core/fs.ts";
import { BootTimeoutError, errorText, SnapshotError } from "../../core/errors.ts";
import { defaultStateDir } from "../../core/paths.ts";
import { optionalEnv } from "../../core/permissions.ts";
import { openPortRegistry, type PortRegistry } from "../../core/ports/registry.ts";
import type { ConfigSchema, ConfigSource } from "../../config/types.ts";
import type { JsonObject } from "../../core/types.ts";
import { resolveSshConfig } from "../../config/ssh_config.ts";
import type { CreateContext, DestroyContext, OrphanReapContext } from "../types.ts";
import type { PoolEntryConfig } from "../base.ts";
import { SeededWorkspaceExtension } from "../ssh_workspace/seeded.ts";
import { newNonce, workspacePath, workspaceRootProblem } from "../ssh_workspace/workspace_path.ts";
import { generateKeyPair, publicKeyFingerprint, writeKnownHosts } from "../compose_ssh/keys.ts";
import { detectAccel } from "./boot/accel.ts";
import type { VmPackerConfig, VmPackerHandle } from "./config.ts";
import { reapVms, teardownVm } from "./boot/lifecycle.ts";
import { makeOverlay } from "./boot/overlay.ts";
import { launchQemu, runningQemu, socketAnswers } from "./boot/qemu.ts";
import { makeSeedDisk } from "./boot/seed.ts";
import { isNonce, makeVmDir, readMarker, VM_FILES, vmDirOf } from "./boot/vm_dir.ts";
import { IMAGE_FILES, type ImageInputs, imagesDir } from "./image/cache.ts";
import { findImage } from "./image/packer.ts";
import { consoleTail, step } from "./create_steps.ts";
import { checkPoolConfig, poolEntriesOf } from "./pool/config.ts";
import { createInPool, type PoolHooks, reapPoolLeases, releaseLease } from "./pool/place.ts";

/** Pause between SSH attempts while a VM boots. */
const BOOT_POLL_MS = 500;
/** What a guest runs to power off cleanly (installed by the templates; see docs/vm-boot.md). */
const POWEROFF_COMMAND = "/usr/local/sbin/sandboxer-poweroff";
/** Bound on reaching the guest and asking it to power off. */
const POWEROFF_SSH_MS = 5_000;
/** How long a guest that was asked gets before qemu is told to quit. */
const POWEROFF_WAIT_MS = 5_000;

/**
 * Workspaces on a pre-built VM reached over SSH.
 *
 * @example Profile
 * ```yaml
 * id: profile.vm-haskell-build
 * extension: ext.vm-packer
 * target: { host: 127.0.0.1, port: 12222, user: builder, identity_file: ~/.ssh/build_vm }
 * workspace: { root: /build }
 * ```
 */
export class VmPackerExtension extends SeededWorkspaceExtension<VmPackerConfig, VmPackerHandle> {
  /** The registration id. */
  readonly id: string = "ext.vm-packer";

  /**
   * Validate against the schema, then refuse workspace roots that are
   * relative, `/` or system directories.
   *
   * @param raw The profile's extension fields.
   * @param source Locations, for errors.
   * @param schema The registration's schema.
   * @returns The configuration.
   */
  override parseConfig(
    raw: JsonObject,
    source: ConfigSource,
    schema: ConfigSchema,
  ): VmPackerConfig {
    const config = super.parseConfig(raw, source, schema);
    if (config.targets !== undefined) checkPoolConfig(raw, config, source);
    if (config.mode === "boot") {
      for (const field of ["template", "base"] as const) {
        if (config.image[field] === undefined) {
          throw new ConfigError(
            source.locate("image"),
            `needs image.${field} in boot mode: ${
              field === "template"
                ? "the Packer template (legacy JSON) that provisions the image"
                : "the base disk (qcow2) the template starts from; tools/vm/make-base-image.sh makes one"
            }`,
          );
        }
      }
      if (config.target.host !== undefined || config.target.vm !== undefined) {
        throw new ConfigError(
          source.locate(config.target.host !== undefined ? "target.host" : "target.vm"),
          "does not apply in boot mode (the VM is booted on this machine, reached on a port from the port registry); remove it",
        );
      }
      const bad = config.image.variables.find((v) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(v));
      if (bad !== undefined) {
        throw new ConfigError(
          source.locate("image.variables"),
          `has ${JSON.stringify(bad)}; write each variable as NAME=value`,
        );
      }
    } else if (
      config.targets === undefined && config.target.host === undefined &&
      config.target.vm === undefined
    ) {
      throw new ConfigError(
        source.locate("target"),
        'needs target.host (or target.vm, a VM registered with "sandboxer ports register") in attach mode',
      );
    } else if (config.target.vm !== undefined && config.target.port !== undefined) {
      throw new ConfigError(
        source.locate("target.vm"),
        "cannot be set together with target.port: the registered VM's port is used; keep one",
      );
    }
    const problem = workspaceRootProblem(config.workspace.root);
    if (problem) throw new ConfigError(source.locate("workspace.root"), problem);
    // A missing key is a profile mistake: refuse it before anything is recorded.
    const key = config.target.identity_file;
    if (key !== undefined && !isFile(key)) {
      throw new ConfigError(
        source.locate("target.identity_file"),
        `no such file ${key}; give the path of the private key (e.g. ~/.ssh/id_ed25519), or leave the field out to use ssh-agent`,
        // The cause says it is this machine that lacks the file: `sandboxer profiles` lists
        // such a profile as well-formed but not ready, instead of as broken.
        { cause: new Deno.errors.NotFound(key) },
      );
    }
    return config;
  }

  /**
   * Resolve the target (OpenSSH config aliases included), connect, record
   * the handle, then make the workspace.
   *
   * @param ctx The create context.
   * @returns The handle.
   */
  override async create(ctx: CreateContext<VmPackerConfig>): Promise<VmPackerHandle> {
    if (ctx.config.mode === "boot") return await this.#createBoot(ctx);
    if (ctx.config.targets) {
      const only = ctx.fromSnapshot === undefined ? undefined : await this.#holding(ctx);
      return await createInPool(this.#poolHooks(), ctx, only);
    }
    return await this.makeWorkspace(ctx, (await this.handleForProfile(ctx.config, ctx.id))!);
  }

  /**
   * Attach mode: remove the workspace (and release a pooled sandbox's lease). Boot mode: power the VM off (over SSH
   * when the guest offers it, else through qemu's QMP socket), release its
   * port and delete its directory with the overlay; the workspace goes with
   * the VM.
   *
   * @param handle The stored handle.
   * @param context The record's id.
   */
  override async destroy(handle: VmPackerHandle, context?: DestroyContext): Promise<void> {
    const id = context?.id ?? handle.workspace.slice(handle.workspace.lastIndexOf("/sbx-") + 5);
    if (handle.mode !== "boot") {
      await super.destroy(handle, context);
      // A pooled sandbox: its slot is free once its workspace is gone.
      return await releaseLease(this.#poolHooks(), handle, id);
    }
    const dir = vmDirOf(this.#stateDir(), id);
    const nonce = handle.vm_nonce;
    if (!isNonce(nonce) || (handle.vm_dir !== undefined && handle.vm_dir !== dir)) {
      throw new VmError(
        id,
        `has a handle that is not one sandboxer recorded (vm_dir ${
          JSON.stringify(handle.vm_dir)
        }, expected ${dir}); nothing was stopped or removed — inspect the record with "sandboxer show ${id}"`,
      );
    }
    if ((await readMarker(dir))?.nonce === nonce) await this.#poweroffOverSsh(handle, dir);
    await this.close(); // pooled connections to the VM go with it
    const done = await teardownVm(dir, id, nonce, this.#ports(), this.logger);
    if (done.length) this.logger.debug(`VM of ${id}: ${done.join(", ")}`);
  }

  /**
   * Ask the guest to power itself off (`sudo -n /usr/local/sbin/sandboxer-poweroff`, which the
   * repository's templates install: sync, then power off) and give it a few seconds. Best effort:
   * a guest without it, or one that does not answer, is stopped through QMP by the caller.
   */
  async #poweroffOverSsh(handle: VmPackerHandle, dir: string): Promise<void> {
    const qmp = `${dir}/${VM_FILES.qmp}`;
    if (!(await socketAnswers(qmp))) return;
    try {
      await this.withTimeout("power the VM off over SSH", POWEROFF_SSH_MS, async (signal) => {
        const quick = { ...handle, connect_timeout_ms: POWEROFF_SSH_MS };
        const connection = await this.connect(quick, signal);
        // The guest powers off mid-command: the channel may end without an exit status.
        await connection.run(["sudo", "-n", POWEROFF_COMMAND], { signal }).catch(() => {});
      });
    } catch (error) {
      this.logger.debug(`no poweroff over SSH: ${error instanceof Error ? error.message : error}`);
    }
    const deadline = Date.now() + POWEROFF_WAIT_MS;
    while (Date.now() < deadline) {
      if (!(await socketAnswers(qmp))) {
        this.logger.debug(`the VM in ${dir} powered itself off`);
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * For `gc`: reap seeds, and stop and remove VMs whose sandbox record is gone (or holds another VM).
   *
   * @param ctx The journal's view.
   * @returns One line per seed or VM reaped.
   */
  override async reapOrphans(ctx: OrphanReapContext): Promise<string[]> {
    return [
      ...await super.reapOrphans(ctx),
      ...await reapVms({
        vmsDir: `${resolve(ctx.stateDir)}/vms`,
        ports: openPortRegistry(resolve(ctx.stateDir), optionalEnv("SANDBOXER_PORT_RANGE")),
        liveHandle: ctx.liveHandle,
        logger: this.logger,
      }),
    ];
  }

  /**
   * The image inputs of a boot-mode config.
   *
   * @param config The parsed config.
   * @returns The inputs.
   */
  static imageInputs(config: VmPackerConfig): ImageInputs {
    if (config.mode !== "boot" || !config.image.template || !config.image.base) {
      throw new ImageError(
        "of this profile",
        "cannot be built: the profile is not in boot mode (mode: boot, image.template, image.base)",
      );
    }
    return {
      template: resolve(config.image.template),
      base: resolve(config.image.base),
      kernel: resolve(config.image.kernel),
      initrd: resolve(config.image.initrd),
      variables: config.image.variables,
    };
  }

  /**
   * A pool profile's hosts, each as a single-target config (see pool/config.ts).
   *
   * @param config The parsed config.
   * @returns The entries, or undefined without `targets`.
   */
  override poolEntries(config: VmPackerConfig): PoolEntryConfig<VmPackerConfig>[] | undefined {
    return poolEntriesOf(config);
  }

  /**
   * Reclaim one pool host's dead leases (`gc --target`).
   *
   * @param entry The host.
   * @param options Abort signal.
   * @returns The slots reaped and those live.
   */
  override async reapLeases(
    entry: PoolEntryConfig<VmPackerConfig>,
    options: { signal?: AbortSignal },
  ): Promise<{ reaped: string[]; live: string[] }> {
    return await reapPoolLeases(this.#poolHooks(), entry.config, options.signal);
  }

  /** What placing in a pool (pool/place.ts) needs of this extension. */
  #poolHooks(): PoolHooks {
    return {
      logger: this.logger,
      handleFor: async (config, id) => (await this.handleForProfile(config, id))!,
      connect: (handle, signal) =>
        this.connect(handle, signal, this.options.acceptNewHostKey ?? false),
      makeWorkspace: (ctx, handle) => this.makeWorkspace(ctx, handle),
    };
  }

  /**
   * `create --from-snapshot` with a pool: the entries whose host keeps a usable snapshot of that
   * name (an unreachable host is left out); the sandbox is placed on one of them.
   */
  async #holding(ctx: CreateContext<VmPackerConfig>): Promise<Set<number>> {
    const name = ctx.fromSnapshot!;
    const holding = new Set<number>();
    for (const [index, entry] of (this.poolEntries(ctx.config) ?? []).entries()) {
      const options = { stateDir: ctx.stateDir ?? this.#stateDir(), signal: ctx.signal };
      const scans = await this.snapshots(entry.config, options).catch((error) => {
        ctx.signal?.throwIfAborted();
        this.logger.warn(`skipped pool host ${entry.label}: ${errorText(error)}`);
        return [];
      });
      const now = Date.now();
      if (
        scans.some((s) => s.snapshots.some((x) => x.name === name && Date.parse(x.expires) > now))
      ) {
        holding.add(index);
      }
    }
    if (holding.size === 0) {
      throw new SnapshotError(
        name,
        'is on no reachable host of the pool for this user and root; list them with "sandboxer snapshot list PROFILE"',
      );
    }
    return holding;
  }

  #stateDir(): string {
    return resolve(this.options.stateDir ?? defaultStateDir());
  }

  #ports(): PortRegistry {
    return openPortRegistry(this.#stateDir(), optionalEnv("SANDBOXER_PORT_RANGE"));
  }

  /** Boot mode: record, make the VM directory, lease a port, keys, seed, overlay, boot, wait. */
  async #createBoot(ctx: CreateContext<VmPackerConfig>): Promise<VmPackerHandle> {
    const { config } = ctx;
    const stateDir = resolve(ctx.stateDir ?? this.#stateDir());
    const dir = vmDirOf(stateDir, ctx.id);
    await step(ctx, "image");
    const images = imagesDir(stateDir, optionalEnv("SANDBOXER_IMAGES"));
    const { image, key } = await findImage(VmPackerExtension.imageInputs(config), {
      images,
      signal: ctx.signal,
    });
    if (!image) {
      const name = ctx.profileId.replace(/^profile\./, "");
      throw new ImageError(
        `for profile ${name}`,
        `is not built for its current inputs (key ${
          key.slice(0, 12)
        }); run "sandboxer image build --profile ${name}" first`,
      );
    }
    const nonce = newNonce();
    const user = config.target.user ?? "builder";
    let handle: VmPackerHandle = {
      vm_target: `${user}@127.0.0.1`,
      ssh_port: 0,
      workspace: workspacePath(config.workspace.root, ctx.id),
      host_key_fingerprint: null,
      identity_file: `${dir}/${VM_FILES.userKey}`,
      known_hosts: `${dir}/${VM_FILES.knownHosts}`,
      passphrase_env: null,
      jump: null,
      connect_timeout_ms: config.target.connect_timeout * 1000,
      keepalive_interval_ms: config.target.keepalive_interval * 1000,
      mode: "boot",
      vm_dir: dir,
      vm_nonce: nonce,
      image_key: image.manifest.key,
    };
    // Recorded before the first side effect: whatever a kill leaves, the handle finds it.
    await ctx.recordHandle(handle);
    await step(ctx, "vm-dir");
    await makeVmDir(dir, { id: ctx.id, nonce, created_at: new Date().toISOString() });
    await step(ctx, "port");
    const lease = await this.#ports().allocate(ctx.id, nonce);
    handle = { ...handle, ssh_port: lease.port };
    await ctx.recordHandle(handle);
    await step(ctx, "keys");
    const hostKey = await generateKeyPair(`${dir}/${VM_FILES.hostKey}`, `sbx-${ctx.id} host`);
    const userKey = await generateKeyPair(`${dir}/${VM_FILES.userKey}`, `sandboxer sbx-${ctx.id}`);
    await writeKnownHosts(handle.known_hosts, "127.0.0.1", lease.port, hostKey);
    handle = { ...handle, host_key_fingerprint: publicKeyFingerprint(hostKey) };
    await ctx.recordHandle(handle);
    await step(ctx, "seed");
    await makeSeedDisk(`${dir}/${VM_FILES.seed}`, {
      hostKey: await Deno.readTextFile(`${dir}/${VM_FILES.hostKey}`),
      hostKeyPub: hostKey.line + "\n",
      authorizedKeys: userKey.line + "\n",
      loginUser: user,
    }, ctx.signal);
    await step(ctx, "overlay");
    await makeOverlay(`${image.dir}/${IMAGE_FILES.disk}`, `${dir}/${VM_FILES.overlay}`, ctx.signal);
    await step(ctx, "boot");
    const accel = await detectAccel(config.vm.accel, (why) => this.logger.warn(why));
    this.logger.info(
      `booting a VM for ${ctx.id} (${accel}, ${config.vm.cpus} CPUs, ${config.vm.memory} MiB, ssh on 127.0.0.1:${lease.port})`,
    );
    await launchQemu(ctx.id, {
      dir,
      kernel: `${image.dir}/${IMAGE_FILES.kernel}`,
      initrd: `${image.dir}/${IMAGE_FILES.initrd}`,
      append: config.vm.append,
      accel,
      cpus: config.vm.cpus,
      memoryMiB: config.vm.memory,
      sshPort: lease.port,
    }, ctx.signal);
    await step(ctx, "wait-ssh");
    await this.#waitForBoot(ctx, handle, dir);
    // The workspace steps (connect, workspace) honour the test hold too.
    return await this.makeWorkspace({ ...ctx, step: (name) => step(ctx, name) }, handle);
  }

  /** Try SSH (pinned key) until it answers, qemu exits, or vm.boot_timeout passes. */
  async #waitForBoot(
    ctx: CreateContext<VmPackerConfig>,
    handle: VmPackerHandle,
    dir: string,
  ): Promise<void> {
    const timeoutMs = ctx.config.vm.boot_timeout * 1000;
    const started = performance.now();
    const deadline = started + timeoutMs;
    let lastError: unknown;
    for (let left = timeoutMs; left > 0; left = deadline - performance.now()) {
      ctx.signal?.throwIfAborted();
      const probe = {
        ...handle,
        connect_timeout_ms: Math.max(1, Math.min(handle.connect_timeout_ms, left)),
      };
      try {
        await this.withTimeout(
          `reach the VM of ${ctx.id}`,
          Math.max(1, left),
          (signal) => this.connect(probe, signal, false),
          ctx.signal,
        );
        this.logger.info(
          `VM of ${ctx.id} answered SSH after ${
            Math.round((performance.now() - started) / 100) / 10
          }s`,
        );
        return;
      } catch (error) {
        if (ctx.signal?.aborted) throw error;
        if (error instanceof HostKeyError) {
          throw new VmError(
            ctx.id,
            `offers host key ${error.fingerprint}, not the one sandboxer put on its seed disk (${handle.host_key_fingerprint}); the image must run /sbin/sandboxer-init (see docs/vm-boot.md)`,
            { cause: error },
          );
        }
        if (!(error instanceof SshError || error instanceof TimeoutError)) throw error;
        lastError = error;
      }
      if (await runningQemu(dir) === undefined) {
        throw new VmError(
          ctx.id,
          `stopped during boot; its console's last lines: ${
            (await consoleTail(dir)).join(" | ") || "none"
          }`,
          { cause: lastError },
        );
      }
      await new Promise((r) =>
        setTimeout(r, Math.min(BOOT_POLL_MS, Math.max(0, deadline - performance.now())))
      );
    }
    throw new BootTimeoutError(ctx.id, ctx.config.vm.boot_timeout, await consoleTail(dir), {
      cause: lastError,
    });
  }

  /**
   * The handle of sandbox `id` on the configured target (OpenSSH config
   * aliases resolved), before anything is connected or made.
   *
   * @param config The profile's parsed config.
   * @param id The sandbox id.
   * @returns The handle, without a host key yet.
   */
  protected override async handleForProfile(
    config: VmPackerConfig,
    id: string,
  ): Promise<VmPackerHandle | undefined> {
    const { target, workspace } = config;
    // A throwaway VM has no fixed target: gc --target does not apply.
    if (config.mode === "boot") return undefined;
    const home = optionalEnv("HOME");
    // Without a readable $HOME (narrow permissions) the default config is simply not consulted.
    const sshConfig = target.ssh_config ?? (home ? `${home}/.ssh/config` : undefined);
    const targetHost = target.host ?? "127.0.0.1";
    const resolved = sshConfig
      ? await resolveSshConfig(targetHost, { file: sshConfig, home: home ?? "/" })
      : {};
    const host = resolved.hostName ?? targetHost;
    // A registered VM (a build VM behind a reverse tunnel) has its port in the port registry.
    const registered = target.vm === undefined ? undefined : await this.#ports().portOf(target.vm);
    const port = registered ?? target.port ?? resolved.port ?? 22;
    const user = target.user ?? resolved.user ?? optionalEnv("USER") ?? "root";
    const identity = target.identity_file ?? resolved.identityFile?.[0] ?? null;
    let jump: string | null = null;
    if (resolved.proxyJump) {
      const spec = resolved.proxyJump.split(",")[0];
      const match = /^(?:([^@]+)@)?([^:]+)(?::(\d+))?$/.exec(spec);
      if (match) {
        const hop = sshConfig
          ? await resolveSshConfig(match[2], { file: sshConfig, home: home ?? "/" })
          : {};
        jump = `${match[1] ?? hop.user ?? user}@${hop.hostName ?? match[2]}:${
          match[3] ?? hop.port ?? 22
        }`;
      }
    }
    return {
      vm_target: `${user}@${host}`,
      ssh_port: port,
      workspace: workspacePath(workspace.root, id),
      host_key_fingerprint: null,
      identity_file: identity,
      known_hosts: target.known_hosts,
      passphrase_env: target.passphrase_env ?? null,
      jump,
      connect_timeout_ms: target.connect_timeout * 1000,
      keepalive_interval_ms: target.keepalive_interval * 1000,
    };
  }
}
