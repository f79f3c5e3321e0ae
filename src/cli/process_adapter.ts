/**
 * The process adapter for the runtime this runs on, loaded on demand (so
 * neither runtime loads the other's adapter).
 *
 * @module
 */
import type { ProcessAdapter } from "./child.ts";

/** The adapter for the runtime this runs on. */
export async function processAdapter(): Promise<ProcessAdapter> {
  if ("Deno" in globalThis) {
    return (await import("./child_deno.ts")).denoProcessAdapter();
  }
  return (await import("./child_node.ts")).nodeProcessAdapter();
}
