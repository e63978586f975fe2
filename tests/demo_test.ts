// The README's demo command, as written, runs end to end and leaves nothing behind.
import assert from "node:assert/strict";
import { fencedBlocks, readDoc } from "./docs/markdown.ts";
import { ROOT } from "./helpers.ts";

Deno.test("README's demo command: create → sync → exec → destroy against a private sshd", async () => {
  const [demo] = fencedBlocks(await readDoc("README.md"))
    .filter((b) => b.lang === "sh" && b.code.includes("demo"));
  assert.equal(demo.code, "bash tools/demo.sh\n");
  const output = await new Deno.Command("bash", {
    args: ["-c", demo.code],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, stdout + new TextDecoder().decode(output.stderr));
  for (
    const step of [
      "started sshd",
      "$ sandboxer create",
      "synced this repo",
      "$ sandboxer exec",
      "destroyed",
      "holds no workspace again",
      "nothing left behind",
    ]
  ) {
    assert.ok(stdout.includes(step), `missing "${step}" in:\n${stdout}`);
  }
  assert.match(stdout, /deno\.json/, "the synced repo is listed in the workspace");
  // As root the demo makes a login user of its own for its sshd, and removes it.
  const user = /user (\S+), throwaway keys/.exec(stdout)?.[1];
  assert.ok(user, stdout);
  if (Deno.uid() === 0) {
    assert.match(user, /^sbxdemo-[0-9a-f]{8}$/);
    assert.ok(stdout.includes(`removed the login user ${user}`), stdout);
    const passwd = await new Deno.Command("getent", { args: ["passwd", user] }).output();
    assert.equal(passwd.code, 2, `${user} is left in /etc/passwd`);
  }
});
