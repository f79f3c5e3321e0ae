/**
 * Many timers on one: a binary heap of due times behind a single underlying
 * timer, so that ten thousand schedules cost one timer, not ten thousand;
 * and on it, one deadline shared by the requests of a beat group, instead
 * of a timer per request.
 *
 * @module
 */
import { type Clock, systemClock } from "../shared/clock.ts";

/** A task in a timer queue: a handle for its `cancel`. */
export interface QueuedTimer {
  /** When it is due, on the queue's clock. */
  readonly due: number;
}

/** A queued task: its place in the heap, -1 once run or cancelled. */
type Entry = { due: number; fn: () => void; index: number };

/** A timer queue: see {@link createTimerQueue}. */
export type TimerQueue = ReturnType<typeof createTimerQueue>;

/**
 * Runs callbacks at due times, with one underlying timer armed for the
 * earliest (a binary heap of due times). A callback that throws does not
 * stop the others.
 *
 * @example
 * ```ts
 * import { createTimerQueue } from "./_timer_queue.ts";
 * const queue = createTimerQueue();
 * const timer = queue.at(performance.now() + 10, () => console.log("tick"));
 * queue.cancel(timer);
 * ```
 *
 * @param clock Time and timers. @default {systemClock}
 * @param onError Called with what a callback threw. @default {console.error}
 */
export function createTimerQueue(
  clock: Clock = systemClock,
  onError: (error: unknown) => void = console.error,
) {
  let heap: Entry[] = [];
  let handle: unknown = undefined;
  let armedFor = Infinity;
  let firing = false;

  const disarm = (): void => {
    if (handle !== undefined) clock.clearTimeout(handle);
    handle = undefined;
    armedFor = Infinity;
  };

  const arm = (): void => {
    if (firing) return;
    const first = heap[0];
    if (!first) return disarm();
    if (handle !== undefined && armedFor <= first.due) return;
    disarm();
    armedFor = first.due;
    handle = clock.setTimeout(fire, Math.max(0, first.due - clock.now()));
  };

  /** The underlying timer's callback: runs everything due. */
  const fire = (): void => {
    handle = undefined;
    armedFor = Infinity;
    firing = true;
    const now = clock.now();
    // A callback may schedule more, due later.
    while (heap.length > 0 && heap[0].due <= now) {
      const entry = heap[0];
      remove(entry);
      try {
        entry.fn();
      } catch (error) {
        onError(error);
      }
    }
    firing = false;
    arm();
  };

  const up = (i: number): void => {
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
  };

  const down = (i: number): void => {
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
  };

  const remove = (entry: Entry): void => {
    const i = entry.index;
    if (i < 0 || heap[i] !== entry) return;
    entry.index = -1;
    const last = heap.pop()!;
    if (last !== entry) {
      heap[i] = last;
      last.index = i;
      down(i);
      up(i);
    }
  };

  return {
    /** How many timers are pending. */
    get size(): number {
      return heap.length;
    },
    /** Schedules `fn` at `due` (on the queue's clock); the handle is for `cancel`. */
    at(due: number, fn: () => void): QueuedTimer {
      const entry: Entry = { due, fn, index: heap.length };
      heap.push(entry);
      up(entry.index);
      arm();
      return entry;
    },
    /** Cancels a pending timer; does nothing if it already ran or was cancelled. */
    cancel(timer: QueuedTimer): void {
      remove(timer as Entry);
      arm();
    },
    /** Cancels every timer and releases the underlying one. */
    clear(): void {
      for (const entry of heap) entry.index = -1;
      heap = [];
      disarm();
    },
  };
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
 * import { createSharedDeadlines, createTimerQueue } from "./_timer_queue.ts";
 * const deadlines = createSharedDeadlines(createTimerQueue(), 10_000);
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
    /** Its timer in the queue (cancelling it once it ran does nothing). */
    timer: QueuedTimer;
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
      const controller = new AbortController();
      const fresh: SharedDeadline = {
        controller,
        at: now,
        users: 1,
        timer: queue.at(
          now + timeoutMs,
          () =>
            controller.abort(
              new DOMException("request timed out", "TimeoutError"),
            ),
        ),
      };
      latest = fresh;
      all.add(fresh);
      return fresh;
    },
    /** A request is done with its deadline; the last one cancels its timer. */
    leave(d: SharedDeadline): void {
      if (--d.users > 0) return;
      queue.cancel(d.timer);
      all.delete(d);
      if (latest === d) latest = undefined;
    },
    /** Aborts every deadline in use (on stop). */
    abortAll(reason: unknown): void {
      for (const d of all) d.controller.abort(reason);
    },
  };
}
