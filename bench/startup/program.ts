/**
 * Startup probe: the whole CLI module graph, loaded but not run.
 *
 * @module
 */
import "../../src/cli/program.ts";
