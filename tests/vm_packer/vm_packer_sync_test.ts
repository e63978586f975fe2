// ext.vm-packer sync through the real CLI and the real rsync against a real sshd on a host of its
// own (tests/harness/isolated_host.ts): .gitignore and profile excludes are honoured, odd file
// names survive, re-syncs add and delete, and the workspace marker survives --delete. What the
// host holds is read from the host's file system; nothing may land on this machine.
import assert from "node:assert/strict";
import { isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { createOk } from "../harness/test_vm.ts";

const ODD_NAME = "a b $(x) 'q'.txt";

isolatedTest(
  "vm-packer sync: filters, odd names, re-sync adds and deletes, marker survives",
  async (t) => {
    await using vm = await startIsolatedHost();
    const repo = `${vm.dir}/repo`;
    await Deno.mkdir(`${repo}/sub`, { recursive: true });
    await Deno.mkdir(`${repo}/ignored-dir`);
    await Deno.writeTextFile(`${repo}/.gitignore`, "ignored.txt\nignored-dir/\n");
    await Deno.writeTextFile(`${repo}/ignored.txt`, "not sent\n");
    await Deno.writeTextFile(`${repo}/ignored-dir/inside.txt`, "not sent\n");
    await Deno.writeTextFile(`${repo}/${ODD_NAME}`, "odd\n");
    await Deno.writeTextFile(`${repo}/keep.txt`, "keep\n");
    await Deno.writeTextFile(`${repo}/sub/nested.txt`, "nested\n");
    await Deno.writeTextFile(`${repo}/creds.secret`, "not sent\n");
    await Deno.writeTextFile(`${repo}/sub/more.secret`, "not sent\n");
    // rsync -a carries the mode over: the host then holds a directory its owner cannot write.
    await Deno.mkdir(`${repo}/ro`);
    await Deno.writeTextFile(`${repo}/ro/locked.txt`, "locked\n");
    await Deno.chmod(`${repo}/ro`, 0o555);
    const profile = await vm.profile("sync", { extra: ["sync:", '  exclude: ["*.secret"]'] });

    const remoteFiles = async (id: string) => {
      const result = await vm.cli(["exec", id, "--", "find", ".", "-type", "f"]);
      assert.equal(result.code, 0, result.stderr);
      return result.stdout.trim().split("\n").sort();
    };

    const { id, workspace } = await createOk(vm, ["--profile", profile, "--repo", repo]);
    assert.ok(workspace);

    await t.step("create --repo sends exactly the unfiltered files", async () => {
      assert.deepEqual(await remoteFiles(id), [
        "./.gitignore",
        "./.sandboxer.json",
        `./${ODD_NAME}`,
        "./keep.txt",
        "./ro/locked.txt",
        "./sub/nested.txt",
      ]);
      assert.equal(await Deno.readTextFile(vm.path(`${workspace}/${ODD_NAME}`)), "odd\n");
      assert.equal(((await Deno.stat(vm.path(`${workspace}/ro`))).mode ?? 0) & 0o777, 0o555);
    });

    await t.step("sync after local changes adds and deletes; the marker stays", async () => {
      await Deno.writeTextFile(`${repo}/new.txt`, "new\n");
      await Deno.remove(`${repo}/keep.txt`);
      await Deno.writeTextFile(`${repo}/sub/nested.txt`, "nested, changed\n");
      const result = await vm.cli(["sync", id, "--repo", repo, "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const report = JSON.parse(result.stdout);
      assert.equal(report.method, "rsync");
      assert.equal(report.deleted, 1);
      assert.deepEqual(await remoteFiles(id), [
        "./.gitignore",
        "./.sandboxer.json",
        `./${ODD_NAME}`,
        "./new.txt",
        "./ro/locked.txt",
        "./sub/nested.txt",
      ]);
      assert.equal(
        await Deno.readTextFile(vm.path(`${workspace}/sub/nested.txt`)),
        "nested, changed\n",
      );
      const marker = JSON.parse(await Deno.readTextFile(vm.path(`${workspace}/.sandboxer.json`)));
      assert.equal(marker.id, id);
    });

    await t.step("the workspace tears down after syncs, read-only directory included", async () => {
      const result = await vm.cli(["destroy", id]);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await vm.rootEntries(), []);
    });
  },
);
