/**
 * The platform's rate limiter (`middleware/ratelimit.go`), as the emulator
 * plays it: a token bucket per key, refilled continuously.
 *
 * @module
 */

/** What the limiter says of one request. */
export interface RateDecision {
  /** Whether the request may go on. */
  allowed: boolean;
  /** Headers every answer carries. */
  headers: Record<string, string>;
  /** Whole seconds to wait, when refused. */
  retryAfterSeconds: number;
}

/** A rate limiter over buckets of `perMinute` requests. */
export interface RateLimiter {
  /** Takes one request from `key`'s bucket. */
  take(key: string): RateDecision;
}

/** Buckets kept at most; the least recently used go first. */
const MAX_BUCKETS = 100_000;

/**
 * A limiter of `perMinute` requests a minute per key; a bucket starts full
 * and refills at `perMinute / 60` a second. Answers carry
 * `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix
 * seconds when the bucket is full again).
 */
export function createRateLimiter(
  perMinute: number,
  now: () => number,
): RateLimiter {
  const capacity = Math.max(1, Math.floor(perMinute));
  const perMs = capacity / 60_000;
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(key) {
      const t = now();
      let bucket = buckets.get(key);
      if (bucket) {
        buckets.delete(key); // re-inserted below: most recently used last
        bucket.tokens = Math.min(
          capacity,
          bucket.tokens + (t - bucket.at) * perMs,
        );
        bucket.at = t;
      } else {
        bucket = { tokens: capacity, at: t };
        if (buckets.size >= MAX_BUCKETS) {
          buckets.delete(buckets.keys().next().value!);
        }
      }
      buckets.set(key, bucket);
      const allowed = bucket.tokens >= 1;
      if (allowed) bucket.tokens -= 1;
      const toFullMs = (capacity - bucket.tokens) / perMs;
      const headers = {
        "X-RateLimit-Limit": String(capacity),
        "X-RateLimit-Remaining": String(Math.floor(bucket.tokens)),
        "X-RateLimit-Reset": String(Math.ceil((Date.now() + toFullMs) / 1000)),
      };
      const retryAfterSeconds = allowed
        ? 0
        : Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000));
      return { allowed, headers, retryAfterSeconds };
    },
  };
}
