import assert from "node:assert/strict";
import { composeEnvironment, parseEnvEntries, RESERVED_ENV } from "./environment.ts";

Deno.test("parseEnvEntries() splits at the first =, allows empty values, later wins", () => {
  assert.deepEqual(parseEnvEntries(["A=1", "B=x=y", "C=", "A=2"]), { A: "2", B: "x=y", C: "" });
  assert.deepEqual(parseEnvEntries([]), {});
});

Deno.test("parseEnvEntries() refuses entries without =, bad names and reserved names", () => {
  assert.throws(() => parseEnvEntries(["NOVALUE"]), /not NAME=value/);
  assert.throws(() => parseEnvEntries(["1X=a"]), /not NAME=value/);
  assert.throws(() => parseEnvEntries(["A B=a"]), /not NAME=value/);
  for (const name of RESERVED_ENV) {
    assert.throws(() => parseEnvEntries([`${name}=x`]), new RegExp(`sets ${name}`));
  }
  assert.throws(() => parseEnvEntries(["DOCKER_HOST=tcp://x"]), /export DOCKER_HOST instead/);
});

Deno.test("composeEnvironment() sets every SBX_ variable and keeps the profile's own", () => {
  const env = composeEnvironment({
    user: { SBX_SSH_IMAGE: "img:1" },
    id: "a1",
    project: "sbx-a1",
    port: 40022,
    sshUser: "dev",
    authorizedKey: "ssh-ed25519 AAAA c",
    hostKeyFile: "/s/keys/a1/ssh_host_ed25519_key",
    keyDir: "/s/keys/a1",
    workspaceRoot: "/build",
  });
  assert.deepEqual(env, {
    SBX_SSH_IMAGE: "img:1",
    SBX_ID: "a1",
    SBX_PROJECT: "sbx-a1",
    SBX_SSH_PORT: "40022",
    SBX_SSH_USER: "dev",
    SBX_AUTHORIZED_KEY: "ssh-ed25519 AAAA c",
    SBX_HOST_KEY_FILE: "/s/keys/a1/ssh_host_ed25519_key",
    SBX_KEY_DIR: "/s/keys/a1",
    SBX_WORKSPACE_ROOT: "/build",
  });
  // Every variable sandboxer sets is reserved, so a profile cannot shadow one by accident.
  for (const name of Object.keys(env).filter((n) => n !== "SBX_SSH_IMAGE")) {
    assert.ok(RESERVED_ENV.includes(name), name);
  }
});
