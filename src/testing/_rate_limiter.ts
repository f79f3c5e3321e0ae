/**
 * The platform's rate limiter (`middleware/ratelimit.go`), as the emulator
 * plays it: a fixed window of a minute per key, its count refilled whole
 * once the minute since the window opened is over.
 *
 * @module
 */

/** What the limiter says of one request. */
export interface RateDecision {
  /** Whether the request may go on. */
  allowed: boolean;
  /** Headers every answer carries. */
  headers: Record<string, string>;
  /**
   * Whole seconds until the window resets, truncated (so 0 while the window
   * is still full for less than a second); the `Retry-After` of a refusal.
   */
  retryAfterSeconds: number;
}

/** A rate limiter over windows of `perMinute` requests. */
export interface RateLimiter {
  /** Counts one request against `key`'s window. */
  take(key: string): RateDecision;
}

/** Windows kept at most; the least recently used go first. */
const MAX_WINDOWS = 100_000;

/** The window's length, in ms (the platform's `interval`). */
const WINDOW_MS = 60_000;

/**
 * A limiter of `perMinute` requests a minute per key, as the platform's:
 * a window opens with the first request of a key, holds `perMinute`
 * requests, and is refilled whole by the first request a minute or more
 * after it opened. A refused request takes nothing and opens nothing, but
 * it is counted against the window like any other (nothing is exempt).
 * Answers carry `X-RateLimit-Limit`, `X-RateLimit-Remaining` (what is left
 * after this request) and `X-RateLimit-Reset` (whole seconds from now until
 * the window resets, truncated).
 */
export function createRateLimiter(
  perMinute: number,
  now: () => number,
): RateLimiter {
  const rate = Math.max(1, Math.floor(perMinute));
  const windows = new Map<string, { tokens: number; openedAt: number }>();
  return {
    take(key) {
      const t = now();
      let window = windows.get(key);
      if (window) {
        windows.delete(key); // re-inserted below: most recently used last
      } else {
        window = { tokens: rate, openedAt: t };
        if (windows.size >= MAX_WINDOWS) {
          windows.delete(windows.keys().next().value!);
        }
      }
      windows.set(key, window);
      if (t - window.openedAt >= WINDOW_MS) {
        window.tokens = rate;
        window.openedAt = t;
      }
      const remaining = Math.max(0, window.tokens - 1);
      const resetSeconds = Math.max(
        0,
        Math.trunc((window.openedAt + WINDOW_MS - t) / 1000),
      );
      const headers = {
        "X-RateLimit-Limit": String(rate),
        "X-RateLimit-Remaining": String(remaining),
        "X-RateLimit-Reset": String(resetSeconds),
      };
      const allowed = window.tokens > 0;
      if (allowed) window.tokens--;
      return { allowed, headers, retryAfterSeconds: resetSeconds };
    },
  };
}
