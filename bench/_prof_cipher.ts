import { startSshd } from "../tests/harness/sshd.ts";
import { connectDirect } from "./ssh2_stream.ts";
await using sshd = await startSshd();
const target = { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, hostKeyFingerprint: sshd.hostKeyFingerprint };
for (const ciphers of [undefined, ["chacha20-poly1305@openssh.com"], ["aes128-gcm@openssh.com"], ["aes256-gcm@openssh.com"], ["aes128-ctr"]]) {
  await using c = await connectDirect({ ...target, ciphers });
  const ts = [];
  for (let i = 0; i < 4; i++) { const s = performance.now(); await c.exec(["sh", "-c", "cat > /dev/null"], "/", new Blob([new Uint8Array(42e6)]).stream()); ts.push(Math.round(performance.now() - s)); }
  console.log(ciphers ?? "default", ts);
}
