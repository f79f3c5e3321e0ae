/**
 * The fleet's cap on requests in flight, with a first-come queue for the
 * ones that found it full (internal); the registers' and the writes'
 * limiters on the same.
 *
 * @module
 */

/**
 * A limiter that runs at most `concurrency` tasks at once, in the order they
 * were given (an unpaced {@link createInFlightCap}).
 *
 * @example
 * ```ts
 * import { createLimiter } from "./_in_flight_cap.ts";
 * const limit = createLimiter(2);
 * const results = await Promise.all([1, 2, 3].map((n) => limit(async () => n * 2)));
 * ```
 *
 * @param concurrency Tasks at once, at least 1.
 * @returns The limiter: runs a task when a slot is free.
 */
export function createLimiter(
  concurrency: number,
): <T>(task: () => Promise<T>) => Promise<T> {
  const cap = createInFlightCap(concurrency);
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (!cap.tryTake()) {
      await new Promise<void>((resolve) => cap.wait(() => (resolve(), true)));
    }
    try {
      return await task();
    } finally {
      cap.release();
    }
  };
}

/**
 * At most `max` requests in flight. Who finds the cap full may wait in a
 * first-come queue; a freed slot goes to the longest waiter before any
 * newcomer, so that no workspace loses its turn twice to others that happen
 * to be due at the same instant. The queue holds at most one entry per
 * workspace and kind (its owner dedupes), so it is bounded by the fleet.
 *
 * With a `pace`, the queue is served no faster than it (a token bucket of
 * `burst`): a queue that grew while the platform hung drains at a steady
 * rate when it answers again, instead of one request per freed slot at
 * once. Hung requests time out together, so thousands of slots came free
 * in a moment, each opening a connection the pool then kept: a fleet of
 * 10,000 left 700 sockets and 130 MB behind after a hang, and the platform
 * got the whole backlog in a second.
 *
 * @example
 * ```ts
 * import { createInFlightCap } from "./_in_flight_cap.ts";
 * const cap = createInFlightCap(1, {
 *   perMs: () => 1,
 *   burst: 1,
 *   now: () => performance.now(),
 *   later: (ms, fn) => void setTimeout(fn, ms),
 * });
 * cap.tryTake(); // true
 * cap.tryTake(); // false: full
 * cap.wait(() => (console.log("my turn"), true));
 * cap.release(); // "my turn": the slot goes straight to the waiter
 * ```
 *
 * @param max Requests in flight at most, at least 1.
 * @param pace How fast the queue may be served. @default {unpaced}
 */
export function createInFlightCap(max: number, pace?: {
  /** Waiters served per millisecond at most, now (read at each refill). */
  perMs: () => number;
  /** Waiters served at once before the pace applies. */
  burst: number;
  /** Milliseconds on the scheduler's monotonic clock. */
  now: () => number;
  /** Runs `fn` after `ms` (the scheduler's timer queue). */
  later: (ms: number, fn: () => void) => void;
}) {
  max = Math.max(1, Math.floor(max));
  /**
   * Waiters: each is called when a slot is free for it, and returns `true`
   * when it took the slot (and will release it later), `false` when it no
   * longer wants it (its workspace was removed, paused…), in which case the
   * slot goes to the next waiter. First come first served: taken from
   * `head`, the part before it dropped once it is most of the array.
   */
  let queue: ((() => boolean) | undefined)[] = [];
  let head = 0;
  const next = () => {
    const waiter = queue[head];
    queue[head++] = undefined;
    if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
    return waiter;
  };
  let used = 0;
  let tokens = Math.max(1, pace?.burst ?? 1);
  let refilledAt = pace?.now() ?? 0;
  let drainArmed = false;

  /** Whether the pace allows serving a waiter now; if not, a drain is armed. */
  const mayServe = (): boolean => {
    if (!pace) return true;
    const now = pace.now();
    const perMs = Math.max(1e-9, pace.perMs());
    tokens = Math.min(
      Math.max(1, pace.burst),
      tokens + Math.max(0, now - refilledAt) * perMs,
    );
    refilledAt = now;
    if (tokens >= 1) return true;
    if (!drainArmed) {
      drainArmed = true;
      pace.later(Math.ceil((1 - tokens) / perMs), drain);
    }
    return false;
  };

  /**
   * Hands the slot held by the caller to a waiter, or frees it (when none
   * waits, or the pace says not yet: then a drain is armed for when it
   * allows one).
   */
  const handOver = (): void => {
    while (head < queue.length) {
      if (!mayServe()) break;
      const waiter = next();
      if (waiter && waiter()) {
        tokens--;
        return;
      }
    }
    used--;
  };

  /** Serves waiters with the slots that are free, as the pace allows. */
  const drain = (): void => {
    drainArmed = false;
    // Each turn serves a waiter (or drops one that gave up), or the pace
    // arms the next drain and the loop ends.
    while (head < queue.length && used < max && !drainArmed) {
      used++;
      handOver();
    }
  };

  return {
    /** The cap. */
    max,
    /** Slots taken now. */
    get used(): number {
      return used;
    },
    /** Takes a slot if one is free and nobody waits for one; whether it did. */
    tryTake(): boolean {
      if (used >= max || head < queue.length) return false;
      used++;
      return true;
    },
    /** Queues `waiter` for the next free slot. */
    wait(waiter: () => boolean): void {
      queue.push(waiter);
      // A slot may be free while others waited for it and gave up.
      if (used < max) {
        used++;
        handOver();
      }
    },
    /**
     * Takes a slot whether or not one is free, for work bounded elsewhere
     * (registers, at most `registerConcurrency`): it counts against the
     * others, which wait while it runs, and is never queued itself.
     */
    hold(): void {
      used++;
    },
    /** Gives a slot back: to the longest waiter that still wants one, else free. */
    release(): void {
      if (used > max) used--; // over the cap (a hold): nothing to hand over yet
      else handOver();
    },
    /** Drops every waiter (on stop). */
    clear(): void {
      queue = [];
      head = 0;
    },
  };
}
