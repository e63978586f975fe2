import { startSshd, sshArgs } from "../tests/harness/sshd.ts";
import { makeTree } from "./tree.ts";
import { connectDirect } from "./ssh2_stream.ts";
import { rsyncOverConnection } from "./rsync_relay.ts";
await using sshd = await startSshd();
const src = await Deno.makeTempDir();
await makeTree(src, { files: 2000, totalBytes: 40e6 });
const base = await Deno.makeTempDir(); await Deno.chmod(base, 0o755);
await new Deno.Command("chown", { args: [sshd.user, base] }).output();
await using c = await connectDirect({ host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, hostKeyFingerprint: sshd.hostKeyFingerprint });
const common = ["-a", "--delete", "--filter=:- .gitignore", "--exclude=.git/"];
const e = ["ssh", ...sshArgs(sshd).slice(0, -1)].join(" ");
for (let i = 0; i < 4; i++) {
  let s = performance.now();
  const r = await rsyncOverConnection(c, [...common, `${src}/`, `${sshd.user}@${sshd.host}:${base}/relay${i}/`]);
  const first = performance.now() - s;
  if (r.code) console.log(r);
  s = performance.now();
  const r2 = await rsyncOverConnection(c, [...common, `${src}/`, `${sshd.user}@${sshd.host}:${base}/relay${i}/`]);
  const again = performance.now() - s;
  s = performance.now();
  await new Deno.Command("rsync", { args: [...common, "-e", e, `${src}/`, `${sshd.user}@${sshd.host}:${base}/plain${i}/`] }).output();
  const pfirst = performance.now() - s;
  s = performance.now();
  await new Deno.Command("rsync", { args: [...common, "-e", e, `${src}/`, `${sshd.user}@${sshd.host}:${base}/plain${i}/`] }).output();
  const pagain = performance.now() - s;
  console.log(`relay first ${first.toFixed(0)} resync ${again.toFixed(0)} (codes ${r.code}/${r2.code}) | plain first ${pfirst.toFixed(0)} resync ${pagain.toFixed(0)}`);
}
// failure mode: remote has no such rsync path
const bad = await rsyncOverConnection(c, ["-a", "--rsync-path=/nonexistent/rsync", `${src}/`, `${sshd.user}@${sshd.host}:${base}/bad/`]);
console.log("missing remote rsync → code", bad.code, bad.stderr.trim().split("\n").slice(-2));
await new Deno.Command("rm", { args: ["-rf", src, base] }).output();
