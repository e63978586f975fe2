/**
 * Startup probe: the SDK's manager and everything it imports (config, journal, extensions,
 * transport, ssh2, yaml).
 *
 * @module
 */
import "../../src/sandbox/manager.ts";
