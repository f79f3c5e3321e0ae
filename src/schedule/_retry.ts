/**
 * The parts of the retry decision (internal; the decision itself is the
 * fleet's `retryDelay`, in `_fleet.ts`): exponential backoff with full
 * jitter; a retry budget, in the manner of gRPC's retry throttling and
 * Finagle's budgets (early retries are earned by accepted requests, plus a
 * small floor, so a platform that fails sees almost no extra load, and a
 * few failing workspaces in a healthy fleet are retried early).
 *
 * @module
 */

/**
 * The delay before retry number `attempt` (1 for the first retry): a uniform
 * draw between `minMs` (default `min(100, capMs)`) and `min(capMs, baseMs ×
 * 2^(attempt-1))` ("full jitter"), so that many clients that failed together
 * do not retry together.
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./_retry.ts";
 * const ms = backoffDelay(3, { baseMs: 1000, capMs: 20_000 }); // between 100 and 4000
 * ```
 *
 * @param attempt How many attempts have failed in a row (≥ 1).
 * @param options Base, cap and floor in ms, and a uniform random source in [0, 1).
 * @returns Milliseconds to wait.
 */
export function backoffDelay(
  attempt: number,
  { baseMs = 1_000, capMs = 20_000, minMs = 100, random = Math.random }: {
    baseMs?: number;
    capMs?: number;
    minMs?: number;
    random?: () => number;
  } = {},
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.max(Math.min(minMs, capMs), Math.floor(random() * ceiling));
}

/**
 * Early retries: each accepted request earns `ratio` of a retry, each
 * request on schedule `1 / perInterval` (one retry per interval for the
 * fleet, whatever happens); a retry spends one. It starts full, holding at
 * most `max(2, ratio × perInterval)`.
 *
 * @example
 * ```ts
 * import { createRetryBudget } from "./_retry.ts";
 * const budget = createRetryBudget(0.1, 100);
 * budget.spend(); // true: it starts with 10
 * budget.accepted(); // a request went through: 0.1 of a retry earned
 * ```
 *
 * @param ratio Retries earned per accepted request.
 * @param perInterval Requests on schedule per interval (the fleet size).
 */
export function createRetryBudget(ratio: number, perInterval: number) {
  perInterval = Math.max(1, perInterval);
  const max = Math.max(2, ratio * perInterval);
  let tokens = max;
  return {
    /** Retries that had to wait because the budget was spent. */
    deferred: 0,
    /** Early retries it holds now (a fraction of one counts). */
    get tokens(): number {
      return tokens;
    },
    /** A request on schedule went out: it earns the floor's share of a retry. */
    earn(): void {
      tokens = Math.min(max, tokens + 1 / perInterval);
    },
    /** A request was accepted: it earns `ratio` of a retry. */
    accepted(): void {
      tokens = Math.min(max, tokens + ratio);
    },
    /** Takes one retry's worth for an extra request (a state question), if there is one. */
    trySpend(): boolean {
      if (tokens < 1) return false;
      tokens--;
      return true;
    },
    /** Takes one early retry, if there is one; otherwise counts a deferred one. */
    spend(): boolean {
      if (this.trySpend()) return true;
      this.deferred++;
      return false;
    },
  };
}
