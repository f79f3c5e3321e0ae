/**
 * The fleet's cap on requests in flight, with a first-come queue for the
 * ones that found it full (internal).
 *
 * @module
 */

/**
 * A waiter: called when a slot is free for it. It returns `true` when it
 * took the slot (and will {@link InFlightCap.release} it later), `false`
 * when it no longer wants it (its workspace was removed, paused…), in which
 * case the slot goes to the next waiter.
 */
export type CapWaiter = () => boolean;

/**
 * At most `max` requests in flight. Who finds the cap full may wait in a
 * first-come queue; a freed slot goes to the longest waiter before any
 * newcomer, so that no workspace loses its turn twice to others that happen
 * to be due at the same instant. The queue holds at most one entry per
 * workspace and kind (its owner dedupes), so it is bounded by the fleet.
 *
 * @example
 * ```ts
 * import { InFlightCap } from "./_in_flight_cap.ts";
 * const cap = new InFlightCap(1);
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
  #queue: (CapWaiter | undefined)[] = [];
  #head = 0;

  /**
   * Creates the cap.
   *
   * @param max Requests in flight at most, at least 1.
   */
  constructor(max: number) {
    this.max = Math.max(1, Math.floor(max));
  }

  /** Slots taken now. */
  get used(): number {
    return this.#used;
  }

  /** Waiters queued now. */
  get waiting(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Takes a slot if one is free and nobody waits for one.
   *
   * @returns Whether a slot was taken.
   */
  tryTake(): boolean {
    if (this.#used >= this.max || this.waiting > 0) return false;
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
    this.#queue = [];
    this.#head = 0;
  }

  /** Hands the slot held by the caller to a waiter, or frees it. */
  #handOver(): void {
    while (this.#head < this.#queue.length) {
      const waiter = this.#queue[this.#head];
      this.#queue[this.#head++] = undefined;
      this.#compact();
      if (waiter && waiter()) return;
    }
    this.#used--;
  }

  #compact(): void {
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
  }
}
