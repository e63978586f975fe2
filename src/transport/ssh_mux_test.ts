import assert from "node:assert/strict";
import { muxPersistSeconds, muxSocketName, openMuxDir, probeMaster } from "./ssh_mux.ts";
import { tempDir } from "../testing/temp_dir.ts";

const KEY = {
  host: "10.0.0.5",
  port: 22,
  user: "builder",
  identityFile: "/home/me/.ssh/id_ed25519",
  fingerprint: "SHA256:AAAA",
  keepaliveMs: 15_000,
};

Deno.test("muxSocketName(): short, stable, and another pinned key is another socket", async () => {
  const name = await muxSocketName(KEY);
  assert.match(name, /^[0-9a-f]{16}$/);
  assert.equal(await muxSocketName({ ...KEY }), name);
  for (
    const other of [
      { fingerprint: "SHA256:BBBB" },
      { port: 2222 },
      { user: "other" },
      { identityFile: null },
      { host: "10.0.0.6" },
    ]
  ) {
    assert.notEqual(await muxSocketName({ ...KEY, ...other }), name, JSON.stringify(other));
  }
});

Deno.test("muxPersistSeconds(): unset and 1 are 60 s, 0 is off, durations and seconds", () => {
  const parse = (text: string) => {
    const m = /^(\d+)([sm])$/.exec(text);
    if (!m) throw new Error("bad");
    return Number(m[1]) * (m[2] === "m" ? 60 : 1);
  };
  assert.equal(muxPersistSeconds(undefined, parse), 60);
  assert.equal(muxPersistSeconds("1", parse), 60);
  assert.equal(muxPersistSeconds("0", parse), 0);
  assert.equal(muxPersistSeconds("90", parse), 90);
  assert.equal(muxPersistSeconds("10m", parse), 600);
  assert.throws(() => muxPersistSeconds("soon", parse));
});

Deno.test("openMuxDir() makes 0700 and refuses a symlink; probeMaster() refuses what is not a socket", async () => {
  await using tmp = await tempDir();
  const dir = await openMuxDir(`${tmp.path}/state`);
  assert.equal((await Deno.lstat(dir.path)).mode! & 0o777, 0o700);
  assert.equal(await probeMaster(`${dir.path}/nothing`, dir.uid), "absent");
  await Deno.writeTextFile(`${dir.path}/file`, "");
  await assert.rejects(() => probeMaster(`${dir.path}/file`, dir.uid), /it is not a socket/);
  await Deno.symlink("/tmp", `${dir.path}/link`);
  await assert.rejects(() => probeMaster(`${dir.path}/link`, dir.uid), /it is a symlink/);
  await Deno.remove(dir.path, { recursive: true });
  await Deno.mkdir(`${tmp.path}/real`, { mode: 0o700 });
  await Deno.symlink(`${tmp.path}/real`, dir.path);
  await assert.rejects(() => openMuxDir(`${tmp.path}/state`), /it is a symlink/);
});
