import assert from "node:assert/strict";
import type { VmPackerConfig } from "../config.ts";
import { entryConfig, entryKey, entryLabel, poolEntriesOf } from "./config.ts";

const BASE = {
  mode: "attach",
  target: { known_hosts: "/k", connect_timeout: 15, keepalive_interval: 5 },
  workspace: { root: "/build" },
  image: { variables: [], kernel: "/vmlinuz", initrd: "/initrd.img" },
  vm: { cpus: 2, memory: 2048, accel: "auto", boot_timeout: 180, append: "" },
} as const;

const POOL: VmPackerConfig = {
  ...structuredClone(BASE) as unknown as VmPackerConfig,
  targets: [
    {
      host: "build-1",
      port: 12222,
      user: "builder",
      capacity: 4,
      known_hosts: "/k",
      connect_timeout: 15,
      keepalive_interval: 5,
    },
    {
      host: "build-2",
      capacity: 2,
      workspace_root: "/scratch/build",
      known_hosts: "/k2",
      connect_timeout: 15,
      keepalive_interval: 5,
    },
    {
      vm: "haskell 1/x",
      capacity: 1,
      known_hosts: "/k",
      connect_timeout: 15,
      keepalive_interval: 5,
    },
  ],
};

Deno.test("each pool entry becomes a single-target config with its own root", () => {
  const second = entryConfig(POOL, 1);
  assert.equal(second.targets, undefined);
  assert.deepEqual(second.target, {
    host: "build-2",
    known_hosts: "/k2",
    connect_timeout: 15,
    keepalive_interval: 5,
  });
  assert.deepEqual(second.workspace, { root: "/scratch/build" });
  assert.deepEqual(entryConfig(POOL, 0).workspace, { root: "/build" }, "the profile's root");
  assert.deepEqual(
    poolEntriesOf(POOL)?.map((e) => [e.label, e.capacity]),
    [["build-1:12222", 4], ["build-2:22", 2], ["vm:haskell 1/x", 1]],
  );
  assert.equal(poolEntriesOf({ ...POOL, targets: undefined }), undefined);
});

Deno.test("an entry's lease directory name is its host, port and user, safe as one path segment", () => {
  assert.equal(entryKey(POOL.targets![0]), "build-1_12222_builder");
  assert.equal(entryKey(POOL.targets![1]), "build-2_22");
  assert.equal(entryKey(POOL.targets![2]), "vm-haskell-1-x_22");
  assert.equal(entryKey({ ...POOL.targets![1], host: "../.." }), "--.._22");
  assert.equal(entryLabel(POOL.targets![1]), "build-2:22");
});
