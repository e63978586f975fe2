// The README's usage block and docs/profiles.md's --set example, run as written against a real
// sshd "build VM" (with stand-in ghc and cabal): the only changes are this machine's profile file
// for the name vm-haskell-build, its port, `sandboxer` for `deno task sandboxer` (the same argv,
// tests/helpers.ts), the project directory for `.`, and the id that create printed for `<id>`.
import assert from "node:assert/strict";
import { listDir } from "../helpers.ts";
import { startBuildVm, writeHaskellProject } from "./build_vm.ts";
import { commandsOf, fencedBlocks, readDoc, runScript } from "./markdown.ts";

Deno.test("README.md usage and docs/profiles.md overrides: every command runs as documented", async (t) => {
  await using box = await startBuildVm();
  const { vm } = box;
  await box.installClientKey();
  const profile = await box.haskellProfile();
  const project = `${box.scratch}/hello`;
  await writeHaskellProject(project, "Hello from the README");
  let id = "";
  const substitute = (text: string) =>
    text
      .replace(/^deno task sandboxer /, "sandboxer ")
      .replace(/(--profile|--target) vm-haskell-build\b/g, `$1 ${profile}`)
      .replace(/--set target\.port=2222\b/g, `--set target.port=${vm.sshd.port}`)
      .replace(/--repo \.(?=\s|$)/g, `--repo ${project}`)
      .replaceAll("<id>", id);
  const run = async (text: string, expected: number) => {
    const result = await runScript(substitute(text), { cwd: project, env: box.env });
    assert.equal(result.code, expected, `${text}\n${result.stderr}`);
    return result;
  };

  await t.step("README.md: Usage", async () => {
    const [usage] = fencedBlocks(await readDoc("README.md")).filter((b) => b.heading === "Usage");
    assert.equal(usage.lang, "sh");
    const commands = commandsOf(usage);
    assert.ok(commands.length >= 9, "the whole block");
    for (const command of commands) {
      const result = await run(command.text, command.exit);
      if (/ create .*--json/.test(command.text)) {
        const record = JSON.parse(result.stdout);
        assert.equal(record.status, "ready");
        id = record.id;
      } else if (/ exec /.test(command.text)) {
        assert.match(result.stdout, /Building executable 'hello'/);
      } else if (/ list$/.test(command.text)) {
        assert.match(result.stdout, new RegExp(`^${id}\\s+ready`, "m"));
      } else if (/ extend /.test(command.text)) {
        assert.match(result.stderr, new RegExp(`${id} now expires in 7h59m`));
      } else if (/ fetch /.test(command.text)) {
        assert.deepEqual(
          await listDir(`${project}/fetched/app`),
          ["Main.hs"],
          "fetched a directory",
        );
      } else if (/ destroy /.test(command.text)) {
        assert.match(result.stderr, new RegExp(`destroyed ${id}`));
      } else if (/ run /.test(command.text)) {
        // --artifact REMOTE without :LOCAL copies into the current directory.
        assert.deepEqual(await listDir(`${project}/sdist`), ["hello-0.1.0.0.tar.gz"]);
      } else if (/ profiles$/.test(command.text)) {
        assert.match(result.stdout, /^vm-haskell-build\s+ext\.vm-packer/m);
      }
    }
    assert.notEqual(id, "", "create printed an id");
    assert.deepEqual(
      (await listDir(vm.root)).filter((name) => name.startsWith("sbx-")),
      [],
      "every sandbox is gone",
    );
  });

  await t.step("docs/profiles.md: Overrides", async () => {
    const blocks = fencedBlocks(await readDoc("docs/profiles.md"))
      .filter((b) => b.heading === "Overrides");
    const [commands, printed] = [
      blocks.find((b) => b.lang === "sh"),
      blocks.find((b) => b.lang === "text"),
    ];
    assert.ok(commands && printed);
    const [good, bad] = commandsOf(commands);
    const created = JSON.parse((await run(good.text, good.exit)).stdout);
    assert.equal(created.status, "ready");
    assert.ok(created.expires_at, "a ttl");
    assert.equal(bad.exit, 1);
    assert.equal((await run(bad.text, bad.exit)).stderr, printed.code);
    await run(`sandboxer destroy ${created.id}`, 0);
  });
});
