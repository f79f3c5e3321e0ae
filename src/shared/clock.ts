/**
 * Time, injectable so that schedules can be tested without waiting.
 *
 * @module
 */

/** The clock and timers the scheduler uses. */
export interface Clock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Calls `fn` after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer. */
  clearTimeout(handle: unknown): void;
}

/**
 * The real clock: `performance.now()` and the global timers.
 *
 * @example
 * ```ts
 * import { systemClock } from "@molecule/heartbeat/testing";
 * const t0 = systemClock.now();
 * ```
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) =>
    clearTimeout(handle as ReturnType<typeof setTimeout>),
};
