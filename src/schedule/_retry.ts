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
