/**
 * Many timers on one: a binary heap of due times behind a single underlying
 * timer, so that ten thousand schedules cost one timer, not ten thousand;
 * and on it, one deadline shared by the requests of a beat group, instead
 * of a timer per request.
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
  /** The underlying timer's callback: one closure for every arm. */
  #fireNow = () => this.#fire();

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
    this.#handle = this.#clock.setTimeout(this.#fireNow, delay);
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

// Deadlines shared by the requests of one wake-up, on the same queue.
const SHARE_MS = 20;

/**
 * Deadlines for requests, shared by those that start within a moment of each
 * other (the beats of one group): a timer in the scheduler's queue, cancelled
 * once its requests are done. A profile showed `AbortSignal.timeout` +
 * `AbortSignal.any` per request costing a tenth of the CPU per beat: those
 * timers fire 10 s later whether the request is done or not, each with an
 * exception and an abort event.
 *
 * @example
 * ```ts
 * import { createSharedDeadlines, TimerQueue } from "./_timer_queue.ts";
 * const deadlines = createSharedDeadlines(new TimerQueue(), 10_000);
 * const d = deadlines.join(performance.now());
 * // fetch(url, { signal: d.controller.signal }) ...
 * deadlines.leave(d);
 * ```
 *
 * @param queue The timer queue the deadlines run in.
 * @param timeoutMs Time from a deadline's first request to its abort.
 */
export function createSharedDeadlines(queue: TimerQueue, timeoutMs: number) {
  /** A deadline some requests share. */
  type SharedDeadline = {
    /** Aborted with a `TimeoutError` when the deadline passes. */
    controller: AbortController;
    /** When its first request started. */
    at: number;
    /** Requests still using it. */
    users: number;
    /** Its timer in the queue, while it runs. */
    timer: QueuedTimer | undefined;
  };
  let latest: SharedDeadline | undefined;
  const all = new Set<SharedDeadline>();
  return {
    /**
     * The deadline for a request starting at `now`: the latest one if it
     * started at most 20 ms before, else a new one; `leave` it when done.
     */
    join(now: number): SharedDeadline {
      const d = latest;
      if (
        d && !d.controller.signal.aborted && now >= d.at &&
        now - d.at <= SHARE_MS
      ) {
        d.users++;
        return d;
      }
      const fresh: SharedDeadline = {
        controller: new AbortController(),
        at: now,
        users: 1,
        timer: undefined,
      };
      fresh.timer = queue.at(now + timeoutMs, () => {
        fresh.timer = undefined;
        fresh.controller.abort(
          new DOMException("request timed out", "TimeoutError"),
        );
      });
      latest = fresh;
      all.add(fresh);
      return fresh;
    },
    /** A request is done with its deadline; the last one cancels its timer. */
    leave(d: SharedDeadline): void {
      if (--d.users > 0) return;
      if (d.timer) queue.cancel(d.timer);
      d.timer = undefined;
      all.delete(d);
      if (latest === d) latest = undefined;
    },
    /** Aborts every deadline in use (on stop). */
    abortAll(reason: unknown): void {
      for (const d of all) d.controller.abort(reason);
    },
  };
}
