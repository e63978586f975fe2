/**
 * Startup probe: nothing at all (the floor of `deno run`).
 *
 * @module
 */
