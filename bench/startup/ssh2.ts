/**
 * Startup probe: the SSH library only.
 *
 * @module
 */
// @ts-types="@types/ssh2"
import "ssh2";
