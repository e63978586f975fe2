import assert from "node:assert/strict";
import { PortError } from "../errors.ts";
import { parsePortRange, PortRegistry } from "./registry.ts";
import { tempDir } from "../../testing/temp_dir.ts";

/** A range of free loopback ports: asks the kernel for one and uses the next few after it. */
function freeRange(size: number): { first: number; last: number } {
  for (;;) {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const first = (probe.addr as Deno.NetAddr).port;
    probe.close();
    if (first + size < 65000 && first >= 1024) return { first, last: first + size - 1 };
  }
}

Deno.test("parsePortRange() reads FIRST-LAST and refuses nonsense with the fix", () => {
  assert.deepEqual(parsePortRange(undefined), { first: 12222, last: 12299 });
  assert.deepEqual(parsePortRange(" 20000 - 20009 "), { first: 20000, last: 20009 });
  for (const bad of ["20009-20000", "80-90", "1-2-3", "abc", "20000-70000"]) {
    assert.throws(
      () => parsePortRange(bad),
      (e: unknown) => e instanceof PortError && /SANDBOXER_PORT_RANGE/.test(e.message),
    );
  }
});

Deno.test("allocate() skips a port something else listens on, and leases per sandbox id", async () => {
  await using dir = await tempDir();
  const range = freeRange(3);
  const busy = Deno.listen({ hostname: "127.0.0.1", port: range.first });
  try {
    const ports = new PortRegistry(dir.path, { range });
    const a = await ports.allocate("a1", "0".repeat(32));
    assert.equal(a.port, range.first + 1);
    assert.equal(a.name, "a1");
    // The same sandbox and nonce asking again gets the same lease (a retried step).
    assert.equal((await ports.allocate("a1", "0".repeat(32))).port, a.port);
    const b = await ports.allocate("b1", "1".repeat(32));
    assert.equal(b.port, range.first + 2);
    await assert.rejects(
      ports.allocate("c1", "2".repeat(32)),
      (e: unknown) => e instanceof PortError && /1 taken by other programs/.test(e.message),
    );
    // release() needs the nonce: another sandbox of the same name cannot free it.
    assert.deepEqual(await ports.release("a1", "f".repeat(32)), []);
    assert.deepEqual(await ports.release("a1", "0".repeat(32)), [a.port]);
    assert.deepEqual((await ports.list()).map((l) => l.name), ["b1"]);
  } finally {
    busy.close();
  }
});

Deno.test("allocate() from concurrent processes never hands out one port twice", async () => {
  await using dir = await tempDir();
  const range = freeRange(20);
  const module = new URL("./registry.ts", import.meta.url).href;
  const children = Array.from({ length: 6 }, (_, i) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { PortRegistry } from ${JSON.stringify(module)};
         const r = new PortRegistry(${JSON.stringify(dir.path)}, { range: ${
          JSON.stringify(range)
        } });
         const ports = [];
         for (let j = 0; j < 3; j++) ports.push((await r.allocate("s${i}-" + j, "${i}".repeat(32))).port);
         console.log(JSON.stringify(ports));`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output());
  const ports: number[] = [];
  for (const out of await Promise.all(children)) {
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    ports.push(...JSON.parse(new TextDecoder().decode(out.stdout)));
  }
  assert.equal(ports.length, 18);
  assert.equal(new Set(ports).size, 18, `duplicates in ${ports}`);
  const leases = await new PortRegistry(dir.path, { range }).list();
  assert.deepEqual(leases.map((l) => l.port).sort(), ports.sort());
});

Deno.test("register()/portOf()/releaseVm(): named VMs keep their port; reap() never touches them", async () => {
  await using dir = await tempDir();
  const range = freeRange(4);
  const ports = new PortRegistry(dir.path, { range });
  // A reverse tunnel already listens on its port: registering it must not need the port free.
  const tunnel = Deno.listen({ hostname: "127.0.0.1", port: range.first });
  try {
    assert.equal((await ports.register("haskell-1", range.first)).port, range.first);
    assert.equal(await ports.portOf("haskell-1"), range.first);
    await assert.rejects(ports.register("haskell-1", range.first + 1), /registered already/);
    await assert.rejects(ports.register("other", range.first), /leased to registered VM haskell-1/);
    await assert.rejects(ports.portOf("nope"), /not registered/);
    await assert.rejects(ports.register("../etc", 2222), /not valid/);
    const s = await ports.allocate("gone", "3".repeat(32));
    assert.notEqual(s.port, range.first);
    const reaped = await ports.reap((id) => Promise.resolve(id !== "gone"));
    assert.deepEqual(reaped.map((l) => l.name), ["gone"]);
    assert.deepEqual((await ports.list()).map((l) => l.name), ["haskell-1"]);
    assert.equal((await ports.releaseVm("haskell-1")).port, range.first);
    assert.deepEqual(await ports.list(), []);
  } finally {
    tunnel.close();
  }
});
