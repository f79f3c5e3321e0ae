/**
 * The package version, read from `deno.json`, the one place it is written
 * (JSON modules are bundled into a compiled binary, so the binary needs no
 * package file at run time).
 *
 * @module
 */
import denoJson from "../../deno.json" with { type: "json" };

/**
 * The version of `@molecule/heartbeat`.
 *
 * @example
 * ```ts
 * import { VERSION } from "@molecule/heartbeat";
 * console.log(VERSION);
 * ```
 */
export const VERSION: string = denoJson.version;
