/**
 * The platform's rate limiter, as the fleet meets it (internal): when
 * several workspaces are refused with 429 within one interval, one warning
 * a minute says what the fleet needs and what the platform allows.
 *
 * @module
 */
import type { Fleet } from "./_fleet.ts";
import { logger } from "../shared/_logger.ts";
import type { Runtime } from "./_workspace_runtime.ts";

/** One fleet warning about rate limits at most this often, in ms. */
const WARN_EVERY_MS = 60_000;

/**
 * Requests a minute the fleet sends when healthy: a beat per interval per
 * workspace, plus the scheduled state questions.
 */
export function requestsPerMinute(fleet: Fleet, workspaces: number): number {
  const beats = workspaces * (60_000 / fleet.interval);
  const polls = fleet.statePollEvery > 0 ? beats / fleet.statePollEvery : 0;
  return Math.ceil(beats + polls);
}

/** A request of `ws` was refused with 429; `limit` is the platform's `X-RateLimit-Limit`. */
export function noteRateLimited(
  fleet: Fleet,
  ws: Runtime,
  limit: number | undefined,
): void {
  const book = fleet.rateLimited;
  const now = fleet.clock.now();
  if (now - book.since > fleet.interval) {
    book.since = now;
    book.ids.clear();
  }
  book.ids.add(ws.id);
  if (limit !== undefined) book.limit = limit;
  if (book.ids.size < 2 || now - book.warnedAt < WARN_EVERY_MS) return;
  book.warnedAt = now;
  const n = fleet.workspaces.length;
  const need = requestsPerMinute(fleet, n);
  const allows = book.limit === undefined
    ? "the platform did not say its limit (no X-RateLimit-Limit)"
    : `the platform allows ${book.limit} a minute per bucket`;
  logger.warn(
    "{refused} workspaces were refused with HTTP 429 (rate limited) within one interval: {count} workspaces at {seconds} s need {need} requests a minute; {allows}. " +
      "Each waits as long as the platform asks; if they share a bucket (one token for several, or the org header), give each its own token or ask for a higher RATE_LIMIT",
    {
      refused: book.ids.size,
      count: n,
      seconds: fleet.interval / 1000,
      need,
      allows,
    },
  );
}
