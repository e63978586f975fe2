/**
 * Startup probe: the SSH library only.
 *
 * @module
 */
import { loadSsh2 } from "../../src/deps/ssh2.ts";

await loadSsh2();
