// Every verb that works in a workspace checks it in the same remote process that does the work, on
// a host that shares nothing with this machine (tests/harness/isolated_host.ts): a workspace
// swapped for a symlink is never written through (rsync and SFTP), a workspace removed on the
// host is not recreated, artifacts are never fetched through a swapped workspace, and exec still
// passes exit codes, signals, streams and stdin through unchanged.
import assert from "node:assert/strict";
import { Manager } from "../../mod.ts";
import {
  REFUSAL_PREFIX,
  WORKSPACE_RSYNC,
} from "../../src/extensions/ssh_workspace/remote_scripts.ts";
import { runRsync } from "../../src/sync/rsync_run.ts";
import { type IsolatedHost, isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { createOk } from "../harness/test_vm.ts";

async function onHost(host: IsolatedHost, script: string, ...args: string[]): Promise<string> {
  const result = await host.ssh(["sh", "-c", script, "sh", ...args]);
  assert.equal(result.code, 0, `${script}: ${result.stderr}`);
  return result.stdout;
}

async function readHost(host: IsolatedHost, path: string): Promise<string | undefined> {
  return await Deno.readTextFile(host.path(path)).catch(() => undefined);
}

async function repoWith(host: IsolatedHost, files: Record<string, string>): Promise<string> {
  const repo = await Deno.makeTempDir({ dir: host.dir, prefix: "repo-" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${repo}/${name}`, text);
  }
  return repo;
}

isolatedTest(
  "a workspace swapped for a symlink is never written through: sync, exec, destroy",
  async (t) => {
    await using full = await startIsolatedHost();
    await using bare = await startIsolatedHost({ without: ["rsync"] });
    for (const [host, method] of [[full, "rsync"], [bare, "sftp"]] as const) {
      await t.step(
        `${method}: refused in one line; the link's target keeps its files`,
        async () => {
          const repo = await repoWith(host, { "a.txt": "a\n" });
          await createOk(host, [
            "--profile",
            await host.profile("p"),
            "--name",
            "s2",
            "--repo",
            repo,
          ]);
          await onHost(
            host,
            'mkdir "$HOME/important" && echo draft > "$HOME/important/thesis.tex"',
          );
          await onHost(
            host,
            'cd "$1" && mv sbx-s2 old && ln -s "$HOME/important" sbx-s2',
            host.root,
          );

          const sync = await host.cli(["sync", "s2", "--repo", repo]);
          assert.equal(sync.code, 1, sync.stderr);
          assert.match(sync.stderr, /sbx-s2 is a symlink, not a workspace sandboxer made/);
          assert.match(sync.stderr, /will not sync into it/);
          assert.equal(
            sync.stderr.trim().split("\n").filter((l) => !/warning/.test(l))
              .length,
            1,
            sync.stderr,
          );
          const exec = await host.cli(["exec", "s2", "--", "touch", "escaped"]);
          assert.equal(exec.code, 125, `exec's own failure: ${exec.stderr}`);
          assert.match(exec.stderr, /will not run commands in it/);
          assert.deepEqual(await onHost(host, 'ls -A "$HOME/important"'), "thesis.tex\n");
          assert.equal(await readHost(host, `${host.homeDir}/important/thesis.tex`), "draft\n");

          // Put back, the same sandbox syncs again; a refused destroy would leave it failed.
          await onHost(host, 'cd "$1" && rm sbx-s2 && mv old sbx-s2', host.root);
          const synced = await host.cli(["sync", "s2", "--repo", repo, "--json"]);
          assert.equal(synced.code, 0, synced.stderr);
          assert.equal(JSON.parse(synced.stdout).method, method);
          await onHost(
            host,
            'cd "$1" && mv sbx-s2 old && ln -s "$HOME/important" sbx-s2',
            host.root,
          );
          const destroy = await host.cli(["destroy", "s2"]);
          assert.equal(destroy.code, 1, destroy.stderr);
          assert.deepEqual(await onHost(host, 'ls -A "$HOME/important"'), "thesis.tex\n");
          await onHost(host, 'cd "$1" && rm sbx-s2 && mv old sbx-s2', host.root);
          const destroyed = await host.cli(["destroy", "s2"]);
          assert.equal(destroyed.code, 0, destroyed.stderr);
          assert.deepEqual(await host.rootEntries(), []);
        },
      );
    }
  },
);

isolatedTest(
  "a workspace removed on the host is not recreated: sync and exec fail clearly",
  async (t) => {
    await using full = await startIsolatedHost();
    await using bare = await startIsolatedHost({ without: ["rsync"] });
    for (const [host, method] of [[full, "rsync"], [bare, "sftp"]] as const) {
      await t.step(method, async () => {
        const repo = await repoWith(host, { "a.txt": "a\n" });
        await createOk(host, ["--profile", await host.profile("p"), "--name", "gone"]);
        await onHost(host, 'rm -rf -- "$1/sbx-gone"', host.root);

        const sync = await host.cli(["sync", "gone", "--repo", repo]);
        assert.equal(sync.code, 1, sync.stderr);
        assert.match(
          sync.stderr,
          /sbx-gone no longer exists on sbx@[\d.]+:22 .* will not recreate it/,
        );
        assert.deepEqual(await host.rootEntries(), [], "sync did not recreate it");
        const exec = await host.cli(["exec", "gone", "--", "mkdir", "x"]);
        assert.equal(exec.code, 125, `exec's own failure: ${exec.stderr}`);
        assert.match(exec.stderr, /no longer exists/);
        assert.deepEqual(await host.rootEntries(), []);
        const destroy = await host.cli(["destroy", "gone"]);
        assert.equal(destroy.code, 0, destroy.stderr);
      });
    }
  },
);

isolatedTest(
  "exec through the workspace check passes codes, signals, streams and stdin unchanged",
  async (t) => {
    await using host = await startIsolatedHost();
    const profile = await host.profile("p");
    const { id, workspace, handle } = await createOk(host, ["--profile", profile, "--name", "ex"]);

    await t.step("exit code, signal, separate streams, no extra byte", async () => {
      assert.equal((await host.cli(["exec", id, "--", "sh", "-c", "exit 7"])).code, 7);
      assert.equal((await host.cli(["exec", id, "--", "sh", "-c", "kill -TERM $$"])).code, 143);
      const streams = await host.cli(["exec", id, "--", "sh", "-c", "printf out; printf err >&2"]);
      assert.equal(streams.stdout, "out");
      assert.equal(streams.stderr, "err");
      const silent = await host.cli(["exec", id, "--", "true"]);
      assert.equal(silent.stdout, "");
    });

    await t.step(
      "a program name starting with - is sandboxer's error, not a remote one",
      async () => {
        const dash = await host.cli(["exec", id, "--", "-rf"]);
        assert.equal(dash.code, 125, dash.stderr);
        assert.match(dash.stderr, /may not start with "-"|does not start with "-"/);
      },
    );

    await t.step("the command runs in its own session, marked with the sandbox", async () => {
      const script = "read -r pid comm state ppid pgrp sid rest < /proc/$$/stat; " +
        'echo "$pid $ppid $sid $pgrp"; echo "$SANDBOXER_SANDBOX"; pwd -P';
      const result = await host.cli(["exec", id, "--", "sh", "-c", script]);
      const [ids, mark, pwd] = result.stdout.trim().split("\n");
      const [pid, ppid, sid, pgrp] = ids.split(" ");
      // Its exec's own session and process group: led by the command itself over a direct
      // connection, by its parent (MUX_EXEC's shell, which reports signals as 128+N) over a
      // shared one. Either way nothing else's, so ending the group ends exactly this command.
      assert.equal(pgrp, sid, "process group of its own session");
      assert.ok(sid === pid || sid === ppid, `session ${sid} led by ${pid} or its parent ${ppid}`);
      assert.equal(mark, `${id}:${handle?.nonce}`);
      assert.equal(pwd, workspace);
      const direct = await host.cli(["exec", id, "--", "sh", "-c", script], {
        SANDBOXER_SSH_MUX: "0",
      });
      const [directPid, , directSid, directPgrp] = direct.stdout.split("\n")[0].split(" ");
      assert.deepEqual([directSid, directPgrp], [directPid, directPid], "leads its own session");
    });

    await t.step("stdin reaches the program (SDK)", async () => {
      await using manager = await Manager.open({ stateDir: host.env.SANDBOXER_HOME });
      let text = "";
      const decoder = new TextDecoder();
      const code = await manager.exec(id, ["sh", "-c", "tr a-z A-Z; exit 3"], {
        stdin: new TextEncoder().encode("piped in\n"),
        stdout: (chunk) => text += decoder.decode(chunk, { stream: true }),
      });
      assert.equal(code, 3);
      assert.equal(text, "PIPED IN\n");
    });
  },
);

isolatedTest(
  "run --artifact copies from the host's workspace, never through a swapped one",
  async (t) => {
    await using host = await startIsolatedHost();
    const profile = await host.profile("build", "setup:\n  - mkdir -p dist");
    const out = `${host.dir}/out`;

    await t.step("artifacts come from the workspace on the host", async () => {
      const run = await host.cli([
        "run",
        "--profile",
        profile,
        "--artifact",
        `dist/app.txt:${out}`,
        "--",
        "sh",
        "-c",
        "echo built > dist/app.txt",
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(await Deno.readTextFile(`${out}/app.txt`), "built\n");
      assert.deepEqual(await host.rootEntries(), []);
    });

    await t.step("a command that swaps its workspace for a symlink gets nothing back", async () => {
      await onHost(host, 'mkdir "$HOME/secret" && echo key > "$HOME/secret/app.txt"');
      const run = await host.cli([
        "run",
        "--profile",
        profile,
        "--name",
        "swapper",
        "--artifact",
        `app.txt:${out}/swapped`,
        "--",
        "sh",
        "-c",
        'ws=$(pwd -P); cd .. && mv "$ws" "$ws.moved" && ln -s "$HOME/secret" "$ws"',
      ]);
      assert.notEqual(run.code, 0, run.stderr);
      assert.match(run.stderr, /is a symlink, not a workspace sandboxer made/);
      assert.equal(
        await Deno.stat(`${out}/swapped/app.txt`).then(() => "fetched", () => "absent"),
        "absent",
      );
      assert.equal(await readHost(host, `${host.homeDir}/secret/app.txt`), "key\n");
      // What the command did to its own workspace is left for a human: a symlink and the moved one.
      assert.deepEqual(await host.rootEntries(), ["sbx-swapper", "sbx-swapper.moved"]);
    });
  },
);

isolatedTest(
  "a workspace root with spaces, quotes, $ and [brackets] works for every verb",
  async () => {
    await using host = await startIsolatedHost();
    const root = `${host.root}/odd [1] 'q' $x`;
    await Deno.mkdir(host.path(root));
    await host.chown(root);
    const profile = await host.profile("odd", { root, extra: ["setup:", "  - mkdir -p dist"] });
    const repo = await repoWith(host, { "a.txt": "a\n" });
    const { workspace } = await createOk(host, [
      "--profile",
      profile,
      "--name",
      "odd",
      "--repo",
      repo,
    ]);
    assert.equal(workspace, `${root}/sbx-odd`);
    assert.equal(await readHost(host, `${workspace}/a.txt`), "a\n");
    await Deno.writeTextFile(`${repo}/b.txt`, "b\n");
    const sync = await host.cli(["sync", "odd", "--repo", repo]);
    assert.equal(sync.code, 0, sync.stderr);
    const pwd = await host.cli(["exec", "odd", "--", "pwd"]);
    assert.equal(pwd.stdout, `${workspace}\n`, pwd.stderr);
    const destroyed = await host.cli(["destroy", "odd"]);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    // Only the repository's seed (docs/warm-workspaces.md) stays.
    assert.deepEqual(await onHost(host, 'ls -A "$1"', root), ".sbx-seeds\n");
  },
);

isolatedTest(
  "rsync's own ssh (the path off Linux) goes through the same workspace check",
  async () => {
    await using host = await startIsolatedHost();
    const { workspace, handle } = await createOk(host, ["--profile", await host.profile("p")]);
    const ws = workspace as string;
    const id = ws.slice(ws.lastIndexOf("/sbx-") + 5);
    const repo = await repoWith(host, { "pushed.txt": "pushed\n" });
    const refusal = (stderr: string) => {
      const line = stderr.split("\n").find((l) => l.startsWith(REFUSAL_PREFIX));
      return line ? new Error(line) : undefined;
    };
    const plan = {
      source: repo,
      target: {
        host: host.host,
        port: host.port,
        user: host.user,
        identityFile: host.identityFile,
        knownHostsFile: host.knownHostsFile,
      },
      remoteDir: ".",
      exclude: ["/.sandboxer.json"],
      gitignore: false,
      delete: true,
      progress: false,
      rsyncPath: ["sh", "-c", WORKSPACE_RSYNC, "sh", ws, id, handle?.nonce as string, "rsync"],
    };
    const report = await runRsync(plan, { explainFailure: refusal });
    assert.equal(report.files, 1);
    assert.equal(await readHost(host, `${ws}/pushed.txt`), "pushed\n");
    const pulled = `${host.dir}/pulled`;
    await runRsync(
      { ...plan, source: pulled, remoteDir: "./pushed.txt", direction: "pull", remoteEntry: true },
      { explainFailure: refusal },
    );
    assert.equal(await Deno.readTextFile(`${pulled}/pushed.txt`), "pushed\n");

    await onHost(
      host,
      'mkdir "$HOME/important" && cd "$1" && mv "$2" moved && ln -s "$HOME/important" "$2"',
      host.root,
      `sbx-${id}`,
    );
    await assert.rejects(
      runRsync(plan, { explainFailure: refusal }),
      /sandboxer-workspace-check: 93 .* is a symlink, not a workspace sandboxer made/,
    );
    assert.equal(await onHost(host, 'ls -A "$HOME/important"'), "");
    await onHost(host, 'cd "$1" && rm "$2" && mv moved "$2"', host.root, `sbx-${id}`);
  },
);
