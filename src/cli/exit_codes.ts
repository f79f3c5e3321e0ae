/**
 * The command's exit codes, and the one a run ends with when no workspace
 * is left to serve.
 *
 * @module
 */
import type { HeartbeatHandle } from "../schedule/start_heartbeat.ts";

/** Exit codes of the command. */
export const EXIT = {
  ok: 0,
  notAccepted: 1,
  config: 2,
  auth: 3,
  deleted: 4,
} as const;

/**
 * When every workspace is gone (token rejected at register, or deleted on
 * the platform), the exit code: 4 when every one was deleted, else 3;
 * `undefined` while one is still served.
 */
export function goneCode(hb: HeartbeatHandle): number | undefined {
  const all = hb.status().workspaces;
  if (!all.every((w) => w.rejected || w.deleted)) return undefined;
  return all.every((w) => w.deleted) ? EXIT.deleted : EXIT.auth;
}
