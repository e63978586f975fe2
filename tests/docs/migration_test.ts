// docs/migration-build-machines.md, run as written: every `sh` block in order against a real sshd
// "build VM" with stand-in ghc/cabal, the Makefile snippet through `make`, the ssh config and
// profile snippets as files, and every command in the table checked to be among those run.
import assert from "node:assert/strict";
import { workspaceRootEntries } from "../helpers.ts";
import { DocSession, setTestsFailing, startBuildVm, writeHaskellProject } from "./build_vm.ts";
import { type Block, commandsOf, fencedBlocks, readDoc } from "./markdown.ts";

const DOC = "docs/migration-build-machines.md";

Deno.test("docs/migration-build-machines.md: every command runs as documented", async () => {
  await using box = await startBuildVm();
  const { vm, home } = box;
  const markdown = await readDoc(DOC);
  const blocks = fencedBlocks(markdown);
  await box.installClientKey();
  const haskellProfile = await box.haskellProfile();
  const project = `${box.scratch}/hello`;
  await writeHaskellProject(project, "Hello from the build VM");
  const cppProject = `${box.scratch}/cpp-hello`;
  await Deno.mkdir(cppProject);
  await Deno.writeTextFile(
    `${cppProject}/hello.cpp`,
    '#include <cstdio>\nint main() { std::puts("hello from g++"); }\n',
  );
  await Deno.writeTextFile(`${cppProject}/Makefile`, "hello: hello.cpp\n\tg++ -o $@ $<\n");
  // The legacy ssh/scp/rsync lines read this machine's ~/.ssh/config only through -F.
  const sshConfig = `${home}/.ssh/config`;
  await Deno.writeTextFile(
    sshConfig,
    [
      "Host 127.0.0.1",
      `  IdentityFile ${home}/.ssh/sandboxer_build_vm`,
      `  UserKnownHostsFile ${home}/.ssh/known_hosts`,
      "  IdentitiesOnly yes",
      "  BatchMode yes",
      "",
    ].join("\n"),
  );

  // What differs between the doc's VM and this one: port, user, workspace root, profile file.
  const substitute = (text: string) =>
    text
      .replace(/(--profile |PROFILE \?= )vm-haskell-build\b/g, `$1${haskellProfile}`)
      .replace(/\b(ssh|scp)( -[pP]) 12222\b/g, `$1 -F ${sshConfig}$2 ${vm.sshd.port}`)
      .replace(/\bbuilder@/g, `${vm.sshd.user}@`)
      .replace(/(^|[\s'":=])\/build\b/g, `$1${vm.root}`)
      .replace(/^(\s*Port) 12223$/m, `$1 ${vm.sshd.port}`)
      .replace(/^(\s*User) builder$/m, `$1 ${vm.sshd.user}`);
  const session = new DocSession(DOC, box.env, project, substitute);
  const store = `${vm.root}/.cabal/store/ghc-9.6.6`;
  const hello = async () =>
    new TextDecoder().decode(
      (await new Deno.Command(`${project}/dist/hello`, { stdout: "piped" }).output()).stdout,
    );
  const byHeading = (heading: string) => blocks.filter((b) => b.heading === heading);
  const run = async (block: Block) => await session.run(block);
  const exercised = new Set<Block>();
  const use = (block: Block) => {
    exercised.add(block);
    return block;
  };

  // The hand-run workflow, as people do it today.
  for (const block of byHeading("The hand-run workflow, for reference")) await run(use(block));
  assert.equal(await hello(), "Hello from the build VM\n");
  assert.deepEqual(await workspaceRootEntries(vm.root), [], "the hand-made directory was removed");
  await Deno.remove(`${project}/dist`, { recursive: true });

  // Step by step: create, sync, exec, list, destroy.
  const [steps] = byHeading("The same, step by step with sandboxer").map(use);
  const stepOut = await run(steps);
  assert.match(stepOut.stdout, /Building dependencies into .*\/\.cabal\/store/);
  assert.match(stepOut.stdout, /Test suite hello-test: PASS/);
  assert.match(stepOut.stdout, /ana-wip\s+ready/);
  assert.deepEqual(
    await workspaceRootEntries(vm.root),
    [".cabal"],
    "workspace gone, cabal store kept",
  );

  // One command, then with an artifact; the store built by the first sandbox is reused.
  const [oneCommand, phases] = byHeading("One command: `sandboxer run`").map(use);
  const runOut = await run(oneCommand);
  assert.doesNotMatch(runOut.stdout, /Building dependencies/, "store reused across sandboxes");
  assert.match(runOut.stdout, /Up to date: dependencies from/);
  assert.equal(await hello(), "Hello from the build VM\n");
  assert.match(
    runOut.stderr,
    /phases: create [\d.]+s · sync [\d.]+s · setup [\d.]+s · run [\d.]+s · artifacts [\d.]+s · destroy [\d.]+s/,
  );
  assert.equal(phases.lang, "text");
  assert.match(
    phases.code,
    /^sandboxer: phases: create [\d.]+s · sync [\d.]+s · setup [\d.]+s · run [\d.]+s · artifacts [\d.]+s · destroy [\d.]+s\n$/,
  );
  assert.deepEqual(await workspaceRootEntries(vm.root), [".cabal"]);
  const builds = (await Deno.readTextFile(`${store}/builds`)).trim().split("\n");
  assert.equal(builds.length, 3, "three sandboxes built against the one store");
  await Deno.remove(`${project}/dist`, { recursive: true });

  // The make target, written into the project's Makefile and run by `make`.
  const [makefile, makeRun] = byHeading("The `make remote-build` target").map(use);
  assert.equal(makefile.lang, "make");
  await Deno.writeTextFile(`${project}/Makefile`, substitute(makefile.code));
  assert.match(await Deno.readTextFile(`${project}/Makefile`), /\n\tsandboxer run/, "tab kept");
  await run(makeRun);
  assert.equal(await hello(), "Hello from the build VM\n");

  // A failing test suite with --keep-on-failure.
  await setTestsFailing(project, true);
  const [failing] = byHeading("When the build fails").map(use);
  const failOut = await run(failing);
  assert.match(
    failOut.stderr,
    /kept sandbox ana-debug; destroy it with "sandboxer destroy ana-debug"/,
  );
  assert.match(failOut.stdout, /Test suite hello-test: FAIL/);
  assert.deepEqual(await workspaceRootEntries(vm.root), [".cabal"]);
  await setTestsFailing(project, false);

  // list --all and gc.
  const [cleanup] = byHeading("Cleaning up what was forgotten").map(use);
  const cleanOut = await run(cleanup);
  assert.match(cleanOut.stdout, /ana-debug\s+destroyed/);

  // Moving one VM: ssh config alias, a profile of one's own, smoke test, run.
  const moving = byHeading("Moving one VM at a time").map(use);
  const [aliasBlock, profileBlock, commands] = moving;
  assert.deepEqual(moving.map((b) => b.lang), ["sshconfig", "yaml", "sh"]);
  await Deno.writeTextFile(sshConfig, substitute(aliasBlock.code), { append: true });
  const target = /^# (~\/\S+)$/m.exec(profileBlock.code)?.[1];
  assert.ok(target, "the profile block names its file in its first line");
  const profileFile = target.replace(/^~/, home);
  await Deno.mkdir(profileFile.slice(0, profileFile.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(profileFile, substitute(profileBlock.code));
  session.cwd = cppProject;
  const moveOut = await run(commands);
  assert.match(moveOut.stdout, /vm-cpp-build\s+ext\.vm-packer\s+8h\s+\S+\/vm-cpp-build\.yaml/);
  assert.match(moveOut.stdout, /^g\+\+ -o hello hello\.cpp$/m);
  const built = await new Deno.Command(`${cppProject}/hello`, { stdout: "piped" }).output();
  assert.equal(new TextDecoder().decode(built.stdout), "hello from g++\n", "artifact copied back");
  assert.deepEqual(await workspaceRootEntries(vm.root), [".cabal"]);

  // Nothing was skipped: every block ran or became a file, and every command quoted in the
  // table is one of the commands run.
  assert.deepEqual(
    blocks.filter((b) => !exercised.has(b)).map((b) => `${b.line}: ${b.heading}`),
    [],
  );
  const ran = session.ran.join("\n");
  const table = markdown.split("\n").filter((line) => line.startsWith("| "));
  const quoted = table.flatMap((line) => [...line.matchAll(/`([^`]+)`/g)].map((m) => m[1]))
    .filter((code) => /^(sandboxer|ssh|scp|rsync) /.test(code));
  assert.ok(quoted.length >= 10, `found ${quoted.length} commands in the table`);
  for (const code of quoted) {
    assert.ok(ran.includes(substitute(code)), `table command not exercised: ${code}`);
  }
  for (const flag of quoted.join(" ").match(/--[a-z-]+/g) ?? []) {
    assert.ok(ran.includes(flag), `flag ${flag} in the table is exercised`);
  }
  assert.ok(commandsOf(steps).length >= 5);
});
