/**
 * Host key algorithms offered to the server, known_hosts types first.
 *
 * @module
 */

/** Host key algorithms ssh2 supports, in its own order of preference (ssh-dss left out). */
const HOST_KEY_ALGORITHMS: readonly string[] = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
];

/** A host key that passed verification. */
export interface VerifiedHostKey {
  type: string;
  base64: string;
  fingerprint: string;
}

/** Put the key types known_hosts has for the host first, so the server offers one we can check. */
export function preferredHostKeyAlgorithms(knownTypes: readonly string[]): string[] {
  const preferred: string[] = [];
  for (const type of knownTypes) {
    const algorithms = type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type];
    for (const algorithm of algorithms) {
      if (HOST_KEY_ALGORITHMS.includes(algorithm) && !preferred.includes(algorithm)) {
        preferred.push(algorithm);
      }
    }
  }
  return [...preferred, ...HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a))];
}
