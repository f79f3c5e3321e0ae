/**
 * Many timers on one: a binary heap of due times behind a single underlying
 * timer, so that ten thousand schedules cost one timer, not ten thousand.
 *
 * @module
 */
import { type Clock, systemClock } from "../shared/clock.ts";

/** A task in a {@link TimerQueue}. */
export interface QueuedTimer {
  /** When it is due, on the queue's clock. */
  readonly due: number;
}

interface Entry extends QueuedTimer {
  due: number;
  fn: () => void;
  index: number;
}

/**
 * Runs callbacks at due times, with one underlying timer armed for the
 * earliest. A callback that throws does not stop the others.
 *
 * @example
 * ```ts
 * import { TimerQueue } from "./_timer_queue.ts";
 * const queue = new TimerQueue();
 * const timer = queue.at(performance.now() + 10, () => console.log("tick"));
 * queue.cancel(timer);
 * ```
 */
export class TimerQueue {
  #heap: Entry[] = [];
  #clock: Clock;
  #handle: unknown = undefined;
  #armedFor = Infinity;
  #firing = false;
  #onError: (error: unknown) => void;

  /**
   * Creates an empty queue.
   *
   * @param clock Time and timers. @default {systemClock}
   * @param onError Called with what a callback threw. @default {console.error}
   */
  constructor(
    clock: Clock = systemClock,
    onError: (error: unknown) => void = console.error,
  ) {
    this.#clock = clock;
    this.#onError = onError;
  }

  /** How many timers are pending. */
  get size(): number {
    return this.#heap.length;
  }

  /**
   * Schedules `fn` at `due` (on the queue's clock).
   *
   * @param due When to run it.
   * @param fn What to run.
   * @returns A handle for {@link TimerQueue.cancel}.
   */
  at(due: number, fn: () => void): QueuedTimer {
    const entry: Entry = { due, fn, index: this.#heap.length };
    this.#heap.push(entry);
    this.#up(entry.index);
    this.#arm();
    return entry;
  }

  /**
   * Cancels a pending timer; does nothing if it already ran or was cancelled.
   *
   * @param timer The handle {@link TimerQueue.at} returned.
   */
  cancel(timer: QueuedTimer): void {
    this.#remove(timer as Entry);
    this.#arm();
  }

  #remove(entry: Entry): void {
    const i = entry.index;
    if (i < 0 || this.#heap[i] !== entry) return;
    entry.index = -1;
    const last = this.#heap.pop()!;
    if (last !== entry) {
      this.#heap[i] = last;
      last.index = i;
      this.#down(i);
      this.#up(i);
    }
  }

  /** Cancels every timer and releases the underlying one. */
  clear(): void {
    for (const entry of this.#heap) entry.index = -1;
    this.#heap = [];
    this.#disarm();
  }

  #disarm(): void {
    if (this.#handle !== undefined) this.#clock.clearTimeout(this.#handle);
    this.#handle = undefined;
    this.#armedFor = Infinity;
  }

  #arm(): void {
    if (this.#firing) return;
    const first = this.#heap[0];
    if (!first) return this.#disarm();
    if (this.#handle !== undefined && this.#armedFor <= first.due) return;
    this.#disarm();
    this.#armedFor = first.due;
    const delay = Math.max(0, first.due - this.#clock.now());
    this.#handle = this.#clock.setTimeout(() => this.#fire(), delay);
  }

  #fire(): void {
    this.#handle = undefined;
    this.#armedFor = Infinity;
    this.#firing = true;
    const now = this.#clock.now();
    // Run everything due; a callback may schedule more, due later.
    while (this.#heap.length > 0 && this.#heap[0].due <= now) {
      const entry = this.#heap[0];
      this.#remove(entry);
      try {
        entry.fn();
      } catch (error) {
        this.#onError(error);
      }
    }
    this.#firing = false;
    this.#arm();
  }

  #up(i: number): void {
    const heap = this.#heap;
    const entry = heap[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p].due <= entry.due) break;
      heap[i] = heap[p];
      heap[i].index = i;
      i = p;
    }
    heap[i] = entry;
    entry.index = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const entry = heap[i];
    while (true) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && heap[r].due < heap[l].due ? r : l;
      if (heap[c].due >= entry.due) break;
      heap[i] = heap[c];
      heap[i].index = i;
      i = c;
    }
    heap[i] = entry;
    entry.index = i;
  }
}
