/**
 * The `molecule-heartbeat` command.
 *
 * @module
 */

/**
 * Runs the command with the process's arguments and environment.
 *
 * @example
 * ```ts ignore
 * import { main } from "./cli.ts";
 * await main();
 * ```
 */
export async function main(): Promise<void> {
  await Promise.resolve();
  console.error("molecule-heartbeat: the command is not built yet");
}

if (import.meta.main) await main();
