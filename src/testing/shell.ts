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

/** A made workspace of {@linkcode scriptRoot}: its path, id, nonce, and the three as script arguments. */
export interface ScriptWorkspace {
  /** `<root>/sbx-<id>`. */
  ws: string;
  /** The sandbox id. */
  id: string;
  /** Its creation nonce. */
  nonce: string;
  /** `[ws, id, nonce]`, the first arguments of every workspace script. */
  args: string[];
}

/**
 * A temp dir with a workspace root `<dir>/build`, and a maker of marked
 * workspaces in it.
 *
 * @param prefix The temp dir's name prefix.
 * @param makeWorkspace The MAKE_WORKSPACE script (passed in: this module imports nothing of sandboxer's).
 * @returns The dir, the root and `workspace(id)`.
 */
export async function scriptRoot(prefix: string, makeWorkspace: string): Promise<{
  dir: string;
  root: string;
  workspace: (id: string) => Promise<ScriptWorkspace>;
}> {
  const dir = await Deno.makeTempDir({ prefix });
  const root = `${dir}/build`;
  await Deno.mkdir(root);
  const workspace = async (id: string) => {
    const nonce = crypto.randomUUID().replaceAll("-", "");
    const ws = `${root}/sbx-${id}`;
    const marker = JSON.stringify({ id, nonce, profile: "profile.t" });
    const made = await runScript(makeWorkspace, [root, ws, marker]);
    if (made.code !== 0) throw new Error(`MAKE_WORKSPACE ${ws}: ${made.stderr}`);
    return { ws, id, nonce, args: [ws, id, nonce] };
  };
  return { dir, root, workspace };
}
