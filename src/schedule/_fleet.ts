/**
 * What the parts of a running heartbeat share (internal): the options with
 * their defaults resolved, the clock and timer queue, the abort signal, the
 * counts of requests in flight and beats skipped, the retry budget, the
 * group deadlines, the trouble log, and the work still under way.
 *
 * The parts are plain functions over a `Fleet`, each in a file named for
 * its job:
 *
 * - `beat_loop.ts`: each workspace's schedule, the beat, its failures;
 * - `register_workers.ts`: register, first tries and retries;
 * - `lifecycle.ts`: `GET /workspaces/:id/state`, pause, resume, deletion;
 * - `secret_writer.ts`: inbound secrets, validated and stored when changed;
 * - `start_heartbeat.ts`: the public handle over them (status, events,
 *   add/remove, stop).
 *
 * @module
 */
import { backoffDelay } from "./_backoff.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import {
  HEARTBEAT_INTERVAL_MS,
  REQUEST_TIMEOUT_MS,
} from "../shared/constants.ts";
import type { HeartbeatEventMap, HeartbeatOptions } from "./types.ts";
import { type Counters, newCounters } from "./_counters.ts";
import { createLimiter, type Limiter } from "./_limiter.ts";
import { logger } from "../shared/_logger.ts";
import { RetryBudget } from "./_retry_budget.ts";
import { SharedDeadlines } from "./_shared_deadline.ts";
import { TimerQueue } from "./_timer_queue.ts";
import {
  createTroubleLog,
  type TroubleKind,
  type TroubleLog,
} from "./_trouble_log.ts";
import type { Runtime } from "./_workspace_runtime.ts";

/** Secret writes (each a temporary file, an fsync and a rename) at once. */
export const SECRET_WRITE_CONCURRENCY = 8;

/** Emits one of the handle's events. */
export type Emit = <K extends keyof HeartbeatEventMap>(
  type: K,
  detail: HeartbeatEventMap[K],
) => void;

/** The state a running heartbeat's parts share. */
export class Fleet {
  /** The options as given. */
  readonly options: HeartbeatOptions;
  /** Milliseconds between a workspace's beats. */
  readonly interval: number;
  /** A request's time limit in milliseconds. */
  readonly timeout: number;
  readonly clock: Clock;
  readonly random: () => number;
  readonly queue: TimerQueue;
  /** Aborted by stop: every request under way ends. */
  readonly abort: AbortController = new AbortController();
  /** At most `registerConcurrency` registers at once. */
  readonly registerLimit: Limiter;
  readonly registerConcurrency: number;
  readonly maxInFlight: number;
  /**
   * At most {@link SECRET_WRITE_CONCURRENCY} secret writes at once: a fleet
   * registering together would otherwise open a file per workspace at once.
   */
  readonly secretWriteLimit: Limiter = createLimiter(SECRET_WRITE_CONCURRENCY);
  readonly budget: RetryBudget;
  readonly deadlines: SharedDeadlines;
  /** Summarises the fleet's failure lines; absent with `summarizeLogs: false`. */
  readonly trouble: TroubleLog | undefined;
  readonly startedAt: number;
  readonly emit: Emit;
  /**
   * Arms `ws`'s next beat at `due`: the beat loop's scheduler, set by the
   * handle (the lifecycle resumes a paused workspace through it, without
   * importing the beat loop).
   */
  rearm: (ws: Runtime, due: number) => void = () => {};
  /** Counts since start, for `metrics()`. */
  readonly counters: Counters = newCounters();
  /** Set by stop: nothing new starts. */
  stopped = false;
  /** Requests in flight now, every kind. */
  inFlight = 0;
  /** Beats skipped because the in-flight cap was full. */
  skipped = 0;
  skippedSinceWarn = 0;
  skipWarnedAt = -Infinity;
  readonly #pending = new Set<Promise<unknown>>();

  constructor(options: HeartbeatOptions, emit: Emit) {
    this.options = options;
    this.emit = emit;
    this.interval = options.intervalMs ?? HEARTBEAT_INTERVAL_MS;
    this.timeout = options.timeoutMs ??
      Math.min(REQUEST_TIMEOUT_MS, this.interval);
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.queue = new TimerQueue(
      this.clock,
      (error) =>
        logger.error("internal error in a scheduled task: {error}", { error }),
    );
    this.registerConcurrency = Math.max(
      1,
      Math.floor(options.registerConcurrency ?? 8),
    );
    this.registerLimit = createLimiter(this.registerConcurrency);
    this.maxInFlight = Math.max(1, Math.floor(options.maxInFlight ?? 256));
    this.budget = new RetryBudget({
      ratio: options.retryBudget,
      perInterval: options.workspaces.length,
    });
    this.deadlines = new SharedDeadlines(this.queue, this.timeout);
    if (options.summarizeLogs ?? true) {
      this.trouble = createTroubleLog({
        now: () => this.clock.now(),
        later: (ms, fn) => void this.queue.at(this.clock.now() + ms, fn),
        summary: (kind, count, ids) =>
          logger[kind === "auth" || kind === "redirect" ? "error" : "warn"](
            "…and {count} more workspace(s) had the same trouble ({kind}) in the last second: {ids} (--verbose shows each)",
            { count, kind, ids },
          ),
      });
    }
    this.startedAt = options.startedAt ?? this.clock.now();
  }

  /** Keeps `promise` among the work stop waits for. */
  track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise);
    const forget = () => this.#pending.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  /** Resolves once no tracked work is left. */
  async settle(): Promise<void> {
    while (this.#pending.size > 0) {
      await Promise.allSettled([...this.#pending]);
    }
  }

  /** Counts a request in flight while it runs. */
  async counted<T>(request: Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await request;
    } finally {
      this.inFlight--;
    }
  }

  /** A failure's log line, summarised with the fleet's (see `summarizeLogs`). */
  troubled(kind: TroubleKind, ws: Runtime, line: () => void): void {
    if (this.trouble) this.trouble.report(kind, ws.id, line);
    else line();
  }

  /** The wait before retry number `attempt`: full jitter, capped at the interval. */
  backoff(attempt: number): number {
    return backoffDelay(attempt, {
      baseMs: Math.min(1000, this.interval / 4),
      capMs: this.interval,
      minMs: Math.min(100, this.interval / 10),
      random: this.random,
    });
  }

  /** Whether `ws` is to beat: not stopped, refused, deleted, paused, removed. */
  served(ws: Runtime): boolean {
    return !this.stopped && !ws.rejected && !ws.deleted && !ws.paused &&
      !ws.removed;
  }

  /** How often a paused workspace's state is checked. */
  get pausedCheckMs(): number {
    return this.options.pausedCheckMs ?? 60_000;
  }

  /** Cancels `ws`'s scheduled beat. */
  unschedule(ws: Runtime): void {
    if (ws.timer) this.queue.cancel(ws.timer);
    ws.timer = undefined;
  }
}
