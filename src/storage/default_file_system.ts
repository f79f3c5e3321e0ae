/**
 * The file adapter for the runtime this runs on.
 *
 * @module
 */
import type { FileSystem } from "./file_system.ts";
import { createDenoFileSystem, denoFs } from "./file_system_deno.ts";

/**
 * The file adapter for this runtime: Deno's on Deno, `node:fs` elsewhere
 * (loaded only when needed, so the core imports no Node module).
 *
 * @example
 * ```ts
 * import { defaultFileSystem } from "./default_file_system.ts";
 * const fs = await defaultFileSystem();
 * ```
 *
 * @returns The adapter.
 */
export async function defaultFileSystem(): Promise<FileSystem> {
  const deno = denoFs();
  if (deno && typeof deno.writeTextFile === "function") {
    return createDenoFileSystem();
  }
  const { createNodeFileSystem } = await import("./file_system_node.ts");
  return createNodeFileSystem();
}
