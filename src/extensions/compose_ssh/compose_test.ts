import assert from "node:assert/strict";
import { composeArgv, type ComposeProject, lastLines } from "./compose.ts";
import { parsePs } from "./project_objects.ts";

const project: ComposeProject = {
  command: ["docker-compose"],
  project: "sbx-a1",
  file: "/p/compose.yaml",
  env: {},
};

Deno.test("composeArgv() puts project and file before the subcommand, for v1 and v2", () => {
  assert.deepEqual(composeArgv(project, ["up", "-d"]), [
    "docker-compose",
    "-p",
    "sbx-a1",
    "-f",
    "/p/compose.yaml",
    "up",
    "-d",
  ]);
  assert.deepEqual(
    composeArgv(
      { ...project, command: ["docker", "compose"], projectDirectory: "/p dir/x" },
      ["down", "-v"],
    ),
    [
      "docker",
      "compose",
      "-p",
      "sbx-a1",
      "-f",
      "/p/compose.yaml",
      "--project-directory",
      "/p dir/x",
      "down",
      "-v",
    ],
  );
});

Deno.test("parsePs() reads id, service and status, and tells running from stopped", () => {
  const containers = parsePs(
    "abc\tsshd\tUp 3 seconds\ndef\tsshd\tExited (64) 2 seconds ago\n" +
      "ghi\tdb\tRestarting (1) 1 second ago\njkl\tweb\tCreated\n\n",
  );
  assert.deepEqual(containers.map((c) => [c.id, c.service, c.running]), [
    ["abc", "sshd", true],
    ["def", "sshd", false],
    ["ghi", "db", true],
    ["jkl", "web", false],
  ]);
  assert.equal(containers[1].status, "Exited (64) 2 seconds ago");
  assert.deepEqual(parsePs(""), []);
});

Deno.test("lastLines() keeps the last non-empty lines, trimmed and cut", () => {
  assert.deepEqual(lastLines("a\r\n\n  b  \nc\n", 2), ["b", "c"]);
  assert.deepEqual(lastLines("", 3), []);
  const [long] = lastLines("x".repeat(1000), 1);
  assert.equal(long.length, 300);
  assert.ok(long.endsWith("…"));
});
