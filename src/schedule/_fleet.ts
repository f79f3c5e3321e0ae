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
 * - `_life.ts` also: sleep and wake (the watchdog);
 * - `start_heartbeat.ts`: the public handle over them.
 *
 * The parts call each other's entry points through {@link FleetParts}
 * (set by the handle), so that no file imports one that imports it.
 *
 * @module
 */
import { backoffDelay, RetryBudget } from "./_retry.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import {
  BEAT_GROUP_SIZE,
  HEARTBEAT_INTERVAL_MS,
  REQUEST_TIMEOUT_MS,
  STALE_AFTER_MS,
} from "../shared/constants.ts";
import type { HeartbeatEventMap, HeartbeatOptions } from "./types.ts";
import { type Counters, newCounters } from "./_counters.ts";
import {
  createLimiter,
  Fifo,
  InFlightCap,
  type Limiter,
} from "./_in_flight_cap.ts";
import { logger } from "../shared/_logger.ts";
import { SharedDeadlines, TimerQueue } from "./_timer_queue.ts";
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
const STATE_POLL_EVERY = 15;

/**
 * Share of beats that may be retried early after a failure (a retry
 * budget, as gRPC's and Finagle's): each beat on schedule earns this much
 * of a retry, plus one retry per interval for the whole fleet; a failed
 * beat (or register) retries sooner only by spending one, else it waits for
 * its next slot (or `Retry-After`). During an outage the fleet so sends at
 * most 1.1 times its healthy rate.
 */
const RETRY_BUDGET = 0.1;

/** How long after stop an issued token's last save may take, in ms (within stop's own bound). */
export const LAST_CALL_MS = 1_800;

/** The default of `orgRequestShare`: a tenth of the org's rate window. */
const ORG_REQUEST_SHARE = 0.1;

/** The platform's default rate window (`RATE_LIMIT`), requests a minute, until an answer says its own. */
const ORG_RATE_LIMIT = 600;

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

/**
 * Why a workspace's state is asked: `/state` first for `start`, `poll`
 * and `paused`; the lookup alone for `refused` (a refused beat or
 * register), `register` (before every register) and `minted` (after a
 * register that minted a token).
 */
export type AskWhy =
  | "start"
  | "poll"
  | "paused"
  | "refused"
  | "register"
  | "minted";

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
  /** The platform's stale window, in ms (readiness; a 429's longest wait is half of it). */
  readonly staleWindow: number;
  /** Accepted beats between two scheduled state questions; 0 for none. */
  readonly statePollEvery: number;
  readonly clock: Clock;
  /** Wall-clock time, epoch ms. */
  readonly wall: () => number;
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
  /**
   * Aborted {@link LAST_CALL_MS} after stop: an issued token read from a
   * register answer under way at the stop may still be saved until then.
   */
  readonly lastCall: AbortController = new AbortController();
  /** The `Origin` sent (`""`: none); `undefined`: each platform URL's origin. */
  readonly origin: string | undefined;
  /** The share of the org's rate window the org-keyed requests may use. */
  readonly orgShare: number;
  /** The org's rate window, requests a minute, as its answers last said. */
  orgLimit = ORG_RATE_LIMIT;
  /** When the next org-keyed request may go, on the clock (the pacer). */
  orgNextAt = -Infinity;
  /** Workspaces served whose `/workspaces/…` requests carry the org header. */
  orgWorkspaces = 0;
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
  skippedSinceWarn = 0;
  skipWarnedAt = -Infinity;
  /** Time the machine slept (found by the watchdog), in ms. */
  sleptMs = 0;
  /** Registers waiting for a worker (owned by `_register_workers.ts`). */
  readonly registerQueue: Fifo<Runtime> = new Fifo();
  registersRunning = 0;
  /** Workspaces added in the current burst, and when it began (`addWorkspace`'s spread). */
  burst = { count: 0, at: -Infinity };
  /** Workspaces refused with 429 in the current interval, and the last warning (`_rate_limit.ts`). */
  rateLimited = {
    since: -Infinity,
    warnedAt: -Infinity,
    ids: new Set<string>(),
    limit: undefined as number | undefined,
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
    this.random = options.random ?? Math.random;
    this.origin = options.origin;
    const share = options.orgRequestShare ?? ORG_REQUEST_SHARE;
    this.orgShare = share > 0 && share <= 1 ? share : ORG_REQUEST_SHARE;
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
      ratio: RETRY_BUDGET,
      perInterval: options.workspaces.length,
    });
    this.deadlines = new SharedDeadlines(this.queue, this.timeout);
    if (options.summarizeLogs ?? true) {
      this.trouble = createTroubleLog({
        now: () => this.clock.now(),
        later: (ms, fn) => void this.queue.at(this.clock.now() + ms, fn),
        summary: (kind, count, ids) =>
          logger[
            kind === "auth" || kind === "redirect" || kind === "cors" ||
              kind === "not_platform"
              ? "error"
              : "warn"
          ](
            "…and {count} more workspace(s) had the same trouble ({kind}) in the last second: {ids} (--verbose shows each)",
            { count, kind, ids },
          ),
      });
    }
    this.startedAt = this.clock.now();
    this.pool = createConnectionPool(
      (fn, ms) => void this.queue.at(this.clock.now() + ms, fn),
    );
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

  /**
   * Time between two org-keyed requests (they share the org's fixed
   * window with everyone of the org), in ms: the fleet's share of the
   * window, less one, spread evenly, so that no minute holds more.
   */
  get orgSpacing(): number {
    return 60_000 / Math.max(1, this.orgShare * this.orgLimit - 1);
  }

  /**
   * Takes the next turn of an org-keyed request on the pacer.
   *
   * @returns When it may go, on the clock.
   */
  orgReserve(): number {
    const at = Math.max(this.clock.now(), this.orgNextAt);
    this.orgNextAt = at + this.orgSpacing;
    return at;
  }

  /** An org-keyed answer said the window's size (`X-RateLimit-Limit`). */
  orgLimitSeen(limit: number | undefined): void {
    if (limit !== undefined && limit > 0) this.orgLimit = limit;
  }

  /**
   * Accepted beats between two scheduled state questions of `ws`: the
   * option's, stretched for org-keyed workspaces so that their polls take
   * at most half the fleet's share of the org's window; 0 for none.
   */
  pollEvery(ws: Runtime): number {
    const every = this.statePollEvery;
    if (every === 0 || ws.orgId === undefined) return every;
    const beatsPerMinute = this.orgWorkspaces * (60_000 / this.interval);
    const polls = Math.max(1, (this.orgShare * this.orgLimit) / 2);
    return Math.max(every, Math.ceil(beatsPerMinute / polls));
  }

  /** How often a paused workspace's state is checked. */
  get pausedCheckMs(): number {
    return this.options.pausedCheckMs ?? 60_000;
  }

  /** The request options every call of `ws` shares (its deadline is the caller's signal). */
  wire(ws: Runtime) {
    return {
      platformUrl: ws.platformUrl,
      origin: this.origin,
      timeoutMs: 0,
      fetch: this.options.fetch,
      init: this.pool.init(),
    };
  }
}
