import { startSshd } from "../tests/harness/sshd.ts";
import { makeTree } from "../bench/tree.ts";
import { selectEntries, localTarArgv, tarSync, bufferedExec } from "../bench/tar_sync.ts";
import { connectDirect } from "../bench/ssh2_stream.ts";
import { connectSsh } from "../src/transport/ssh.ts";
await using sshd = await startSshd();
const src = await Deno.makeTempDir();
await makeTree(src, { files: 2000, totalBytes: 40e6 });
const base = await Deno.makeTempDir(); await Deno.chmod(base, 0o755);
await new Deno.Command("chown", { args: [sshd.user, base] }).output();
const t = async (label: string, f: () => Promise<unknown>) => { const s = performance.now(); await f(); console.log(label, (performance.now() - s).toFixed(0), "ms"); };
const filters = { exclude: [".git/", "/.sandboxer.json"], gitignore: true };
for (let i = 0; i < 3; i++) await t("select", () => selectEntries(src, filters));
const entries = await selectEntries(src, filters);
const list = entries.flatMap((e) => [e.path, new Uint8Array([0])]);
for (let i = 0; i < 3; i++) await t("local tar > /dev/null", async () => {
  const [p, ...a] = localTarArgv(src);
  const c = new Deno.Command(p, { args: a, stdin: "piped", stdout: "piped" }).spawn();
  const w = c.stdin.getWriter(); for (const x of list) await w.write(x); await w.close();
  let n = 0; for await (const ch of c.stdout) n += ch.length; await c.status; console.log(" bytes", n);
});
for (let i = 0; i < 3; i++) await t("shell tar|ssh tar", () => new Deno.Command("sh", { args: ["-c", `mkdir -p ${base}/s${i} && chown ${sshd.user} ${base}/s${i} && tar -C ${src} -cf - --exclude=.git --exclude=build . | ssh -p ${sshd.port} -i ${sshd.identityFile} -o UserKnownHostsFile=${sshd.knownHostsFile} ${sshd.user}@127.0.0.1 tar -xf - -C ${base}/s${i}`] }).output());
const target = { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, knownHostsFile: sshd.knownHostsFile };
await using direct = await connectDirect({ ...target, hostKeyFingerprint: sshd.hostKeyFingerprint });
await using conn = await connectSsh(target);
let k = 0;
const ws = async () => { const d = `${base}/w${k++}`; await Deno.mkdir(d); await new Deno.Command("chown", { args: [sshd.user, d] }).output(); return d; };
for (let i = 0; i < 3; i++) { const w = await ws(); await t("tar direct stream", async () => console.log(" ", JSON.stringify(await tarSync(direct.exec, { source: src, workspace: w, ...filters })))); }
for (let i = 0; i < 3; i++) { const w = await ws(); await t("tar buffered", () => tarSync(bufferedExec((a, o) => conn.run(a, o)), { source: src, workspace: w, ...filters })); }
for (let i = 0; i < 3; i++) { const w = await ws(); await t("cat to /dev/null direct", () => direct.exec(["sh", "-c", "cat > /dev/null"], w, new Blob([new Uint8Array(42e6)]).stream())); }
for (let i = 0; i < 3; i++) { const w = await ws(); await t("cat to /dev/null buffered", () => conn.run(["sh", "-c", "cat > /dev/null"], { cwd: w, stdin: new Uint8Array(42e6) })); }
await new Deno.Command("rm", { args: ["-rf", src, base] }).output();
