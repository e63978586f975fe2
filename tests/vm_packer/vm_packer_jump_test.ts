// ext.vm-packer through a ProxyJump host from the profile's ssh_config, end to end through the
// CLI: the target is an isolated host reachable ONLY through the jump host (no route from here),
// so create, sync, exec and destroy can only pass by taking the hop. One key is authorised on
// both hosts, as a profile's single identity_file is used for both hops.
import assert from "node:assert/strict";
import { isolatedTest, startIsolatedHost } from "../harness/isolated_host.ts";
import { createOk } from "../harness/test_vm.ts";

isolatedTest(
  "vm-packer through a ProxyJump host: the target is reachable only via the hop",
  async () => {
    await using bastion = await startIsolatedHost();
    await using inner = await startIsolatedHost({
      behind: bastion,
      authorize: [await Deno.readTextFile(`${bastion.identityFile}.pub`)],
    });
    const unreachable = await Deno.connect({ hostname: inner.host, port: 22 })
      .then((conn) => conn.close(), () => "unreachable");
    assert.equal(unreachable, "unreachable", "no route to the target from here");

    const knownHosts = `${inner.dir}/known_hosts_both`;
    await Deno.writeTextFile(
      knownHosts,
      (await Deno.readTextFile(bastion.knownHostsFile)) +
        (await Deno.readTextFile(inner.knownHostsFile)),
    );
    const sshConfig = `${inner.dir}/ssh_config`;
    await Deno.writeTextFile(
      sshConfig,
      [
        "Host inner",
        `  HostName ${inner.host}`,
        "  User sbx",
        `  ProxyJump sbx@${bastion.host}:22`,
        "",
      ]
        .join("\n"),
    );
    const profile = await inner.profile("jump", {
      target: {
        host: "inner",
        port: null,
        user: null,
        identity_file: bastion.identityFile,
        known_hosts: knownHosts,
        ssh_config: sshConfig,
      },
    });
    const repo = `${inner.dir}/repo`;
    await Deno.mkdir(repo);
    await Deno.writeTextFile(`${repo}/hello.txt`, "over the hop\n");

    const record = await createOk(inner, ["--profile", profile, "--name", "hop", "--repo", repo]);
    assert.equal(record.handle?.jump, `sbx@${bastion.host}:22`);
    assert.equal(
      await Deno.readTextFile(inner.path(`${record.workspace}/hello.txt`)),
      "over the hop\n",
    );
    await Deno.writeTextFile(`${repo}/more.txt`, "again\n");
    const synced = await inner.cli(["sync", "hop", "--repo", repo, "--json"]);
    assert.equal(synced.code, 0, synced.stderr);
    assert.equal(JSON.parse(synced.stdout).files, 1);
    const exec = await inner.cli(["exec", "hop", "--", "cat", "more.txt"]);
    assert.equal(exec.stdout, "again\n", exec.stderr);
    assert.match(await inner.log(), /Accepted publickey for sbx from 10\.214\.\d+\.\d+/);
    assert.deepEqual(await bastion.rootEntries(), [], "nothing was made on the jump host");

    const destroyed = await inner.cli(["destroy", "hop"]);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.deepEqual(await inner.rootEntries(), []);
  },
);
