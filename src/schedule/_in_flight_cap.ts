/**
 * The fleet's cap on requests in flight, with a first-come queue for the
 * ones that found it full (internal).
 *
 * @module
 */

/**
 * A first-come queue (the one the scheduler's waits share: the in-flight
 * cap's, the secret writes', the registers'): `push` at the back, `shift`
 * from the front, each O(1) amortised; its bound is its users' (each
 * workspace waits in it at most once).
 *
 * @example
 * ```ts
 * import { Fifo } from "./_in_flight_cap.ts";
 * const q = new Fifo<string>();
 * q.push("a");
 * q.push("b");
 * q.shift(); // "a"
 * q.size; // 1
 * ```
 */
export class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  /** Items queued. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  /**
   * Queues `item` at the back.
   *
   * @param item The item.
   */
  push(item: T): void {
    this.#items.push(item);
  }

  /**
   * Takes the front item.
   *
   * @returns It, or `undefined` when empty.
   */
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items.splice(0, this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Drops every item. */
  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

/** Runs a task when a slot is free; see {@link createLimiter}. */
export type Limiter = <T>(task: () => Promise<T>) => Promise<T>;

/**
 * A limiter that runs at most `concurrency` tasks at once, in the order they
 * were given (on a {@link Fifo}).
 *
 * @example
 * ```ts
 * import { createLimiter } from "./_in_flight_cap.ts";
 * const limit = createLimiter(2);
 * const results = await Promise.all([1, 2, 3].map((n) => limit(async () => n * 2)));
 * ```
 *
 * @param concurrency Tasks at once, at least 1.
 * @returns The limiter.
 */
export function createLimiter(concurrency: number): Limiter {
  const max = Math.max(1, Math.floor(concurrency));
  let running = 0;
  const waiting = new Fifo<() => void>();
  const release = () => {
    running--;
    const next = waiting.shift();
    if (next) {
      running++;
      next();
    }
  };
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (running >= max) {
      await new Promise<void>((resolve) => waiting.push(resolve));
    } else {
      running++;
    }
    try {
      return await task();
    } finally {
      release();
    }
  };
}

/**
 * A waiter: called when a slot is free for it. It returns `true` when it
 * took the slot (and will {@link InFlightCap.release} it later), `false`
 * when it no longer wants it (its workspace was removed, paused…), in which
 * case the slot goes to the next waiter.
 */
export type CapWaiter = () => boolean;

/** How fast the queue may be served; see {@link InFlightCap}. */
export interface CapPace {
  /** Waiters served per millisecond at most, now (read at each refill). */
  perMs: () => number;
  /** Waiters served at once before the pace applies. */
  burst: number;
  /** Milliseconds on the scheduler's monotonic clock. */
  now: () => number;
  /** Runs `fn` after `ms` (the scheduler's timer queue). */
  later: (ms: number, fn: () => void) => void;
}

/**
 * At most `max` requests in flight. Who finds the cap full may wait in a
 * first-come queue; a freed slot goes to the longest waiter before any
 * newcomer, so that no workspace loses its turn twice to others that happen
 * to be due at the same instant. The queue holds at most one entry per
 * workspace and kind (its owner dedupes), so it is bounded by the fleet.
 *
 * The queue is served no faster than its `pace` (a token bucket of
 * `burst`): a queue that grew while the platform hung drains at a steady
 * rate when it answers again, instead of one request per freed slot at
 * once. Hung requests time out together, so thousands of slots came free
 * in a moment, each opening a connection the pool then kept: a fleet of
 * 10,000 left 700 sockets and 130 MB behind after a hang, and the platform
 * got the whole backlog in a second.
 *
 * @example
 * ```ts
 * import { InFlightCap } from "./_in_flight_cap.ts";
 * const cap = new InFlightCap(1, {
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
 */
export class InFlightCap {
  /** The cap. */
  readonly max: number;
  #used = 0;
  #queue = new Fifo<CapWaiter>();
  #pace: CapPace;
  #tokens: number;
  #refilledAt: number;
  #drainArmed = false;

  /**
   * Creates the cap.
   *
   * @param max Requests in flight at most, at least 1.
   * @param pace How fast the queue may be served.
   */
  constructor(max: number, pace: CapPace) {
    this.max = Math.max(1, Math.floor(max));
    this.#pace = pace;
    this.#tokens = Math.max(1, pace.burst);
    this.#refilledAt = pace.now();
  }

  /** Slots taken now. */
  get used(): number {
    return this.#used;
  }

  /**
   * Takes a slot if one is free and nobody waits for one.
   *
   * @returns Whether a slot was taken.
   */
  tryTake(): boolean {
    if (this.#used >= this.max || this.#queue.size > 0) return false;
    this.#used++;
    return true;
  }

  /**
   * Queues `waiter` for the next free slot.
   *
   * @param waiter Called with a slot; see {@link CapWaiter}.
   */
  wait(waiter: CapWaiter): void {
    this.#queue.push(waiter);
    // A slot may be free while others waited for it and gave up.
    if (this.#used < this.max) {
      this.#used++;
      this.#handOver();
    }
  }

  /**
   * Takes a slot whether or not one is free, for work bounded elsewhere
   * (registers, at most `registerConcurrency`): it counts against the
   * others, which wait while it runs, and is never queued itself.
   */
  hold(): void {
    this.#used++;
  }

  /** Gives a slot back: to the longest waiter that still wants one, else free. */
  release(): void {
    if (this.#used > this.max) {
      this.#used--; // over the cap (a hold): nothing to hand over yet
      return;
    }
    this.#handOver();
  }

  /** Drops every waiter (on stop). */
  clear(): void {
    this.#queue.clear();
  }

  /**
   * Hands the slot held by the caller to a waiter, or frees it (when none
   * waits, or the pace says not yet: then a drain is armed for when it
   * allows one).
   */
  #handOver(): void {
    while (this.#queue.size > 0) {
      if (!this.#mayServe()) break;
      const waiter = this.#queue.shift();
      if (waiter && waiter()) {
        this.#tokens--;
        return;
      }
    }
    this.#used--;
  }

  /** Whether the pace allows serving a waiter now; if not, a drain is armed. */
  #mayServe(): boolean {
    const pace = this.#pace;
    const now = pace.now();
    const perMs = Math.max(1e-9, pace.perMs());
    this.#tokens = Math.min(
      Math.max(1, pace.burst),
      this.#tokens + Math.max(0, now - this.#refilledAt) * perMs,
    );
    this.#refilledAt = now;
    if (this.#tokens >= 1) return true;
    if (!this.#drainArmed) {
      this.#drainArmed = true;
      pace.later(Math.ceil((1 - this.#tokens) / perMs), () => this.#drain());
    }
    return false;
  }

  /** Serves waiters with the slots that are free, as the pace allows. */
  #drain(): void {
    this.#drainArmed = false;
    // Each turn serves a waiter (or drops one that gave up), or the pace
    // arms the next drain and the loop ends.
    while (
      this.#queue.size > 0 && this.#used < this.max && !this.#drainArmed
    ) {
      this.#used++;
      this.#handOver();
    }
  }
}
