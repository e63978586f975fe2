// `exec -w DIR` and `fetch ID REMOTE` attacked on a host that shares nothing with this machine
// (tests/harness/isolated_host.ts): both paths are resolved by the host, symlinks followed there,
// and anything that lands outside the sandbox's workspace is refused before a command runs or a
// byte is copied. A resolution made on this machine by mistake fails here, because the host's
// paths (its home, its /etc, the workspace itself) are not this machine's.
import assert from "node:assert/strict";
import { type IsolatedHost, isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { createOk } from "../harness/test_vm.ts";

const oneLine = (text: string) => text.trim().split("\n").at(-1) ?? "";

async function onHost(host: IsolatedHost, script: string, ...args: string[]): Promise<void> {
  const result = await host.ssh(["sh", "-c", script, "sh", ...args]);
  assert.equal(result.code, 0, `${script}: ${result.stderr}`);
}

isolatedTest(
  "exec -w and fetch resolve paths on the host and refuse what leaves the workspace",
  async (t) => {
    await using host = await startIsolatedHost();
    const { workspace } = await createOk(host, [
      "--profile",
      await host.profile("p"),
      "--name",
      "h1",
    ]);
    const ws = workspace as string;
    // Only the host has these: its home with a secret, a directory in the workspace, and links
    // that point out of the workspace (relative, absolute, to the host's home and /etc) or back in
    // by an absolute path that does not exist on this machine.
    await onHost(
      host,
      'cd "$1" && mkdir -p sub && echo ok > sub/ok.txt && echo secret > "$HOME/secret.txt" &&' +
        ' ln -s "$HOME" home && ln -s /etc etc && ln -s .. up && ln -s "$1/sub" abs &&' +
        " ln -s sub/ok.txt inlink",
      ws,
    );
    const marker = `${ws}/ran`;

    await t.step("-w follows a link the host resolves inside the workspace", async () => {
      const result = await host.cli(["exec", "-w", "abs", "h1", "--", "pwd", "-P"]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `${ws}/sub\n`);
    });

    await t.step("-w out of the workspace is refused and nothing runs", async () => {
      for (
        const dir of [
          "home",
          "etc",
          "up",
          "up/sbx-h1/..",
          "/etc",
          host.homeDir,
          ws + "/..",
          "sub/../..",
        ]
      ) {
        const result = await host.cli(["exec", "-w", dir, "h1", "--", "touch", marker]);
        assert.equal(result.code, 125, `${dir}: ${result.stderr}`);
        assert.match(
          oneLine(result.stderr),
          /refused the working directory: .* outside the workspace/,
        );
        assert.equal(result.stdout, "");
      }
      const gone = await host.cli(["exec", "-w", "nowhere", "h1", "--", "touch", marker]);
      assert.equal(gone.code, 125, gone.stderr);
      assert.match(oneLine(gone.stderr), /nowhere is not a directory in the workspace/);
      assert.equal(
        await Deno.stat(host.path(marker)).then(() => "ran", () => "not run"),
        "not run",
      );
    });

    await t.step("fetch copies from inside, by relative or absolute path", async () => {
      const local = `${host.dir}/got`;
      for (const remote of ["sub/ok.txt", `${ws}/sub/ok.txt`, "abs/ok.txt"]) {
        await Deno.remove(local, { recursive: true }).catch(() => {});
        const result = await host.cli(["fetch", "h1", remote, local]);
        assert.equal(result.code, 0, `${remote}: ${result.stderr}`);
        assert.equal(await Deno.readTextFile(`${local}/ok.txt`), "ok\n", remote);
      }
    });

    await t.step(
      "fetch of anything that resolves outside the workspace copies nothing",
      async () => {
        const local = `${host.dir}/stolen`;
        for (
          const remote of [
            "home/secret.txt",
            "home",
            "etc/hostname",
            "up/..",
            "../../etc/hostname",
            `${host.homeDir}/secret.txt`,
            "/etc/hostname",
          ]
        ) {
          const result = await host.cli(["fetch", "h1", remote, local]);
          assert.notEqual(result.code, 0, `${remote} was fetched: ${result.stderr}`);
          assert.equal(result.stderr.trim().split("\n").length, 1, `${remote}: ${result.stderr}`);
          const got = await Array.fromAsync(Deno.readDir(local)).catch(() => []);
          assert.deepEqual(got, [], `${remote} left files here`);
        }
      },
    );

    assert.equal((await host.cli(["destroy", "h1"])).code, 0);
    assert.deepEqual(await host.rootEntries(), []);
    assert.equal(
      await Deno.readTextFile(host.path(`${host.homeDir}/secret.txt`)),
      "secret\n",
      "the host's own files are untouched",
    );
  },
);
