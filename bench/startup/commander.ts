/**
 * Startup probe: the CLI parser only.
 *
 * @module
 */
import "../../src/deps/commander.ts";
