// contrib/remote-build.mk, included from a temporary project's Makefile and run with the real
// `make` against a real sshd (tests/harness/test_vm.ts): `make remote-build` creates a sandbox,
// syncs the project, runs REMOTE_BUILD_CMD there, copies REMOTE_ARTIFACTS back and destroys the
// sandbox, and make's exit status follows the build's. A build command with quotes, `$` and `;`
// reaches the remote shell unchanged.
import assert from "node:assert/strict";
import { startTestVm } from "../harness/test_vm.ts";
import { denoDir, listDir, ROOT, runProgram, sandboxerTaskArgv, tempDir } from "../helpers.ts";

const hasMake = await runProgram("sh", ["-c", "command -v make"]).then((r) => r.code === 0);

Deno.test({
  name:
    `contrib/remote-build.mk: make remote-build builds remotely, fetches artifacts, passes the exit code${
      hasMake ? "" : " [skipped: needs make (apt-get install make)]"
    }`,
  ignore: !hasMake,
  async fn() {
    await using vm = await startTestVm();
    await using project = await tempDir("sbx-mk-");
    const profile = await vm.profile("mk");
    const argv = await sandboxerTaskArgv();
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const shim = `${project.path}/sandboxer-shim`;
    await Deno.writeTextFile(shim, `#!/bin/sh\nexec ${argv.map(quote).join(" ")} "$@"\n`, {
      mode: 0o755,
    });
    await Deno.writeTextFile(`${project.path}/input.txt`, "it's $HOME; not expanded\n");
    await Deno.writeTextFile(
      `${project.path}/Makefile`,
      [
        `SANDBOXER := ${shim}`,
        `SANDBOXER_PROFILE := ${profile}`,
        // Quotes, $ (make's $$) and ; must reach the remote shell as written.
        `REMOTE_BUILD_CMD := mkdir -p out && cp input.txt out/copy.txt && echo 'built; "ok"' > out/msg.txt && test "$$FAIL" != 1`,
        "REMOTE_ARTIFACTS := out/copy.txt:fetched out/msg.txt:fetched",
        `include ${ROOT}/contrib/remote-build.mk`,
        "",
      ].join("\n"),
    );
    const env = { ...vm.env, DENO_DIR: await denoDir(), NO_COLOR: "1" };

    const ok = await runProgram("make", ["-s", "remote-build"], { cwd: project.path, env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(
      await Deno.readTextFile(`${project.path}/fetched/copy.txt`),
      "it's $HOME; not expanded\n",
    );
    assert.equal(await Deno.readTextFile(`${project.path}/fetched/msg.txt`), 'built; "ok"\n');
    assert.deepEqual(await vm.rootEntries(), [], "the sandbox was destroyed");

    // The build fails: make fails, and the sandbox is destroyed all the same.
    const failed = await runProgram("make", [
      "-s",
      "remote-build",
      "SANDBOXER_FLAGS=--set env=[FAIL=1]",
    ], {
      cwd: project.path,
      env,
    });
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /remote-build.*Error 1/);
    assert.deepEqual(await vm.rootEntries(), []);

    // No profile: a one-line explanation, exit status 2.
    await Deno.writeTextFile(
      `${project.path}/Makefile.bare`,
      `include ${ROOT}/contrib/remote-build.mk\n`,
    );
    const bare = await runProgram("make", ["-s", "-f", "Makefile.bare", "remote-build"], {
      cwd: project.path,
      env,
    });
    assert.notEqual(bare.code, 0);
    assert.match(bare.stderr, /set SANDBOXER_PROFILE/);
    assert.deepEqual((await listDir(project.path)).includes("out"), false);
  },
});
