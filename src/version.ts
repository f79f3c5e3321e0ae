/**
 * The package version, kept in code so that a compiled binary needs no
 * package file at run time (a test checks it against deno.json).
 *
 * @module
 */

/**
 * The version of `@molecule/heartbeat`.
 *
 * @example
 * ```ts
 * import { VERSION } from "@molecule/heartbeat";
 * console.log(VERSION);
 * ```
 */
export const VERSION = "0.1.0";
