/**
 * For tests of the remote scripts: run one with the local `sh`, as the host
 * runs it (`sh -c SCRIPT sh ARGS…`).
 *
 * @module
 */

/**
 * Run `sh -c script sh ...args` and collect its output.
 *
 * @param script The script (a constant of remote_scripts.ts and its kin).
 * @param args Its positional arguments.
 * @returns Exit code, stdout and stderr.
 */
export async function runScript(
  script: string,
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("sh", {
    args: ["-c", script, "sh", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}
