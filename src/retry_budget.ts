/**
 * A retry budget, as gRPC's and Finagle's: early retries are earned by
 * ordinary requests, so a failing platform never sees more than a fixed
 * share of extra load.
 *
 * @module
 */

/** Options of {@link RetryBudget}. */
export interface RetryBudgetOptions {
  /** Retries earned per ordinary request. @default {0.1} */
  ratio?: number;
  /** Ordinary requests per interval (the fleet size): one retry per interval is earned on top. */
  perInterval: number;
}

/**
 * Early retries earned by requests on schedule: each earns `ratio` of a
 * retry, plus `1 / perInterval` (one retry per interval for the fleet); a
 * retry spends one. It starts full, holding `max(2, ratio × perInterval)`.
 *
 * @example
 * ```ts
 * import { RetryBudget } from "@molecule/heartbeat";
 * const budget = new RetryBudget({ ratio: 0.1, perInterval: 100 });
 * budget.spend(); // true: it starts with 10
 * ```
 */
export class RetryBudget {
  /** Retries that had to wait because the budget was spent. */
  deferred = 0;
  #tokens: number;
  #max: number;
  #earn: number;

  /**
   * Creates a full budget.
   *
   * @param options The share of retries and the requests per interval.
   */
  constructor(options: RetryBudgetOptions) {
    const ratio = Math.max(0, options.ratio ?? 0.1);
    const perInterval = Math.max(1, options.perInterval);
    this.#earn = ratio + 1 / perInterval;
    this.#max = Math.max(2, ratio * perInterval);
    this.#tokens = this.#max;
  }

  /** A request on schedule went out: it earns its share of a retry. */
  earn(): void {
    this.#tokens = Math.min(this.#max, this.#tokens + this.#earn);
  }

  /**
   * Takes one early retry, if there is one; otherwise counts a deferred one.
   *
   * @returns Whether the retry may go early.
   */
  spend(): boolean {
    if (this.#tokens >= 1) {
      this.#tokens--;
      return true;
    }
    this.deferred++;
    return false;
  }
}
