import assert from "node:assert/strict";
import { ConfigError, ExtensionError } from "../../core/errors.ts";
import type { ConfigSource, DeclaredPermissions } from "../../config/types.ts";
import type { JsonObject } from "../../core/types.ts";
import { extensionCode, resolvePermissions } from "./permissions.ts";

const source: ConfigSource = {
  file: "p.yaml",
  locate: (field) => ({ file: "p.yaml", line: 7, column: 3, field }),
};
const DECLARED: DeclaredPermissions = {
  net: ["{target.host}:{target.port}", "{jump.host}"],
  read: ["{target.identity_file}", "{cache}/index"],
  write: ["{target.known_hosts}"],
  run: ["{tool}"],
  env: ["{target.passphrase_env}", "SANDBOXER_{suffix}"],
};
const GOOD = {
  target: {
    host: "build-vm.example.com",
    port: 2222,
    identity_file: "/home/me/.ssh/build_key",
    known_hosts: "/home/me/.ssh/known_hosts",
    passphrase_env: "SANDBOXER_PASSPHRASE",
  },
  jump: { host: "10.0.0.1" },
  cache: "/var/cache/build",
  tool: "rsync",
  suffix: "TOKEN",
};

function resolve(change: (values: typeof GOOD) => void) {
  const values = structuredClone(GOOD);
  change(values);
  return resolvePermissions(DECLARED, values as unknown as JsonObject, {
    source,
    home: "/home/me",
    cwd: "/work",
  });
}

Deno.test("resolvePermissions() fills placeholders from values that name one thing each", () => {
  assert.deepEqual(resolve(() => {}), {
    net: ["build-vm.example.com:2222", "10.0.0.1"],
    read: ["/home/me/.ssh/build_key", "/var/cache/build/index"],
    write: ["/home/me/.ssh/known_hosts"],
    run: ["rsync"],
    env: ["SANDBOXER_PASSPHRASE", "SANDBOXER_TOKEN"],
  });
  const ipv6 = resolvePermissions({ net: ["[{ip}]:{port}"] }, { ip: "::1", port: 22 });
  assert.deepEqual(ipv6.net, ["[::1]:22"]);
  const unset = resolve((v) => delete (v.jump as Partial<typeof v.jump>).host);
  assert.deepEqual(
    unset.net,
    ["build-vm.example.com:2222"],
    "an unset optional field needs no grant",
  );
});

// Each value would widen what the registration declares; the error names the profile field.
const WIDENING: [string, (v: typeof GOOD) => void, string, RegExp][] = [
  ["a wildcard host", (v) => v.target.host = "*", "target.host", /contains \*, a wildcard/],
  ["an empty host", (v) => v.target.host = "", "target.host", /is empty/],
  ["a wildcard subdomain", (v) => v.target.host = "*.example.com", "target.host", /wildcard/],
  ["an address range", (v) => v.target.host = "0.0.0.0/0", "target.host", /address range/],
  ["a range without port", (v) => v.jump.host = "10.0.0.0/8", "jump.host", /address range/],
  ["a host with its own port", (v) => v.target.host = "evil.com:443", "target.host", /as a port/],
  ["an unbracketed IPv6", (v) => v.target.host = "::1", "target.host", /\[brackets\]/],
  ["a port wildcard", (v) => v.target.host = "host:*", "target.host", /wildcard/],
  ["two hosts", (v) => v.target.host = "a.example,b.example", "target.host", /comma/],
  ["white space", (v) => v.target.host = "a b", "target.host", /white space/],
  ["an option", (v) => v.target.host = "--allow-all", "target.host", /reads as an option/],
  ["a control character", (v) => v.target.host = "a\nb", "target.host", /control character/],
  [
    "port 0",
    (v) => (v.target as { port: unknown }).port = 0,
    "target.port",
    /port from 1 to 65535/,
  ],
  ["port 70000", (v) => v.target.port = 70000, "target.port", /port from 1 to 65535/],
  [
    "a port list",
    (v) => (v.target as { port: unknown }).port = "22-25",
    "target.port",
    /1 to 65535/,
  ],
  [
    "the root directory",
    (v) => v.target.identity_file = "/",
    "target.identity_file",
    /whole file system/,
  ],
  [
    "the home directory",
    (v) => v.target.known_hosts = "/home/me",
    "target.known_hosts",
    /whole home/,
  ],
  [
    "an ancestor of home",
    (v) => v.target.identity_file = "/home",
    "target.identity_file",
    /holds your home/,
  ],
  [
    "a relative path that is home",
    (v) => v.target.identity_file = "../home/me",
    "target.identity_file",
    /"\.\."/,
  ],
  ["a path with ..", (v) => v.cache = "/var/cache/../../", "cache", /"\.\."/],
  [
    "a path wildcard",
    (v) => v.target.identity_file = "/home/me/*",
    "target.identity_file",
    /wildcard/,
  ],
  ["two paths", (v) => v.target.identity_file = "/a,/b", "target.identity_file", /comma/],
  [
    "an env wildcard",
    (v) => v.target.passphrase_env = "SANDBOXER_*",
    "target.passphrase_env",
    /wildcard/,
  ],
  [
    "a bare env wildcard",
    (v) => v.target.passphrase_env = "*",
    "target.passphrase_env",
    /wildcard/,
  ],
  [
    "an env name with =",
    (v) => v.target.passphrase_env = "A=B",
    "target.passphrase_env",
    /environment variable/,
  ],
  ["a suffix that is a wildcard", (v) => v.suffix = "*", "suffix", /wildcard/],
  ["an empty env name", (v) => v.target.passphrase_env = "", "target.passphrase_env", /is empty/],
  ["two programs", (v) => v.tool = "rsync,sh", "tool", /comma/],
  ["a program option", (v) => v.tool = "-c", "tool", /option/],
  ["a relative program path", (v) => v.tool = "bin/../sh", "tool", /"\.\."/],
];

for (const [name, change, field, reason] of WIDENING) {
  Deno.test(`resolvePermissions() refuses ${name}, naming the field`, () => {
    assert.throws(() => resolve(change), (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.location.field, field);
      assert.ok(error.message.startsWith(`p.yaml:7:3: ${field}: `), error.message);
      assert.match(error.message, reason);
      assert.match(error.message, /cannot be used here: it fills \{/);
      return true;
    });
  });
}

Deno.test("resolvePermissions() refuses a path that is a link to the root or to home", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.symlink("/", `${dir}/all`);
    await Deno.symlink(dir, `${dir}/me`);
    for (
      const [value, home, reason] of [
        [`${dir}/all`, "/home/me", `whole file system (${dir}/all leads to /)`],
        [`${dir}/me`, dir, `whole home directory (${dir}/me leads to ${dir})`],
      ]
    ) {
      assert.throws(
        () => resolvePermissions({ read: ["{key}"] }, { key: value }, { source, home }),
        (error: unknown) => error instanceof ConfigError && error.message.includes(reason),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("extensionCode() grants the module directory's regular files, not links or dot-files", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    const ext = `${dir}/ext`;
    await Deno.mkdir(`${ext}/lib/deep`, { recursive: true });
    await Deno.mkdir(`${ext}/.git`);
    await Deno.writeTextFile(`${ext}/mod.ts`, "export {};");
    await Deno.writeTextFile(`${ext}/lib/deep/a.json`, "{}");
    await Deno.writeTextFile(`${ext}/.env`, "TOKEN=x");
    await Deno.writeTextFile(`${ext}/.git/config`, "[core]");
    await Deno.writeTextFile(`${dir}/secret`, "x");
    await Deno.symlink(`${dir}/secret`, `${ext}/link.txt`);
    await Deno.symlink(dir, `${ext}/lib/up`);
    // Reached through a symlinked directory, the module is granted by its real path.
    await Deno.symlink(ext, `${dir}/alias`);
    const code = await extensionCode("ext.x", `file://${dir}/alias/mod.ts`, { home: "/home/me" });
    assert.equal(code.url, `file://${ext}/mod.ts`);
    assert.equal(code.dir, ext);
    assert.deepEqual(code.files.toSorted(), [`${ext}/lib/deep/a.json`, `${ext}/mod.ts`]);
    assert.equal(code.remoteHost, undefined);

    await assert.rejects(
      extensionCode("ext.x", `file://${ext}/mod.ts`, { maxFiles: 1 }),
      /holds more than 1 files/,
    );
    for (
      const [options, why] of [
        [
          { home: ext },
          /has its module in .*\/ext, your home directory: its code could read every file there/,
        ],
        [{ home: `${ext}/lib` }, /which holds your home directory/],
        [{ stateDir: `${ext}/lib/deep/state` }, /which holds sandboxer's state directory/],
      ] as const
    ) {
      await assert.rejects(extensionCode("ext.x", `file://${ext}/mod.ts`, options), (error) => {
        assert.ok(error instanceof ExtensionError);
        assert.match(error.message, why);
        return true;
      });
    }
    await assert.rejects(
      extensionCode("ext.x", `file://${ext}/missing.ts`),
      /has no module at .*missing\.ts; fix "module" in its registration/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("extensionCode() gives a URL module no files and only its own host", async () => {
  const code = await extensionCode("ext.x", "https://example.com:8443/x/mod.ts");
  assert.deepEqual(code, {
    url: "https://example.com:8443/x/mod.ts",
    files: [],
    remoteHost: "example.com:8443",
  });
});

Deno.test("resolvePermissions() grants a pool's {target.…} templates for every entry of targets", () => {
  const grants = resolvePermissions(
    { net: ["{target.host}:{target.port}"], read: ["{target.identity_file}"] },
    {
      targets: [
        { host: "build-1", port: 12222, identity_file: "/keys/a" },
        { host: "build-2", port: 12223 },
      ],
    },
    { source, home: "/home/me" },
  );
  assert.deepEqual(grants.net, ["build-1:12222", "build-2:12223"]);
  assert.deepEqual(grants.read, ["/keys/a"]);
  assert.throws(
    () =>
      resolvePermissions({ net: ["{target.host}:{target.port}"] }, {
        targets: [{ host: "a", port: 22 }, { host: "*", port: 22 }],
      }, { source }),
    (error) => error instanceof ConfigError && error.location.field === "targets[1].host",
  );
});
