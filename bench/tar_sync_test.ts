/**
 * The tar-stream prototype selects and reproduces exactly what rsync does:
 * a tricky tree is synced into one workspace by the real rsync path
 * (`runRsync`, the argv sandboxer uses) and into another by `tarSync`, both
 * over a real sshd, and the two trees must be identical — names, kinds,
 * modes, sizes, mtimes to the nanosecond, symlink targets, content — with
 * the marker untouched; afterwards rsync finds nothing to send.
 *
 * @module
 */

import assert from "node:assert/strict";
import { sshdUnavailableReason, startSshd } from "../tests/harness/sshd.ts";
import { connectSsh } from "../src/transport/ssh.ts";
import { runRsync } from "../src/process/rsync.ts";
import { rsyncNameBytes, selectEntries, type StreamExec, tarSync } from "./tar_sync.ts";
import { connectDirect } from "./ssh2_stream.ts";

const unavailable = await sshdUnavailableReason();
const MARKER = ".sandboxer.json";

async function sh(script: string, cwd: string): Promise<void> {
  const out = await new Deno.Command("sh", { args: ["-c", script], cwd, stderr: "piped" }).output();
  if (!out.success) throw new Error(`${script}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A tree with every case that could make tar and rsync disagree. */
async function trickyTree(dir: string): Promise<void> {
  await sh(
    [
      "mkdir -p a/b/c empty 'sp ace/inner' ünï build keep ro/sub deep",
      "printf 'build/\\n*.log\\nsecret*\\n' > .gitignore",
      "printf 'local-only\\n' > a/.gitignore",
      "echo x > a/local-only && echo y > a/b/kept.txt && echo z > a/b/c/z.txt",
      "echo log > a/debug.log && echo s > secret.key",
      "echo o > build/out.o && echo n > ünï/fïlé && echo s > 'sp ace/inner/f g'",
      "echo dash > ./-rf && echo bs > 'back\\#012slash' && printf 'nl' > \"$(printf 'new\\nline')\"",
      "echo ro > ro/sub/f && chmod 0555 ro/sub && chmod 0750 ro",
      "echo exe > a/run.sh && chmod 0755 a/run.sh && echo p > a/private && chmod 0600 a/private",
      "ln -s a/b/kept.txt rel-link && ln -s /etc/hostname abs-link && ln -s nowhere dangling",
      "ln -s a dir-link && echo h > hard1 && ln hard1 hard2",
      "echo g > .git-like && mkdir -p .git/objects && echo obj > .git/objects/x",
      `mkdir -p deep/${"d".repeat(60)}/${"e".repeat(60)} && echo long > deep/${"d".repeat(60)}/${
        "e".repeat(60)
      }/${"f".repeat(80)}`,
      "mkfifo a/fifo",
      "truncate -s 3M a/big.bin",
      // rsync leaves a directory's mtime alone when it falls in the same second as the copy's,
      // so fresh trees would differ by less than a second: date everything in the past.
      "find . -exec touch -h -d '2022-01-01 00:00:00.5' {} +",
      "touch -d '2021-02-03 04:05:06.123456789' a/b/kept.txt a/b",
    ].join(" && "),
    dir,
  );
}

interface Entry {
  kind: string;
  mode: string;
  size: string;
  mtime: string;
  link: string;
  sha?: string;
}

/** Every entry under `dir` (the root included as "."), from find(1) with nanosecond mtimes. */
async function snapshot(dir: string, skip: string[] = []): Promise<Map<string, Entry>> {
  const out = await new Deno.Command("find", {
    args: [".", "-printf", "%P\\0%y\\0%m\\0%s\\0%T@\\0%l\\0"],
    cwd: dir,
    stdout: "piped",
  }).output();
  const fields = new TextDecoder().decode(out.stdout).split("\0");
  const entries = new Map<string, Entry>();
  for (let i = 0; i + 6 <= fields.length; i += 6) {
    const [path, kind, mode, size, mtime, link] = fields.slice(i, i + 6);
    const name = path === "" ? "." : path;
    if (skip.includes(name)) continue;
    const entry: Entry = { kind, mode, size: kind === "d" ? "-" : size, mtime, link };
    if (kind === "f") {
      const data = await Deno.readFile(`${dir}/${path}`);
      entry.sha = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", data)))
        .map((b) => b.toString(16).padStart(2, "0")).join("");
    }
    entries.set(name, entry);
  }
  return entries;
}

Deno.test("rsyncNameBytes decodes rsync's \\#ooo escapes to raw bytes", () => {
  assert.deepEqual(rsyncNameBytes("a\\#012b"), new Uint8Array([0x61, 0x0a, 0x62]));
  assert.deepEqual(rsyncNameBytes("\\#377x"), new Uint8Array([0xff, 0x78]));
  assert.equal(new TextDecoder().decode(rsyncNameBytes("ünï/fïlé")), "ünï/fïlé");
});

Deno.test({
  name: "tarSync selects and reproduces exactly what rsync -a sends (same filters)",
  ignore: unavailable !== undefined,
  async fn(t) {
    await using sshd = await startSshd();
    const base = await Deno.makeTempDir({ prefix: "sbx-tar-test-" });
    try {
      await Deno.chmod(base, 0o755);
      const source = `${base}/src`;
      await Deno.mkdir(source);
      await trickyTree(source);
      const exclude = [".git/", `/${MARKER}`];
      const gitignore = true;

      const workspace = async (name: string) => {
        const path = `${base}/${name}`;
        await Deno.mkdir(path);
        await Deno.writeTextFile(`${path}/${MARKER}`, `{"id":"${name}"}`);
        await new Deno.Command("chown", { args: ["-R", sshd.user, path] }).output();
        return path;
      };
      const target = {
        host: sshd.host,
        port: sshd.port,
        user: sshd.user,
        identityFile: sshd.identityFile,
        knownHostsFile: sshd.knownHostsFile,
      };

      const viaRsync = await workspace("rsync");
      const rsync = await runRsync({
        source,
        target,
        remoteDir: viaRsync,
        exclude,
        gitignore,
        delete: true,
        progress: false,
      });
      const expected = await snapshot(viaRsync);
      assert.ok(!expected.has("a/debug.log") && !expected.has("build"), "fixture sanity");
      assert.ok(!expected.has("a/local-only") && !expected.has(".git"), "fixture sanity");

      const selection = await selectEntries(source, { exclude, gitignore });
      assert.equal(selection.filter((e) => e.kind === "f").length, rsync.files);

      const check = async (name: string, exec: StreamExec) => {
        const ws = await workspace(name);
        const report = await tarSync(exec, { source, workspace: ws, exclude, gitignore });
        assert.equal(report.files, rsync.files);
        const actual = await snapshot(ws);
        assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
        for (const [path, entry] of expected) {
          // The marker is the workspace's own; each has its id.
          if (path === MARKER) continue;
          assert.deepEqual(actual.get(path), entry, path);
        }
        assert.equal(await Deno.readTextFile(`${ws}/${MARKER}`), `{"id":"${name}"}`);
        // rsync's quick check now sees nothing to send or change (owners aside: this local
        // check runs as root, the workspace belongs to the login user).
        const dry = await new Deno.Command("rsync", {
          args: [
            "-a",
            "--no-owner",
            "--no-group",
            "--dry-run",
            "--delete",
            "--filter=:- .gitignore",
            ...exclude.map((p) => `--exclude=${p}`),
            "--out-format=%i %n",
            `${source}/`,
            `${ws}/`,
          ],
          stdout: "piped",
        }).output();
        assert.equal(new TextDecoder().decode(dry.stdout).trim(), "");
      };

      await t.step("over today's SshConnection (stdin buffered)", async () => {
        await using connection = await connectSsh(target);
        await check("tar-buffered", async (argv, cwd, stdin) => {
          const data = new Uint8Array(await new Response(stdin).arrayBuffer());
          return await connection.run(argv, { cwd, stdin: data });
        });
      });
      await t.step("over a streamed channel", async () => {
        await using direct = await connectDirect({
          ...target,
          hostKeyFingerprint: sshd.hostKeyFingerprint,
        });
        await check("tar-streamed", direct.exec);
      });
    } finally {
      await new Deno.Command("chmod", { args: ["-R", "u+w", base] }).output();
      await Deno.remove(base, { recursive: true });
    }
  },
});
