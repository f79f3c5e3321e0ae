/**
 * How loudly to report consecutive 401/403 heartbeats, as the reference does.
 *
 * @module
 */
import {
  AUTH_LOUD_THRESHOLD,
  AUTH_RELOG_INTERVAL,
} from "../shared/constants.ts";

/** What to log for one failed beat: a warning, an error, or nothing. */
export type AuthFailureLevel = "warning" | "error" | "none";

/**
 * The log level for the `count`-th consecutive auth failure: a warning below
 * 3, an error at 3 and at every 20th failure after (23, 43, …), nothing
 * in between.
 *
 * @example
 * ```ts
 * import { authFailureLevel } from "./_auth_escalation.ts";
 * authFailureLevel(2); // "warning"
 * authFailureLevel(3); // "error"
 * authFailureLevel(4); // "none"
 * authFailureLevel(23); // "error"
 * ```
 *
 * @param count Consecutive auth failures, this one included (≥ 1).
 * @returns The level to log at.
 */
export function authFailureLevel(count: number): AuthFailureLevel {
  if (count < AUTH_LOUD_THRESHOLD) return "warning";
  return (count - AUTH_LOUD_THRESHOLD) % AUTH_RELOG_INTERVAL === 0
    ? "error"
    : "none";
}
