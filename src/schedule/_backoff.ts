/**
 * Exponential backoff with full jitter.
 *
 * @module
 */

/** Options of {@link backoffDelay}. */
export interface BackoffOptions {
  /** Delay ceiling of the first retry, in ms. @default {1000} */
  baseMs?: number;
  /** No delay is ever longer than this, in ms. @default {20000} */
  capMs?: number;
  /** Shortest delay, so that a zero draw does not hammer, in ms. @default {min(100, capMs)} */
  minMs?: number;
  /** A uniform random number in [0, 1). @default {Math.random} */
  random?: () => number;
}

/**
 * The delay before retry number `attempt` (1 for the first retry): a uniform
 * draw between `minMs` and `min(capMs, baseMs × 2^(attempt-1))` ("full
 * jitter"), so that many clients that failed together do not retry together.
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./_backoff.ts";
 * const ms = backoffDelay(3, { baseMs: 1000, capMs: 20_000 }); // between 100 and 4000
 * ```
 *
 * @param attempt How many attempts have failed in a row (≥ 1).
 * @param options Base, cap, floor and random source.
 * @returns Milliseconds to wait.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
): number {
  const cap = options.capMs ?? 20_000;
  const base = options.baseMs ?? 1_000;
  const min = Math.min(options.minMs ?? 100, cap);
  const random = options.random ?? Math.random;
  const exponent = Math.min(Math.max(attempt, 1) - 1, 30);
  const ceiling = Math.min(cap, base * 2 ** exponent);
  return Math.max(min, Math.floor(random() * ceiling));
}
