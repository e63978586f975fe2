/**
 * The types of `ext.vm-packer`: a profile's validated configuration and the
 * destroy handle it records (attach mode, plus the VM in boot mode).
 *
 * @module
 */

import type { SshWorkspaceHandle } from "../ssh_workspace/handle.ts";
import type { AccelSetting } from "./boot/accel.ts";

/** A profile's configuration for `ext.vm-packer`, after validation. */
export interface VmPackerConfig {
  /** `attach` to a running VM, or `boot` a throwaway one per sandbox. */
  mode: "attach" | "boot";
  /** Where to connect (attach), or the login user (boot). */
  target: {
    host?: string;
    /** A VM registered in the port registry (attach mode). */
    vm?: string;
    port?: number;
    user?: string;
    identity_file?: string;
    passphrase_env?: string;
    known_hosts: string;
    ssh_config?: string;
    /** Seconds. */
    connect_timeout: number;
    /** Seconds. */
    keepalive_interval: number;
  };
  /** A pool of build hosts instead of `target` (attach mode); see pool/. */
  targets?: PoolEntry[];
  /** Where workspaces go. */
  workspace: { root: string };
  /** What the image is built from (boot mode). */
  image: {
    template?: string;
    base?: string;
    variables: string[];
    kernel: string;
    initrd: string;
  };
  /** The throwaway VM (boot mode). */
  vm: {
    cpus: number;
    /** MiB. */
    memory: number;
    accel: AccelSetting;
    /** Seconds. */
    boot_timeout: number;
    append: string;
  };
}

/** One host of a pool: every `target` field, plus its slots and an optional workspace root. */
export type PoolEntry = VmPackerConfig["target"] & {
  /** How many sandboxes it holds at once. */
  capacity: number;
  /** Overrides `workspace.root` for this entry. */
  workspace_root?: string;
};

/** Where a pooled sandbox's lease is: its entry and slot, for destroy to release exactly it. */
export type PoolLeaseRef = {
  /** Index of the entry in `targets` (informational). */
  entry: number;
  /** `host:port` of the entry as written, for messages. */
  host: string;
  /** The entry's pool directory on the host: `<root>/.sbx-pool/<entry key>`. */
  dir: string;
  /** The slot number: the lease is `<dir>/slot-<n>`. */
  slot: number;
};

/** The destroy handle of a vm-packer sandbox; boot mode adds its VM. */
export type VmPackerHandle = SshWorkspaceHandle & {
  /** `boot` for a throwaway VM; absent in attach mode. */
  mode?: "boot";
  /** `<stateDir>/vms/<id>` (informational: teardown derives it again). */
  vm_dir?: string;
  /** The VM's creation nonce, also in the VM directory's marker. */
  vm_nonce?: string;
  /** Content key of the image the overlay is backed by. */
  image_key?: string;
  /** A sandbox placed in a pool: its lease (released by destroy when the nonce matches). */
  pool_lease?: PoolLeaseRef;
};
