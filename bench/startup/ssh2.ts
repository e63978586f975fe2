/**
 * Startup probe: the SSH library only.
 *
 * @module
 */
import "../../src/deps/ssh2.ts";
