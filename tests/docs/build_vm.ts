/**
 * A stand-in for a Haskell build VM and a build engineer's workstation, for
 * running the docs' commands as written:
 *
 * - the "VM" is a real sshd on loopback (tests/harness/test_vm.ts) whose
 *   sessions get a PATH with stand-ins for `ghc` and `cabal` (this machine
 *   has no GHC; the stand-ins build a tiny shell-script "binary" from
 *   app/Main.hs and keep a store in `$CABAL_DIR`, like the real cabal);
 * - the "workstation" is a HOME of its own with `sandboxer` on PATH (a
 *   shim running the CLI with the exact flags of `deno task sandboxer`);
 * - {@linkcode DocSession} runs a doc's `sh` blocks in bash, one block at a
 *   time, carrying `export`s and `cd`s from block to block.
 *
 * @module
 */

import { parse, stringify } from "../../src/deps/yaml.ts";
import { denoDir, denoNetworkEnv, ROOT, sandboxerTaskArgv } from "../helpers.ts";
import { startTestVm, type TestVm } from "../harness/test_vm.ts";
import { type Block, commandsOf, runScript, scriptOf, type ScriptResult } from "./markdown.ts";

const GHC = `#!/bin/sh
# Stand-in for GHC on the test build VM.
case "$1" in
  --version) echo "The Glorious Glasgow Haskell Compilation System, version 9.6.6" ;;
  --numeric-version) echo 9.6.6 ;;
  *) echo "stand-in ghc: only --version is supported" >&2; exit 2 ;;
esac
`;

const CABAL = `#!/bin/sh
# Stand-in for cabal-install on the test build VM: build, list-bin, test, sdist.
case "$1" in
  --version) echo "cabal-install version 3.12.1.0"
             echo "compiled using version 3.12.1.0 of the Cabal library"; exit 0 ;;
  --numeric-version) echo 3.12.1.0; exit 0 ;;
esac
pkg=$(ls -- *.cabal 2>/dev/null | head -n 1); pkg=\${pkg%.cabal}
if [ -z "$pkg" ]; then
  echo "Error: [Cabal-7134] No cabal.project file or cabal file matching the default glob './*.cabal' was found." >&2
  exit 1
fi
store="\${CABAL_DIR:-$HOME/.cabal}/store/ghc-9.6.6"
bin="$PWD/dist-newstyle/build/x86_64-linux/ghc-9.6.6/$pkg-0.1.0.0/x/$pkg/build/$pkg/$pkg"
case "$1" in
  build)
    mkdir -p "$store" || exit 1
    if [ -e "$store/deps-built" ]; then echo "Up to date: dependencies from $store"
    else echo "Building dependencies into $store"; echo >> "$store/deps-built"; fi
    echo "build" >> "$store/builds"
    mkdir -p "$(dirname "$bin")"
    message=$(sed -n 's/.*putStrLn "\\(.*\\)".*/\\1/p' app/Main.hs | head -n 1)
    printf '#!/bin/sh\\necho "%s"\\n' "$message" > "$bin" && chmod +x "$bin"
    echo "Building executable '$pkg' for $pkg-0.1.0.0.." ;;
  list-bin) echo "$bin" ;;
  sdist)
    mkdir -p dist-newstyle/sdist
    tar -czf "dist-newstyle/sdist/$pkg-0.1.0.0.tar.gz" -- *.cabal app
    echo "Wrote tarball sdist to $PWD/dist-newstyle/sdist/$pkg-0.1.0.0.tar.gz" ;;
  test)
    mkdir -p dist-newstyle/build
    if grep -q exitFailure test/*.hs; then
      echo "Test suite $pkg-test: FAIL"; echo "0 of 1 test suites (0 of 1 test cases) passed."; exit 1
    fi
    echo "Test suite $pkg-test: PASS"; echo "1 of 1 test suites (1 of 1 test cases) passed." ;;
  *) echo "stand-in cabal: $1 is not supported" >&2; exit 2 ;;
esac
`;

/** The VM, the workstation and their paths. */
export interface BuildVm extends AsyncDisposable {
  /** The sshd, its workspace root (`.../build`) and state. */
  readonly vm: TestVm;
  /** The workstation's HOME (sandboxer's state is under it, at the default place). */
  readonly home: string;
  /** Environment for doc commands: PATH with `sandboxer`, HOME, the Deno cache. */
  readonly env: Record<string, string>;
  /** A scratch directory (0755) for projects and profiles. */
  readonly scratch: string;
  /**
   * Write `<scratch>/profiles/<n>/vm-haskell-build.yaml`: profiles/vm-haskell-build.yaml with
   * only what differs on this machine changed — port, user, workspace root and CABAL_DIR.
   * The key and known_hosts stay `~/.ssh/sandboxer_build_vm` and `~/.ssh/known_hosts`.
   *
   * @param options Port (default the sshd's) and workspace root (default the VM's).
   * @returns Its path.
   */
  haskellProfile(options?: { port?: number; root?: string }): Promise<string>;
  /** Copy the sshd's key and known_hosts entry to where the haskell profile expects them. */
  installClientKey(): Promise<void>;
}

/**
 * Start the VM and set up the workstation.
 *
 * @param options `toolchain: false` leaves ghc and cabal out, as on a VM without GHC.
 * @returns The pair; dispose with `await using`.
 */
export async function startBuildVm(options: { toolchain?: boolean } = {}): Promise<BuildVm> {
  const fake = await Deno.makeTempDir({ prefix: "sbx-fake-toolchain-" });
  await Deno.chmod(fake, 0o755);
  const tools = options.toolchain === false ? [] : [["ghc", GHC], ["cabal", CABAL]];
  for (const [name, text] of tools) {
    await Deno.writeTextFile(`${fake}/${name}`, text, { mode: 0o755 });
    await Deno.chmod(`${fake}/${name}`, 0o755);
  }
  let vm: TestVm;
  try {
    vm = await startTestVm({
      extraConfig: [`SetEnv PATH=${fake}:/usr/local/bin:/usr/bin:/bin`],
    });
  } catch (error) {
    await Deno.remove(fake, { recursive: true });
    throw error;
  }
  const home = `${vm.dir}/home`;
  const scratch = `${vm.dir}/scratch`;
  const bin = `${vm.dir}/bin`;
  for (const dir of [home, scratch, bin]) await Deno.mkdir(dir, { mode: 0o755 });
  await Deno.chmod(scratch, 0o755);
  const argv = await sandboxerTaskArgv();
  await Deno.writeTextFile(
    `${bin}/sandboxer`,
    `#!/bin/sh\nexec ${argv.map(shQuote).join(" ")} "$@"\n`,
    { mode: 0o755 },
  );
  let profiles = 0;
  const env = {
    PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`,
    HOME: home,
    DENO_DIR: await denoDir(),
    ...denoNetworkEnv(),
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    LANG: "C.UTF-8",
  };
  return {
    vm,
    home,
    env,
    scratch,
    async haskellProfile(options = {}) {
      const profile = parse(await Deno.readTextFile(`${ROOT}/profiles/vm-haskell-build.yaml`));
      profile.target.port = options.port ?? vm.sshd.port;
      profile.target.user = vm.sshd.user;
      profile.workspace.root = options.root ?? vm.root;
      profile.env = (profile.env as string[]).map((e) =>
        e.replace(/^CABAL_DIR=\/build\//, `CABAL_DIR=${vm.root}/`)
      );
      const dir = `${scratch}/profiles/${++profiles}`;
      await Deno.mkdir(dir, { recursive: true });
      const file = `${dir}/vm-haskell-build.yaml`;
      await Deno.writeTextFile(file, stringify(profile));
      return file;
    },
    async installClientKey() {
      await Deno.mkdir(`${home}/.ssh`, { recursive: true, mode: 0o700 });
      await Deno.copyFile(vm.sshd.identityFile, `${home}/.ssh/sandboxer_build_vm`);
      await Deno.chmod(`${home}/.ssh/sandboxer_build_vm`, 0o600);
      await Deno.copyFile(vm.sshd.knownHostsFile, `${home}/.ssh/known_hosts`);
    },
    async [Symbol.asyncDispose]() {
      await vm[Symbol.asyncDispose]();
      await Deno.remove(fake, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Write a small cabal project ("hello") whose stand-in build prints `message`.
 *
 * @param dir Where.
 * @param message What the built binary prints.
 */
export async function writeHaskellProject(dir: string, message: string): Promise<void> {
  await Deno.mkdir(`${dir}/app`, { recursive: true });
  await Deno.mkdir(`${dir}/test`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/hello.cabal`,
    [
      "cabal-version: 3.0",
      "name: hello",
      "version: 0.1.0.0",
      "executable hello",
      "  main-is: Main.hs",
      "  hs-source-dirs: app",
      "  build-depends: base",
      "test-suite hello-test",
      "  type: exitcode-stdio-1.0",
      "  main-is: Spec.hs",
      "  hs-source-dirs: test",
      "  build-depends: base",
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(`${dir}/app/Main.hs`, `main :: IO ()\nmain = putStrLn "${message}"\n`);
  await setTestsFailing(dir, false);
  // Local build output that must never be synced (the profile excludes dist-newstyle/).
  await Deno.mkdir(`${dir}/dist-newstyle/cache`, { recursive: true });
  await Deno.writeTextFile(`${dir}/dist-newstyle/cache/plan.json`, "{}");
}

/**
 * Make the project's test suite pass or fail.
 *
 * @param dir The project.
 * @param failing Whether it should fail.
 */
export async function setTestsFailing(dir: string, failing: boolean): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/test/Spec.hs`,
    failing
      ? "import System.Exit\nmain :: IO ()\nmain = exitFailure\n"
      : "main :: IO ()\nmain = pure ()\n",
  );
}

/**
 * Runs a doc's `sh` blocks one at a time in bash, in the same environment
 * and working directory, carrying over what each block exports or `cd`s to.
 */
export class DocSession {
  /** The environment the next block starts with. */
  env: Record<string, string>;
  /** The working directory the next block starts in. */
  cwd: string;
  /** Every command run so far, as run (after substitution). */
  readonly ran: string[] = [];
  #doc: string;
  #substitute: (text: string) => string;

  /**
   * @param doc The doc's path, for messages.
   * @param env The starting environment.
   * @param cwd The starting directory.
   * @param substitute Turns a doc command into the one to run here.
   */
  constructor(
    doc: string,
    env: Record<string, string>,
    cwd: string,
    substitute: (text: string) => string,
  ) {
    this.#doc = doc;
    this.env = { ...env };
    this.cwd = cwd;
    this.#substitute = substitute;
  }

  /**
   * Run every command of a block; fail with the output when one exits with
   * another code than the doc says.
   *
   * @param block A `sh` block.
   * @returns The script's output.
   */
  async run(block: Block): Promise<ScriptResult> {
    const commands = commandsOf(block).map((c) => ({ ...c, text: this.#substitute(c.text) }));
    this.ran.push(...commands.map((c) => c.text));
    const state = await Deno.makeTempFile({ prefix: "sbx-doc-env-" });
    try {
      const script = scriptOf(commands, this.#doc) +
        `env -0 > ${shQuote(state)}; printf '%s\\0' "PWD=$PWD" >> ${shQuote(state)}\n`;
      const result = await runScript(script, { cwd: this.cwd, env: this.env });
      if (result.code !== 0) {
        throw new Error(
          `${this.#doc}:${block.line} (${block.heading}) failed:\n${result.stderr}\n${result.stdout}`,
        );
      }
      const env: Record<string, string> = {};
      for (const entry of (await Deno.readTextFile(state)).split("\0")) {
        const eq = entry.indexOf("=");
        if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
      }
      this.cwd = env.PWD;
      for (const name of ["PWD", "OLDPWD", "SHLVL", "_"]) delete env[name];
      this.env = env;
      return result;
    } finally {
      await Deno.remove(state).catch(() => {});
    }
  }
}

/**
 * POSIX single-quote a word for a shell.
 *
 * @param text The word.
 * @returns It quoted.
 */
export function shQuote(text: string): string {
  return `'${text.replaceAll("'", `'"'"'`)}'`;
}
