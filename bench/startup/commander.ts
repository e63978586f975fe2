/**
 * Startup probe: the CLI parser only.
 *
 * @module
 */
import "@commander-js/extra-typings";
