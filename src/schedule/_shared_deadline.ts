/**
 * One deadline shared by the requests of a beat group, instead of a timer
 * per request.
 *
 * @module
 */
import type { QueuedTimer, TimerQueue } from "./_timer_queue.ts";

/** Requests started this close together share one deadline. */
const SHARE_MS = 20;

/** A deadline some requests share; see {@link SharedDeadlines}. */
export interface SharedDeadline {
  /** Aborted with a `TimeoutError` when the deadline passes. */
  readonly controller: AbortController;
  /** When its first request started. */
  readonly at: number;
  /** Requests still using it. */
  users: number;
  /** Its timer in the queue, while it runs. */
  timer: QueuedTimer | undefined;
}

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
 * import { SharedDeadlines } from "./_shared_deadline.ts";
 * import { TimerQueue } from "./_timer_queue.ts";
 * const deadlines = new SharedDeadlines(new TimerQueue(), 10_000);
 * const d = deadlines.join(performance.now());
 * // fetch(url, { signal: d.controller.signal }) ...
 * deadlines.leave(d);
 * ```
 */
export class SharedDeadlines {
  #queue: TimerQueue;
  #timeoutMs: number;
  #latest: SharedDeadline | undefined;
  #all = new Set<SharedDeadline>();

  /**
   * Creates the deadlines of one scheduler.
   *
   * @param queue The timer queue the deadlines run in.
   * @param timeoutMs Time from a deadline's first request to its abort.
   */
  constructor(queue: TimerQueue, timeoutMs: number) {
    this.#queue = queue;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * The deadline for a request starting at `now`: the latest one if it
   * started at most 20 ms before, else a new one.
   *
   * @param now The clock time.
   * @returns The deadline; {@link SharedDeadlines.leave} it when done.
   */
  join(now: number): SharedDeadline {
    const d = this.#latest;
    if (
      d && !d.controller.signal.aborted && now >= d.at && now - d.at <= SHARE_MS
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
    fresh.timer = this.#queue.at(now + this.#timeoutMs, () => {
      fresh.timer = undefined;
      fresh.controller.abort(
        new DOMException("request timed out", "TimeoutError"),
      );
    });
    this.#latest = fresh;
    this.#all.add(fresh);
    return fresh;
  }

  /**
   * A request is done with its deadline; the last one cancels its timer.
   *
   * @param d The deadline from {@link SharedDeadlines.join}.
   */
  leave(d: SharedDeadline): void {
    if (--d.users > 0) return;
    if (d.timer) this.#queue.cancel(d.timer);
    d.timer = undefined;
    this.#all.delete(d);
    if (this.#latest === d) this.#latest = undefined;
  }

  /**
   * Aborts every deadline in use (on stop).
   *
   * @param reason The abort reason.
   */
  abortAll(reason: unknown): void {
    for (const d of this.#all) d.controller.abort(reason);
  }
}
