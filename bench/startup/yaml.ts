/**
 * Startup probe: the YAML parser only.
 *
 * @module
 */
import "../../src/deps/yaml.ts";
