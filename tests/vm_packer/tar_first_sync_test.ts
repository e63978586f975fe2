// The first sync into a freshly made workspace goes as one tar stream over OpenSSH
// (src/extensions/ssh_workspace/workspace_tar.ts). Checked against real sshds:
// - the tree it makes is the tree rsync makes from the same source into an empty workspace
//   (paths as bytes, kinds, modes, symlink targets, contents, mtimes to the nanosecond), in a git
//   work tree and outside one, with hostile names (spaces, newlines, leading dashes, non-UTF-8
//   bytes), and it reports the same files and bytes;
// - a workspace that is not empty, a FIFO in the selection, a host without GNU tar: rsync
//   instead, with no extra output;
// - a hand-made stream with a symlink out of the workspace and paths through it, `..`, absolute
//   names and hard links out, fed to the remote script on the loopback sshd and on an isolated
//   host: nothing lands outside the workspace.
import assert from "node:assert/strict";
import { createOk, startTestVm, type TestVm } from "../harness/test_vm.ts";
import { type IsolatedHost, isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { strictSshArgs } from "../harness/sshd.ts";
import { makeGitCorpus } from "../../src/testing/git_corpus.ts";
import { hostileStrings } from "../../src/testing/hostile_strings.ts";
import { remoteCommand } from "../../src/transport/quote.ts";
import {
  MARKER_FILE,
  SCRIPT_EXIT,
  TAR_STARTED,
  WORKSPACE_TAR,
} from "../../src/extensions/ssh_workspace/remote_scripts.ts";

const decoder = new TextDecoder("windows-1252");

async function sh(script: string, ...args: string[]): Promise<Uint8Array> {
  const out = await new Deno.Command("sh", { args: ["-c", script, "sh", ...args] }).output();
  assert.equal(out.code, 0, `${script}: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

/** Hostile names, a non-UTF-8 one, links, modes and sub-second mtimes in `dir`. */
async function addHostileEntries(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/hostile`, { recursive: true });
  const names = hostileStrings(15, 40).map((s) => s.replaceAll("/", "_"))
    .filter((s) => s !== "" && s !== "." && s !== "..");
  names.push("-rf", "--help", "a b", " lead", "new\nline", "back\\slash", "\\#101");
  for (const name of new Set(names)) {
    await Deno.writeTextFile(`${dir}/hostile/${name}`, `${name}\n`);
  }
  await sh(
    'cd "$1" && printf x > "$(printf "bad\\377\\376name")" && mkdir -p ro/inner exe empty &&' +
      " printf '#!/bin/sh\\n' > exe/run && chmod 755 exe/run && chmod 600 exe/run2 2>/dev/null;" +
      " printf y > exe/run2 && chmod 640 exe/run2 && echo in > ro/inner/f && chmod 555 ro/inner &&" +
      " ln -s ../exe/run ro/rel && ln -s /etc/hostname abs && ln -s nowhere dangling &&" +
      " printf h > hard1 && ln hard1 hard2 && touch -d '2020-01-02 03:04:05.123456789' exe/run &&" +
      " touch -h -d '2019-05-06 07:08:09.5' ro/rel && touch -d '2018-01-01 00:00:00.25' ro/inner",
    `${dir}/hostile`,
  );
}

/**
 * Every entry under `dir` (the marker left out) as bytes-exact lines: path, kind, mode, size (files),
 * mtime in nanoseconds and link target; contents are compared by `diff -r`.
 */
async function describe(dir: string): Promise<string[]> {
  const out = await sh(
    `cd "$1" && find . -path ./${MARKER_FILE} -prune -o -printf '%p\\t%y\\t%m\\t%s\\t%T@\\t%l\\0'`,
    dir,
  );
  return decoder.decode(out).split("\0").filter((l) => l !== "").map((line) => {
    const [path, kind, mode, size, mtime, link] = line.split("\t");
    return [path, kind, mode, kind === "f" ? size : "-", mtime, link].join("\t");
  }).sort();
}

async function sameTree(a: string, b: string): Promise<void> {
  assert.deepEqual(await describe(a), await describe(b));
  const diff = await new Deno.Command("diff", {
    args: ["-r", "--no-dereference", `--exclude=${MARKER_FILE}`, a, b],
  }).output();
  assert.equal(diff.code, 0, new TextDecoder().decode(diff.stdout));
}

interface Report {
  method: string;
  files: number;
  bytes: number;
  deleted: number;
}

async function syncJson(vm: TestVm, id: string, repo: string): Promise<Report> {
  const result = await vm.cli(["sync", id, "--repo", repo, "--json"]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

/** Sync `repo` into two new sandboxes, by tar and (its fresh-workspace note taken) by rsync. */
async function compareWithRsync(vm: TestVm, repo: string, name: string): Promise<void> {
  // rsync leaves a directory it makes with its own mtime when the source's is in the same whole
  // second (it compares directory times to the second): a tree written just now, synced at once
  // (a fast machine), would differ from the source there, where tar's does not. Age them.
  await sh(
    `find "$1" -path "$1/.git" -prune -o -type d -mmin -60 -exec touch -d '2021-03-04 05:06:07.123456789' {} +`,
    repo,
  );
  const profile = await vm.profile(name, { extra: ["sync:", '  exclude: ["*.secret"]'] });
  const byTar = await createOk(vm, ["--profile", profile, "--name", `${name}-tar`]);
  const byRsync = await createOk(vm, ["--profile", profile, "--name", `${name}-rsync`]);
  const nonce = (byRsync.handle as { nonce: string }).nonce;
  await Deno.remove(`${vm.env.SANDBOXER_HOME}/fresh/${byRsync.id}.${nonce}`);

  const tarReport = await syncJson(vm, byTar.id, repo);
  const rsyncReport = await syncJson(vm, byRsync.id, repo);
  assert.equal(tarReport.method, "tar");
  assert.equal(rsyncReport.method, "rsync");
  assert.deepEqual({ ...tarReport, method: "" }, { ...rsyncReport, method: "" });
  await sameTree(byTar.workspace as string, byRsync.workspace as string);
  // The marker is untouched and the sandbox still works: a second sync is rsync's, nothing to do.
  const again = await syncJson(vm, byTar.id, repo);
  assert.equal(again.method, "rsync");
  assert.equal(again.files, 0);
  for (const id of [byTar.id, byRsync.id]) {
    const destroyed = await vm.cli(["destroy", id]);
    assert.equal(destroyed.code, 0, destroyed.stderr);
  }
}

Deno.test("first sync by tar makes exactly rsync's tree: git work tree with hostile names", async () => {
  await using vm = await startTestVm();
  const repo = await makeGitCorpus(`${vm.dir}/corpus`);
  await addHostileEntries(repo);
  await Deno.writeTextFile(`${repo}/creds.secret`, "excluded by the profile\n");
  await compareWithRsync(vm, repo, "git");
});

Deno.test("first sync by tar makes exactly rsync's tree: outside git, .gitignore as rsync reads it", async () => {
  await using vm = await startTestVm();
  const plain = `${vm.dir}/plain`;
  await Deno.mkdir(`${plain}/sub`, { recursive: true });
  await Deno.writeTextFile(`${plain}/.gitignore`, "*.log\n/top-only\n");
  await Deno.writeTextFile(`${plain}/sub/.gitignore`, "!keep.log\n*.tmp\n");
  for (const file of ["a.txt", "b.log", "top-only", "sub/top-only", "sub/keep.log", "sub/x.tmp"]) {
    await Deno.writeTextFile(`${plain}/${file}`, `${file}\n`);
  }
  await addHostileEntries(plain);
  await compareWithRsync(vm, plain, "plain");
});

Deno.test("first sync: a workspace no longer empty, a FIFO, or a host without GNU tar gets rsync and no extra output", async () => {
  const bin = await Deno.makeTempDir({ prefix: "sbx-notar-bin-" });
  await Deno.chmod(bin, 0o755);
  for (const program of ["sh", "rsync", "cat", "head", "flock", "mkdir", "rm", "mv", "ls"]) {
    await Deno.symlink(`/usr/bin/${program}`, `${bin}/${program}`).catch(() =>
      Deno.symlink(`/bin/${program}`, `${bin}/${program}`)
    );
  }
  try {
    await using vm = await startTestVm();
    const repo = `${vm.dir}/src`;
    await Deno.mkdir(repo);
    await Deno.writeTextFile(`${repo}/a.txt`, "a\n");
    const profile = await vm.profile("p");
    const record = await createOk(vm, ["--profile", profile, "--name", "busy"]);
    const made = await vm.cli(["exec", "busy", "--", "sh", "-c", "echo x > stray.txt"]);
    assert.equal(made.code, 0, made.stderr);
    const result = await vm.cli(["sync", "busy", "--repo", repo, "--json"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout).method, "rsync");
    // What any rsync sync prints (the line, and the notice of a tree outside git), nothing more.
    const extra = result.stderr.split("\n").filter((l) =>
      l !== "" && !/^sandboxer: synced .* by rsync: /.test(l) &&
      !/^sandboxer: sync: .* is not in a git work tree/.test(l)
    );
    assert.deepEqual(extra, []);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(record.workspace as string))).map((e) => e.name).sort(),
      [MARKER_FILE, "a.txt"],
    );

    // A FIFO in the selection: tar stops, rsync makes the tree (the FIFO included).
    const withFifo = `${vm.dir}/fifo-src`;
    await Deno.mkdir(withFifo);
    for (let i = 0; i < 50; i++) await Deno.writeTextFile(`${withFifo}/f${i}.txt`, `${i}\n`);
    await sh('mkfifo "$1/zz-pipe"', withFifo);
    const fresh = await createOk(vm, ["--profile", profile, "--name", "fifo"]);
    const piped = await vm.cli(["sync", "fifo", "--repo", withFifo, "--json"]);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(JSON.parse(piped.stdout).method, "rsync");
    // Whatever tar had sent before it stopped, rsync made exact.
    const names = (await Array.fromAsync(Deno.readDir(fresh.workspace as string))).map((e) =>
      e.name
    );
    assert.equal(names.length, 52, names.join(" "));
    assert.equal(await Deno.readTextFile(`${fresh.workspace}/f49.txt`), "49\n");
    assert.equal((await Deno.lstat(`${fresh.workspace}/zz-pipe`)).isFifo, true);

    await using noTar = await startTestVm({ extraConfig: [`SetEnv PATH=${bin}`] });
    const other = await createOk(noTar, ["--profile", await noTar.profile("p"), "--name", "n"]);
    const synced = await noTar.cli(["sync", "n", "--repo", repo, "--json"]);
    assert.equal(synced.code, 0, synced.stderr);
    assert.equal(JSON.parse(synced.stdout).method, "rsync");
    assert.equal(await Deno.readTextFile(`${other.workspace}/a.txt`), "a\n");
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test("first sync by tar goes over a shared connection's master when one listens", async () => {
  await using vm = await startTestVm();
  const repo = `${vm.dir}/src`;
  await Deno.mkdir(repo);
  await Deno.writeTextFile(`${repo}/a.txt`, "a\n");
  const profile = await vm.profile("p");
  await createOk(vm, ["--profile", profile, "--name", "first"]);
  // An exec starts the master (SANDBOXER_SSH_MUX unset: shared for 60 s); a second sandbox on
  // the same host and key then finds it.
  const exec = await vm.cli(["exec", "first", "--", "true"]);
  assert.equal(exec.code, 0, exec.stderr);
  const second = await createOk(vm, ["--profile", profile, "--name", "second"]);
  const synced = await vm.cli(["sync", "second", "--repo", repo, "--json", "--debug"]);
  assert.equal(synced.code, 0, synced.stderr);
  assert.equal(JSON.parse(synced.stdout).method, "tar");
  assert.match(synced.stderr, /by tar over the shared connection/);
  assert.equal(await Deno.readTextFile(`${second.workspace}/a.txt`), "a\n");
  for (const id of ["first", "second"]) assert.equal((await vm.cli(["destroy", id])).code, 0);
});

/**
 * A tar stream no local tar of ours would write: a symlink out of the workspace (absolute, and
 * relative through `..`) and a file through each, `..` and absolute member names, and a hard link
 * to a file outside. Built with GNU tar from `outside` (a directory the login user may write).
 */
async function hostileStream(scratch: string, outside: string): Promise<Uint8Array> {
  const out = `${scratch}/evil.tar`;
  await sh(
    'set -e; s=$1; o=$2; mkdir -p "$s/a" "$s/b/evil" "$s/b/up" "$s/c/sub"; ln -s "$o" "$s/a/evil";' +
      ' ln -s ../../../../../../../.. "$s/a/up"; echo pwned > "$s/b/evil/pwned";' +
      ' echo pwned > "$s/b/up/pwned-up"; echo pwned > "$s/c/escape"; echo pwned > "$o/abs-escape";' +
      ' echo original > "$o/target"; ln "$o/target" "$s/hl-src";' +
      ' tar -cf "$s/evil.tar" -C "$s/a" evil up; tar -rf "$s/evil.tar" -C "$s/b" evil/pwned up/pwned-up;' +
      ' tar -rPf "$s/evil.tar" -C "$s/c/sub" ../escape; tar -rPf "$s/evil.tar" "$o/abs-escape";' +
      ' tar -rPf "$s/evil.tar" "$o/target" "$s/hl-src"; rm "$o/abs-escape"',
    scratch,
    outside,
  );
  return await Deno.readFile(out);
}

/** Feed `stream` to WORKSPACE_TAR over the system ssh. */
async function feed(
  ssh: string[],
  ws: string,
  id: string,
  nonce: string,
  stream: Uint8Array,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command("ssh", {
    args: [...ssh, remoteCommand(["sh", "-c", WORKSPACE_TAR, "sh", ws, id, nonce])],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(stream).catch(() => {});
  await writer.close().catch(() => {});
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

async function listAll(dir: string): Promise<string[]> {
  return decoder.decode(await sh('cd "$1" && find . -print0', dir)).split("\0")
    .filter((l) => l !== "").sort();
}

Deno.test("a hand-made hostile tar stream lands nothing outside the workspace (loopback sshd)", async () => {
  await using vm = await startTestVm();
  const outside = `${vm.dir}/outside`;
  await Deno.mkdir(outside, { mode: 0o777 });
  await Deno.chmod(outside, 0o777);
  const stream = await hostileStream(await Deno.makeTempDir({ dir: vm.dir }), outside);
  await vm.chown(outside);
  const before = await listAll(outside);
  const rootBefore = await vm.rootEntries();
  const record = await createOk(vm, ["--profile", await vm.profile("p"), "--name", "h"]);
  const ws = record.workspace as string;
  const nonce = (record.handle as { nonce: string }).nonce;
  const ssh = strictSshArgs({
    destination: `${vm.sshd.user}@${vm.sshd.host}`,
    port: vm.sshd.port,
    identityFile: vm.sshd.identityFile,
    knownHostsFile: vm.sshd.knownHostsFile,
  });
  const result = await feed(
    ssh,
    ws,
    record.id,
    nonce,
    stream,
  );
  assert.ok(result.stdout.startsWith(`${TAR_STARTED}\n`), result.stderr);
  assert.notEqual(result.code, 0, "GNU tar reports the members it refused");
  assert.deepEqual(await listAll(outside), before);
  assert.equal(await Deno.readTextFile(`${outside}/target`), "original\n");
  assert.deepEqual(await vm.rootEntries(), [...rootBefore, `sbx-h`].sort());
  // The links exist only as links, inside; nothing went through them.
  assert.equal(await Deno.readLink(`${ws}/evil`), outside);
  assert.equal((await Deno.lstat(`${ws}/evil`)).isSymlink, true);

  // Fed again, the workspace is no longer empty: refused before a byte is read.
  const again = await feed(
    ssh,
    ws,
    record.id,
    nonce,
    stream,
  );
  assert.equal(again.code, SCRIPT_EXIT.notEmpty, again.stderr);
  assert.equal(again.stdout, "");
});

isolatedTest(
  "a hand-made hostile tar stream lands nothing outside the workspace (isolated host)",
  async () => {
    await using host: IsolatedHost = await startIsolatedHost();
    const record = await createOk(host, ["--profile", await host.profile("p"), "--name", "h"]);
    const ws = record.workspace as string;
    const nonce = (record.handle as { nonce: string }).nonce;
    // The stream names the host's home as the outside directory; built here, in a directory of
    // the same name under this machine's temp dir (tar stores the names, not the files' places).
    const outside = host.homeDir;
    const local = await Deno.makeTempDir({ prefix: "sbx-evil-" });
    try {
      await Deno.mkdir(`${local}/${outside}`, { recursive: true });
      const stream = await hostileStream(local, `${local}${outside}`);
      const fixed = retarget(stream, `${local}${outside}`, outside);
      const before = await listAll(host.path(outside));
      const rootBefore = await host.rootEntries();
      const result = await feed(
        strictSshArgs({
          destination: `${host.user}@${host.host}`,
          port: host.port,
          identityFile: host.identityFile,
          knownHostsFile: host.knownHostsFile,
        }),
        ws,
        record.id,
        nonce,
        fixed,
      );
      assert.ok(result.stdout.startsWith(`${TAR_STARTED}\n`), result.stderr);
      assert.deepEqual(await listAll(host.path(outside)), before);
      assert.deepEqual(await host.rootEntries(), rootBefore);
      assert.equal((await Deno.readLink(host.path(`${ws}/evil`))).replace(/\/+$/, ""), outside);
      assert.deepEqual(await host.canaryProblems(), []);
    } finally {
      await Deno.remove(local, { recursive: true });
    }
  },
);

/**
 * The stream with every occurrence of `from` replaced by `to` (same length required, so tar's
 * header checksums are fixed up below).
 */
function retarget(stream: Uint8Array, from: string, to: string): Uint8Array {
  const a = new TextEncoder().encode(from);
  const b = new TextEncoder().encode(to.padEnd(from.length, "/"));
  assert.equal(a.length, b.length);
  const out = stream.slice();
  for (let i = 0; i + a.length <= out.length; i++) {
    if (a.every((byte, j) => out[i + j] === byte)) out.set(b, i);
  }
  // Recompute each 512-byte header's checksum (bytes 148..155), headers found by their magic.
  for (let at = 0; at + 512 <= out.length; at += 512) {
    const block = out.subarray(at, at + 512);
    if (decoder.decode(block.subarray(257, 262)) !== "ustar") continue;
    block.fill(0x20, 148, 156);
    const sum = block.reduce((n, byte) => n + byte, 0);
    block.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  }
  return out;
}
