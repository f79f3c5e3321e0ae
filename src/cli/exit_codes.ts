/**
 * The command's exit codes, and the one a run ends with when no workspace
 * is left to serve.
 *
 * @module
 */
import type { WorkspaceStatus } from "../schedule/types.ts";

/** Exit codes of the command. */
export const EXIT = {
  ok: 0,
  notAccepted: 1,
  config: 2,
  auth: 3,
  deleted: 4,
} as const;

/**
 * When every workspace is gone (rejected, or deleted on the platform), the
 * exit code: 4 when every one was deleted; else 3 when the platform refused
 * the token of any (`rejectedFor` `"token"`, or not said); else 2: the
 * platform refuses the ids as malformed (`rejectedFor` `"id"`), a
 * configuration error. `undefined` while one is still served.
 *
 * @example
 * ```ts ignore
 * import { goneCode } from "./exit_codes.ts";
 * hb.addEventListener("rejected", () => {
 *   const code = goneCode(hb.status().workspaces);
 *   if (code !== undefined) exit(code);
 * });
 * ```
 *
 * @param all Every workspace's status (`hb.status().workspaces`).
 * @returns The exit code, or `undefined`.
 */
export function goneCode(
  all: readonly WorkspaceStatus[],
): number | undefined {
  if (!all.every((w) => w.rejected || w.deleted)) return undefined;
  if (all.every((w) => w.deleted)) return EXIT.deleted;
  if (all.some((w) => w.rejected && !w.deleted && w.rejectedFor !== "id")) {
    return EXIT.auth;
  }
  return EXIT.config;
}
