// Profile values fill a confined extension's permission grants; a value that would widen a grant
// is a user error (exit 1, one line naming the profile field), never "internal error" (exit 70)
// from Deno refusing the worker's options, and never a wider grant than the registration means.
// What sandboxer itself lacks is named readably, not as "unknown access to a resource".
import assert from "node:assert/strict";
import { permissionErrorFrom } from "../../src/core/permissions.ts";
import { ROOT, runSandboxer, tempDir } from "../helpers.ts";

const SSH_DIR = `${ROOT}/examples/ext.ssh-dir`;

async function sshDirProfile(dir: string, host: string): Promise<string> {
  const file = `${dir}/sd.yaml`;
  await Deno.writeTextFile(
    file,
    [
      "id: profile.sd",
      "extension: ext.ssh-dir",
      "target:",
      `  host: ${JSON.stringify(host)}`,
      "  user: builder",
      `  identity_file: ${dir}/key`,
      "root: /srv/sandboxes",
      "",
    ].join("\n"),
  );
  return file;
}

for (const [host, reason] of [["*", "contains \\*, a wildcard"], ["", "is empty"]]) {
  Deno.test(`a confined extension with target.host ${JSON.stringify(host)} is a user error naming the field`, async () => {
    await using tmp = await tempDir();
    const profile = await sshDirProfile(tmp.path, host);
    const env = {
      SANDBOXER_HOME: `${tmp.path}/state`,
      SANDBOXER_EXTENSION_PATH: SSH_DIR,
      HOME: tmp.path,
    };
    const result = await runSandboxer(["create", "-p", profile, "--name", "wide"], env);
    assert.equal(result.code, 1, result.stderr);
    const errors = result.stderr.split("\n").filter((line) => line.includes("error"));
    assert.equal(errors.length, 1, result.stderr);
    assert.match(
      errors[0],
      new RegExp(
        `^sandboxer: error: ${profile}:4:9: target\\.host: ${
          JSON.stringify(host).replace("*", "\\*")
        } cannot be used here: it fills \\{target\\.host\\} in the extension's net permission "\\{target\\.host\\}:\\{target\\.port\\}" and ${reason}`,
      ),
    );
    // Refused before anything was recorded.
    const list = await runSandboxer(["list", "--all", "--json"], env);
    assert.deepEqual(JSON.parse(list.stdout), []);
  });
}

Deno.test("--set values are checked the same way, with --set as their place", async () => {
  await using tmp = await tempDir();
  const profile = await sshDirProfile(tmp.path, "build.example.com");
  const env = {
    SANDBOXER_HOME: `${tmp.path}/state`,
    SANDBOXER_EXTENSION_PATH: SSH_DIR,
    HOME: tmp.path,
  };
  for (
    const [set, reason] of [
      ["target.host=0.0.0.0/0", /"0\.0\.0\.0\/0" cannot be used here: .* address range/],
      ["target.host=evil.example:443", /Deno would read as a port/],
      [
        "target.identity_file=/",
        /target\.identity_file: "\/" cannot be used here: .* whole file system/,
      ],
      [`target.known_hosts=${tmp.path}`, /target\.known_hosts: .* whole home directory/],
    ] as const
  ) {
    const result = await runSandboxer(["create", "-p", profile, "--set", set], env);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`^sandboxer: error: --set ${set.replace(/[.*/]/g, "\\$&")}: `, "m"),
    );
    assert.match(result.stderr, reason);
  }
});

Deno.test("an extension whose module host sandboxer may not import from gets a readable error", async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/ext`);
  await Deno.writeTextFile(
    `${tmp.path}/ext/ext.remote.yaml`,
    "id: ext.remote\nversion: 1.0.0\ndescription: remote\nmodule: https://extensions.invalid:8443/remote.ts\nexport: Remote\n",
  );
  await Deno.writeTextFile(`${tmp.path}/r.yaml`, "id: profile.r\nextension: ext.remote\n");
  const result = await runSandboxer(["create", "-p", `${tmp.path}/r.yaml`], {
    SANDBOXER_HOME: `${tmp.path}/state`,
    SANDBOXER_EXTENSION_PATH: `${tmp.path}/ext`,
    HOME: tmp.path,
  });
  assert.equal(result.code, 1, result.stderr);
  assert.equal(
    result.stderr.trim(),
    "sandboxer: error: Missing permission: import access to extensions.invalid:8443, where extension ext.remote has its module, which sandboxer itself was not given; run again with --allow-import=extensions.invalid:8443 on sandboxer's own command line, or install the extension locally",
  );
});

Deno.test("a registration whose own permission entry Deno cannot parse is a one-line error", async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/ext`);
  const yaml = await Deno.readTextFile(`${SSH_DIR}/ext.ssh-dir.yaml`);
  await Deno.writeTextFile(
    `${tmp.path}/ext/ext.ssh-dir.yaml`,
    yaml.replace('net: ["{target.host}:{target.port}"]', 'net: ["*:22"]')
      .replace("module: ./ssh_dir.ts", `module: ${SSH_DIR}/ssh_dir.ts`),
  );
  const profile = await sshDirProfile(tmp.path, "build.example.com");
  const result = await runSandboxer(["create", "-p", profile], {
    SANDBOXER_HOME: `${tmp.path}/state`,
    SANDBOXER_EXTENSION_PATH: `${tmp.path}/ext`,
    HOME: tmp.path,
  });
  assert.equal(result.code, 1, result.stderr);
  assert.equal(
    result.stderr.trim(),
    `sandboxer: error: Extension "ext.ssh-dir" declares permissions Deno cannot grant (invalid host '*': invalid char found in FQDN); fix "permissions" in ${tmp.path}/ext/ext.ssh-dir.yaml`,
  );
});

Deno.test("permissionErrorFrom() says what Deno said when it names no permission", () => {
  const error = permissionErrorFrom(
    new Deno.errors.NotCapable("Can't escalate parent thread permissions"),
  );
  assert.equal(
    error.message,
    `Missing permission: some access to a resource Deno did not name (Deno said: "Can't escalate parent thread permissions"); run again with the --allow-* flag that grants it (see docs/permissions.md)`,
  );
});
