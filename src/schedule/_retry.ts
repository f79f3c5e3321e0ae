/**
 * When a failed request is tried again (internal), the one decision for
 * beats and registers: exponential backoff with full jitter; a retry budget,
 * in the manner of gRPC's retry throttling and Finagle's budgets (early
 * retries are earned by accepted requests, plus a small floor, so a
 * platform that fails sees almost no extra load, and a few failing
 * workspaces in a healthy fleet are retried early); the wait an answer asks
 * for (`Retry-After`, and on a 429 at least a second: the platform's
 * fixed-window limiter truncates it, and 0 is common while the window is
 * still full); and the fleet's one warning about rate limits.
 *
 * @module
 */
import { logger } from "../shared/_logger.ts";
import type { Runtime } from "./_workspace_runtime.ts";

/**
 * What the decisions here read of the fleet (`_fleet.ts` imports this
 * file, so it is named by its shape).
 */
export interface RetryFleet {
  readonly budget: RetryBudget;
  readonly interval: number;
  readonly staleWindow: number;
  readonly statePollEvery: number;
  readonly clock: { now(): number };
  readonly workspaces: readonly unknown[];
  readonly rateLimited: {
    since: number;
    warnedAt: number;
    ids: Set<string>;
    limit: number | undefined;
  };
  backoff(attempt: number): number;
}

/**
 * When a request that failed for the `failures`-th time in a row is tried
 * again, in ms from now: early (the backoff, or the wait the answer asks
 * for if longer) when the retry budget holds a retry, else not before
 * `onTimeMs` (its next slot on schedule) nor the wait asked for. A 429's
 * wait is honoured up to half the stale window, any other's up to the
 * interval.
 *
 * @param fleet The fleet (its budget, backoff and windows).
 * @param failures Failures in a row, at least 1.
 * @param status The answer's HTTP status, if any.
 * @param retryAfterMs The wait the answer asked for, if any.
 * @param onTimeMs When it goes anyway, on schedule, in ms from now.
 */
export function retryDelay(
  fleet: RetryFleet,
  failures: number,
  status: number | undefined,
  retryAfterMs: number | undefined,
  onTimeMs: number,
): { delay: number; early: boolean } {
  const asked = Math.min(
    status === 429 ? fleet.staleWindow / 2 : fleet.interval,
    retryAfterMs ?? 0,
  );
  if (fleet.budget.spend()) {
    return { delay: Math.max(fleet.backoff(failures), asked), early: true };
  }
  return { delay: Math.max(onTimeMs, asked), early: false };
}

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
 * import { backoffDelay } from "./_retry.ts";
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

/** Options of {@link RetryBudget}. */
export interface RetryBudgetOptions {
  /** Retries earned per accepted request. */
  ratio: number;
  /** Requests on schedule per interval (the fleet size): they earn one retry per interval between them, accepted or not. */
  perInterval: number;
}

/**
 * Early retries: each accepted request earns `ratio` of a retry, each
 * request on schedule `1 / perInterval` (one retry per interval for the
 * fleet, whatever happens); a retry spends one. It starts full, holding at
 * most `max(2, ratio × perInterval)`.
 *
 * @example
 * ```ts
 * import { RetryBudget } from "./_retry.ts";
 * const budget = new RetryBudget({ ratio: 0.1, perInterval: 100 });
 * budget.spend(); // true: it starts with 10
 * budget.accepted(); // a request went through: 0.1 of a retry earned
 * ```
 */
export class RetryBudget {
  /** Retries that had to wait because the budget was spent. */
  deferred = 0;
  #tokens: number;
  #max: number;
  #ratio: number;
  #floor: number;

  /**
   * Creates a full budget.
   *
   * @param options The share of retries and the requests per interval.
   */
  constructor(options: RetryBudgetOptions) {
    const ratio = Math.max(0, options.ratio);
    const perInterval = Math.max(1, options.perInterval);
    this.#ratio = ratio;
    this.#floor = 1 / perInterval;
    this.#max = Math.max(2, ratio * perInterval);
    this.#tokens = this.#max;
  }

  /** Early retries it holds now (a fraction of one counts). */
  get tokens(): number {
    return this.#tokens;
  }

  /** A request on schedule went out: it earns the floor's share of a retry. */
  earn(): void {
    this.#tokens = Math.min(this.#max, this.#tokens + this.#floor);
  }

  /** A request was accepted: it earns `ratio` of a retry. */
  accepted(): void {
    this.#tokens = Math.min(this.#max, this.#tokens + this.#ratio);
  }

  /**
   * Takes one retry's worth for an extra request (a scheduled state
   * question), if there is one; nothing is counted as deferred otherwise.
   *
   * @returns Whether the request may go now.
   */
  trySpend(): boolean {
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  /**
   * Takes one early retry, if there is one; otherwise counts a deferred one.
   *
   * @returns Whether the retry may go early.
   */
  spend(): boolean {
    if (this.trySpend()) return true;
    this.deferred++;
    return false;
  }
}

/** One fleet warning about rate limits at most this often, in ms. */
const WARN_EVERY_MS = 60_000;

/** A request of `ws` was refused with 429; `limit` is the platform's `X-RateLimit-Limit`. */
export function noteRateLimited(
  fleet: RetryFleet,
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
  // Requests a minute the fleet sends when healthy: a beat per interval per
  // workspace, plus the scheduled state questions.
  const n = fleet.workspaces.length;
  const beats = n * (60_000 / fleet.interval);
  const polls = fleet.statePollEvery > 0 ? beats / fleet.statePollEvery : 0;
  const need = Math.ceil(beats + polls);
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
