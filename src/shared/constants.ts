/**
 * Numbers fixed by the platform's contract and by the reference client.
 *
 * @module
 */

/**
 * Default time between two heartbeats of one workspace, in milliseconds.
 *
 * The platform marks a workspace offline after 180 s of silence (its stale
 * window), so 20 s leaves room for eight missed beats.
 *
 * @example Use the default interval
 * ```ts
 * import { HEARTBEAT_INTERVAL_MS } from "@molecule/heartbeat";
 * console.log(HEARTBEAT_INTERVAL_MS / 1000); // 20
 * ```
 */
export const HEARTBEAT_INTERVAL_MS = 20_000;

/**
 * Upper bound of one request's time, in milliseconds; the effective timeout
 * is `min(REQUEST_TIMEOUT_MS, interval)`.
 *
 * @example Compute the timeout for a short interval
 * ```ts
 * import { REQUEST_TIMEOUT_MS } from "@molecule/heartbeat";
 * const timeout = Math.min(REQUEST_TIMEOUT_MS, 2_000); // 2000
 * ```
 */
export const REQUEST_TIMEOUT_MS = 10_000;

/**
 * How many beats `startHeartbeat()` sends together in one timer wake-up
 * by default: a fleet of N workspaces beats in `ceil(N / 8)` evenly spaced
 * groups per interval (bigger groups for fleets beating over 256 times a
 * second, so that there are at most 32 groups a second).
 *
 * @example
 * ```ts
 * import { BEAT_GROUP_SIZE } from "./constants.ts";
 * const groups = Math.ceil(1_000 / BEAT_GROUP_SIZE); // 125, 160 ms apart at 20 s
 * ```
 */
export const BEAT_GROUP_SIZE = 8;

/**
 * Consecutive 401/403 heartbeats after which the warning becomes an error.
 *
 * @example
 * ```ts
 * import { AUTH_LOUD_THRESHOLD } from "./constants.ts";
 * console.log(AUTH_LOUD_THRESHOLD); // 3
 * ```
 */
export const AUTH_LOUD_THRESHOLD = 3;

/**
 * After the first auth error, it is logged again every this many failures.
 *
 * @example
 * ```ts
 * import { AUTH_RELOG_INTERVAL } from "./constants.ts";
 * console.log(AUTH_RELOG_INTERVAL); // 20
 * ```
 */
export const AUTH_RELOG_INTERVAL = 20;

/**
 * Most bytes of a platform answer that are read; a larger body holds no
 * secret as far as the client is concerned.
 *
 * @example
 * ```ts
 * import { MAX_BODY_BYTES } from "./constants.ts";
 * console.log(MAX_BODY_BYTES); // 65536
 * ```
 */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * The platform's stale window, in milliseconds: its health sweep marks a
 * workspace silent this long offline (`awaiting_agent`), and its Redis
 * liveness key (re-created only by a register) lives this long
 * (`REMOTE_LIVENESS_STALE_AFTER` on the platform, 180 s by default).
 *
 * @example
 * ```ts
 * import { STALE_AFTER_MS } from "@molecule/heartbeat";
 * console.log(STALE_AFTER_MS); // 180000
 * ```
 */
export const STALE_AFTER_MS = 180_000;

/**
 * LogTape category every log record of this library is written under.
 *
 * @example Show this library's warnings on the console
 * ```ts
 * import { configure, getConsoleSink } from "@logtape/logtape";
 * import { LOG_CATEGORY } from "@molecule/heartbeat";
 * await configure({
 *   sinks: { console: getConsoleSink() },
 *   loggers: [
 *     { category: [...LOG_CATEGORY], lowestLevel: "warning", sinks: ["console"] },
 *     // LogTape's own notices (one at every configure() otherwise):
 *     { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
 *   ],
 * });
 * ```
 */
export const LOG_CATEGORY: readonly ["molecule", "heartbeat"] = [
  "molecule",
  "heartbeat",
];
