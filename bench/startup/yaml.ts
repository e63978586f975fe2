/**
 * Startup probe: the YAML parser only.
 *
 * @module
 */
import "yaml";
