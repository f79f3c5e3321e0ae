/**
 * What the parts of a running heartbeat share (internal): the options with
 * their defaults resolved, the clocks and the timer queue, the abort
 * signal, the in-flight cap, the retry budget, the group deadlines, the
 * trouble log, the workspaces, and the work still under way.
 *
 * The parts are plain functions over a `Fleet`, each in a file named for
 * its job, each the one owner of a book of every workspace's
 * {@link Runtime}:
 *
 * - `_life.ts`: the state machine and the schedule: the only code that
 *   arms a beat, and the one place every beat ends;
 * - `_beat.ts`: one beat and what its answer means;
 * - `_register_workers.ts`: register, first tries, retries, re-registers;
 * - `_lifecycle.ts`: `/state` and `GET /workspaces/:id` questions;
 * - `_secret_writer.ts`, `_token_keeper.ts`: what answers hand over;
 * - `_watchdog.ts`: sleep and wake;
 * - `start_heartbeat.ts`: the public handle over them.
 *
 * The parts call each other's entry points through {@link FleetParts}
 * (set by the handle), so that no file imports one that imports it.
 *
 * @module
 */
import { backoffDelay } from "./_backoff.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import {
  BEAT_GROUP_SIZE,
  HEARTBEAT_INTERVAL_MS,
  REQUEST_TIMEOUT_MS,
  STALE_AFTER_MS,
} from "../shared/constants.ts";
import type { HeartbeatEventMap, HeartbeatOptions } from "./types.ts";
import { type Counters, newCounters } from "./_counters.ts";
import { InFlightCap } from "./_in_flight_cap.ts";
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
import {
  type ConnectionPool,
  createConnectionPool,
} from "../platform/_connection_pool.ts";

/** Wake-ups a second a big fleet's default grouping aims to stay under. */
export const MAX_GROUPS_PER_SECOND = 32;

/** Secret and token writes (each a temporary file, an fsync and a rename) at once. */
export const SECRET_WRITE_CONCURRENCY = 8;

/** How long stop() lets a secret or token write under way finish, in ms. */
export const WRITE_GRACE_MS = 1_000;

/** The default of `statePollEvery`: every 15 accepted beats (5 minutes at 20 s). */
export const STATE_POLL_EVERY = 15;

/** Emits one of the handle's events. */
export type Emit = <K extends keyof HeartbeatEventMap>(
  type: K,
  detail: HeartbeatEventMap[K],
) => void;

/** When a beat's workspace beats next, as the beat decided. */
export interface BeatNext {
  /** Due time, on the clock. */
  due: number;
  /** It is an early retry (it earns no retry budget). */
  retry: boolean;
}

/** Why a workspace's state is asked. */
export type AskWhy = "start" | "poll" | "paused" | "refused";

/** The parts' entry points, for the parts (set by the handle). */
export interface FleetParts {
  /** Runs one beat of `ws`, which holds a slot under the cap. */
  beat(ws: Runtime): Promise<BeatNext | undefined>;
  /** Asks the platform about `ws` (queued under the cap); resolves once acted on. */
  ask(ws: Runtime, why: AskWhy): Promise<unknown>;
  /** Queues a register of `ws` (beside its beats). */
  register(ws: Runtime): void;
}

/** The state a running heartbeat's parts share. */
export class Fleet {
  /** The options as given. */
  readonly options: HeartbeatOptions;
  /** Milliseconds between a workspace's beats. */
  readonly interval: number;
  /** A request's time limit in milliseconds. */
  readonly timeout: number;
  /** A register again when the last accepted beat is older than this, in ms. */
  readonly staleWindow: number;
  /** Accepted beats between two scheduled state questions; 0 for none. */
  readonly statePollEvery: number;
  readonly clock: Clock;
  /** Wall-clock time, epoch ms. */
  readonly wall: () => number;
  /** Whether the wall clock is independent of the monotonic one (a watchdog can compare them). */
  readonly wallIndependent: boolean;
  readonly random: () => number;
  readonly queue: TimerQueue;
  /** Aborted by stop: every request under way ends. */
  readonly abort: AbortController = new AbortController();
  /**
   * Aborted a moment after stop ({@link WRITE_GRACE_MS}): a secret or
   * token being written may finish, a store that never answers does not
   * hold the stop.
   */
  readonly grace: AbortController = new AbortController();
  readonly registerConcurrency: number;
  /** Requests in flight under the cap: beats and questions (registers come on top). */
  readonly cap: InFlightCap;
  /**
   * Beats sent together in one wake-up (`beatGroupSize`, or the default: 8,
   * more for fleets beating over 256 times a second, so that there are at
   * most 32 groups a second).
   */
  readonly groupSize: number;
  /**
   * At most {@link SECRET_WRITE_CONCURRENCY} secret and token writes at
   * once: a fleet registering together would otherwise open a file per
   * workspace at once.
   */
  readonly writeLimit: Limiter = createLimiter(SECRET_WRITE_CONCURRENCY);
  readonly budget: RetryBudget;
  readonly deadlines: SharedDeadlines;
  /** Summarises the fleet's failure lines; absent with `summarizeLogs: false`. */
  readonly trouble: TroubleLog | undefined;
  readonly startedAt: number;
  readonly emit: Emit;
  /** Fresh connections after a wake. */
  readonly pool: ConnectionPool;
  /** Every workspace served, removed ones left out; in the order given. */
  readonly workspaces: Runtime[] = [];
  /** Set by the handle. */
  parts!: FleetParts;
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
  /** Time the machine slept (found by the watchdog), in ms. */
  sleptMs = 0;
  /** Registers waiting for a worker (owned by `_register_workers.ts`). */
  registerQueue: Runtime[] = [];
  registerHead = 0;
  registersRunning = 0;
  /** Workspaces added in the current burst, and when it began (`addWorkspace`'s spread). */
  burst = { count: 0, at: -Infinity };
  /** Workspaces refused with 429 in the current interval, and the last warning (`_rate_limit.ts`). */
  rateLimited: {
    since: number;
    warnedAt: number;
    ids: Set<string>;
    limit: number | undefined;
  } = {
    since: -Infinity,
    warnedAt: -Infinity,
    ids: new Set(),
    limit: undefined,
  };
  readonly #pending = new Set<Promise<unknown>>();

  constructor(options: HeartbeatOptions, emit: Emit) {
    this.options = options;
    this.emit = emit;
    this.interval = options.intervalMs ?? HEARTBEAT_INTERVAL_MS;
    this.timeout = options.timeoutMs ??
      Math.min(REQUEST_TIMEOUT_MS, this.interval);
    this.staleWindow = options.staleWindowMs ?? STALE_AFTER_MS;
    this.statePollEvery = Math.max(
      0,
      Math.floor(options.statePollEvery ?? STATE_POLL_EVERY),
    );
    this.clock = options.clock ?? systemClock;
    // An injected clock without a wall clock: the wall follows it, so that
    // a test's time is consistent (and no sleep is ever seen).
    const clock = this.clock;
    const offset = Date.now() - clock.now();
    this.wall = options.wallClock ??
      (options.clock ? () => clock.now() + offset : Date.now);
    this.wallIndependent = options.wallClock !== undefined ||
      options.clock === undefined;
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
    this.groupSize = Math.max(
      1,
      Math.floor(
        options.beatGroupSize ??
          Math.max(
            BEAT_GROUP_SIZE,
            Math.ceil(
              (options.workspaces.length * 1000) / this.interval /
                MAX_GROUPS_PER_SECOND,
            ),
          ),
      ),
    );
    // The queue of beats that found the cap full is served at twice the
    // fleet's healthy rate at most (a group at once): after a hang the
    // backlog drains within half an interval, never as a herd.
    this.cap = new InFlightCap(options.maxInFlight ?? 256, {
      perMs: () => (2 * Math.max(1, this.workspaces.length)) / this.interval,
      burst: this.groupSize,
      now: () => this.clock.now(),
      later: (ms, fn) => void this.queue.at(this.clock.now() + ms, fn),
    });
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
    this.pool = createConnectionPool(
      (fn, ms) => void this.queue.at(this.clock.now() + ms, fn),
    );
  }

  /** The cap on requests in flight. */
  get maxInFlight(): number {
    return this.cap.max;
  }

  /** Monotonic time plus the time the machine slept: what a gap on the platform's side is measured in. */
  elapsed(): number {
    return this.clock.now() + this.sleptMs;
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

  /** How often a paused workspace's state is checked. */
  get pausedCheckMs(): number {
    return this.options.pausedCheckMs ?? 60_000;
  }

  /** The request options every call of `ws` shares. */
  wire(ws: Runtime): {
    platformUrl: string;
    fetch: HeartbeatOptions["fetch"];
    init: Record<string, unknown> | undefined;
  } {
    return {
      platformUrl: ws.platformUrl,
      fetch: this.options.fetch,
      init: this.pool.init(),
    };
  }
}
