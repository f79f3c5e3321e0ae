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
 * - `_life.ts` also: `/state` and `GET /workspaces/:id` questions;
 * - `_secret_writer.ts`, `_token_keeper.ts`: what answers hand over;
 * - `_life.ts` also: sleep and wake (the watchdog);
 * - `start_heartbeat.ts`: the public handle over them.
 *
 * It also holds the fleet's retry decision for beats and registers
 * (`retryDelay`: the backoff and the budget of `_retry.ts`, and the wait an
 * answer asks for), its one warning about rate limits, and the trouble log:
 * trouble shared by many workspaces is one line a second per kind (with how
 * many and a few ids), not one line a workspace.
 *
 * The parts call each other's entry points through {@link FleetParts}
 * (set by the handle), so that no file imports one that imports it.
 *
 * @module
 */
import { backoffDelay, createRetryBudget } from "./_retry.ts";
import { systemClock } from "../shared/clock.ts";
import {
  BEAT_GROUP_SIZE,
  HEARTBEAT_INTERVAL_MS,
  REQUEST_TIMEOUT_MS,
  STALE_AFTER_MS,
} from "../shared/constants.ts";
import type {
  BeatFailureReason,
  HeartbeatEventMap,
  HeartbeatOptions,
} from "./types.ts";
import { newCounters } from "./_counters.ts";
import { createInFlightCap, createLimiter } from "./_in_flight_cap.ts";
import { logger } from "../shared/_logger.ts";
import { createSharedDeadlines, createTimerQueue } from "./_timer_queue.ts";
import type { Runtime } from "./_workspace_runtime.ts";
import { createConnectionPool } from "../platform/_connection_pool.ts";

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

/** One fleet warning about rate limits at most this often, in ms. */
const RATE_WARN_EVERY_MS = 60_000;

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
  /** Queues a register of `ws` (beside its beats). */
  register(ws: Runtime): void;
}

/** What kind of trouble a log line is about; lines are summarised per kind. */
type TroubleKind = BeatFailureReason | "register" | "secret" | "recovered";

/** How long a trouble log's window is, in ms. */
const TROUBLE_WINDOW_MS = 1000;
/** Ids named in a trouble summary at most. */
const MAX_TROUBLE_IDS = 5;

/**
 * A trouble log: per kind, the first line of each window is written as it
 * is (and so are further lines of the workspace that wrote it); the other
 * workspaces' lines of the window are one summary line at its end, saying
 * how many more workspaces had that trouble and naming a few.
 */
function createTroubleLog(
  later: (ms: number, fn: () => void) => void,
  summarize: boolean,
) {
  /**
   * Per kind, the open window: its first workspace, the others since, and
   * whether a line it summarises was an error.
   */
  const open = new Map<
    TroubleKind,
    { first: string; others: Set<string>; error: boolean }
  >();
  const close = (kind: TroubleKind) => {
    const window = open.get(kind);
    open.delete(kind);
    const others = window?.others;
    if (!others?.size) return;
    const count = others.size;
    const more = count - MAX_TROUBLE_IDS;
    const ids = [...others].slice(0, MAX_TROUBLE_IDS).join(", ") +
      (more > 0 ? ` and ${more} more` : "");
    // At the level of the lines it stands for: a 401 not yet confirmed
    // (a blip) is a warning, its escalation an error.
    logger[window!.error ? "error" : "warn"](
      kind === "recovered"
        ? "…and {count} more workspace(s) had a heartbeat accepted again in the last second: {ids} (--verbose shows each)"
        : "…and {count} more workspace(s) had the same trouble ({kind}) in the last second: {ids} (--verbose shows each)",
      { count, kind, ids },
    );
  };
  return {
    /** Writes the summaries of the windows still open (on stop: nothing is lost). */
    flush() {
      for (const kind of [...open.keys()]) close(kind);
    },
    /**
     * Reports trouble of `kind` of `ws`: its own log line (`message` with
     * `properties`, at `level`) is written when it is the first of its kind
     * in the current window (or without `summarize`); otherwise it is
     * counted into the window's summary, an error when any line it stands
     * for is.
     */
    report(
      kind: TroubleKind,
      ws: Runtime,
      level: "warn" | "error",
      message: string,
      properties: Record<string, unknown>,
    ): void {
      const line = () => logger[level](message, properties);
      const error = level === "error";
      if (!summarize) return line();
      const workspaceId = ws.id;
      const window = open.get(kind);
      if (!window) {
        open.set(kind, { first: workspaceId, others: new Set(), error });
        later(TROUBLE_WINDOW_MS, () => close(kind));
        return line();
      }
      // One workspace's own cadence (the auth escalation's 1, 2, 3, 23, …)
      // is not fleet trouble: its lines stay whole.
      if (workspaceId === window.first) return line();
      window.others.add(workspaceId);
      window.error ||= error;
    },
  };
}

/** The state a running heartbeat's parts share. */
export type Fleet = ReturnType<typeof createFleet>;

/**
 * The state a running heartbeat's parts share, its options' defaults
 * resolved.
 *
 * @param options The options as given.
 * @param emit Emits one of the handle's events.
 */
export function createFleet(options: HeartbeatOptions, emit: Emit) {
  const interval = options.intervalMs ?? HEARTBEAT_INTERVAL_MS;
  const maxInFlight = Math.max(1, Math.floor(options.maxInFlight ?? 256));
  const clock = options.clock ?? systemClock;
  // An injected clock without a wall clock: the wall follows it, so that
  // a test's time is consistent (and no sleep is ever seen).
  const offset = Date.now() - clock.now();
  const queue = createTimerQueue(
    clock,
    (error) =>
      logger.error("internal error in a scheduled task: {error}", { error }),
  );
  const later = (ms: number, fn: () => void) =>
    void queue.at(clock.now() + ms, fn);
  const timeout = options.timeoutMs ?? Math.min(REQUEST_TIMEOUT_MS, interval);
  const share = options.orgRequestShare ?? ORG_REQUEST_SHARE;
  /** The share of the org's rate window the org-keyed requests may use. */
  const orgShare = share > 0 && share <= 1 ? share : ORG_REQUEST_SHARE;
  /** The org's rate window, requests a minute, as its answers last said. */
  let orgLimit = ORG_RATE_LIMIT;
  /** When the next org-keyed request may go, on the clock (the pacer). */
  let orgNextAt = -Infinity;
  const groupSize = Math.max(
    1,
    Math.floor(
      options.beatGroupSize ??
        Math.max(
          BEAT_GROUP_SIZE,
          Math.ceil(
            (options.workspaces.length * 1000) / interval /
              MAX_GROUPS_PER_SECOND,
          ),
        ),
    ),
  );
  /** Every workspace served, removed ones left out; in the order given. */
  const workspaces: Runtime[] = [];
  const trouble = createTroubleLog(later, options.summarizeLogs ?? true);
  const pending = new Set<Promise<unknown>>();
  const staleWindow = options.staleWindowMs ?? STALE_AFTER_MS;
  const statePollEvery = Math.max(
    0,
    Math.floor(options.statePollEvery ?? STATE_POLL_EVERY),
  );
  const random = options.random ?? Math.random;
  const budget = createRetryBudget(RETRY_BUDGET, options.workspaces.length);
  /** Workspaces refused with 429 in the current interval, and the last warning. */
  const rateLimited = {
    since: -Infinity,
    warnedAt: -Infinity,
    ids: new Set<string>(),
    limit: undefined as number | undefined,
  };
  const pool = createConnectionPool((fn, ms) => later(ms, fn));
  return {
    /** The options as given. */
    options,
    emit,
    /** Milliseconds between a workspace's beats. */
    interval,
    /** A request's time limit in milliseconds. */
    timeout,
    /** The platform's stale window, in ms (readiness; a 429's longest wait is half of it). */
    staleWindow,
    /** Accepted beats between two scheduled state questions; 0 for none. */
    statePollEvery,
    clock,
    /** Wall-clock time, epoch ms. */
    wall: options.wallClock ??
      (options.clock ? () => clock.now() + offset : Date.now),
    random,
    queue,
    /** Aborted by stop: every request under way ends. */
    abort: new AbortController(),
    /**
     * Aborted a moment after stop ({@link WRITE_GRACE_MS}): a secret or
     * token being written may finish, a store that never answers does not
     * hold the stop.
     */
    grace: new AbortController(),
    /**
     * Aborted {@link LAST_CALL_MS} after stop: an issued token read from a
     * register answer under way at the stop may still be saved until then.
     */
    lastCall: new AbortController(),
    /** Workspaces served whose `/workspaces/…` requests carry the org header. */
    orgWorkspaces: 0,
    /**
     * Registers under way (at most `registerConcurrency`), and the queue of
     * those waiting (owned by `_register_workers.ts`).
     */
    registers: createInFlightCap(options.registerConcurrency ?? 8),
    /**
     * Requests in flight under the cap: beats and questions (registers come
     * on top); `used` is the requests in flight now, every kind. The queue
     * of beats that found the cap full is served at twice the fleet's
     * healthy rate at most (a group at once), and never slower than the
     * cap's size a second: after a hang the backlog drains within half an
     * interval, never as a herd; a small fleet with a long interval (24
     * workspaces at 60 s under a cap of 16: 0.8 a second) does not wait a
     * minute for its first registers, questions and beats.
     */
    cap: createInFlightCap(maxInFlight, {
      perMs: () =>
        Math.max(
          (2 * Math.max(1, workspaces.length)) / interval,
          maxInFlight / 1000,
        ),
      burst: groupSize,
      now: () => clock.now(),
      later,
    }),
    /**
     * Beats sent together in one wake-up (`beatGroupSize`, or the default: 8,
     * more for fleets beating over 256 times a second, so that there are at
     * most 32 groups a second).
     */
    groupSize,
    /**
     * At most {@link SECRET_WRITE_CONCURRENCY} secret and token writes at
     * once: a fleet registering together would otherwise open a file per
     * workspace at once.
     */
    writeLimit: createLimiter(SECRET_WRITE_CONCURRENCY),
    budget,
    deadlines: createSharedDeadlines(queue, timeout),
    /** Summarises the fleet's failure lines (or not, with `summarizeLogs: false`). */
    trouble,
    startedAt: clock.now(),
    /** Fresh connections after a wake. */
    pool,
    workspaces,
    /** Set by the handle. */
    parts: undefined as unknown as FleetParts,
    /** Counts since start, for `metrics()`. */
    counters: newCounters(),
    /** Set by stop: nothing new starts. */
    stopped: false,
    skippedSinceWarn: 0,
    skipWarnedAt: -Infinity,
    /** Time the machine slept (found by the watchdog), in ms. */
    sleptMs: 0,
    /** Workspaces added in the current burst, and when it began (`addWorkspace`'s spread). */
    burst: { count: 0, at: -Infinity },

    /** Monotonic time plus the time the machine slept: what a gap on the platform's side is measured in. */
    elapsed(): number {
      return clock.now() + this.sleptMs;
    },

    /** Keeps `promise` among the work stop waits for. */
    track<T>(promise: Promise<T>): Promise<T> {
      pending.add(promise);
      const forget = () => pending.delete(promise);
      promise.then(forget, forget);
      return promise;
    },

    /** Resolves once no tracked work is left. */
    async settle(): Promise<void> {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },

    /** A failure's log line, summarised with the fleet's (see `summarizeLogs`). */
    troubled: trouble.report,

    /**
     * Takes the next turn of an org-keyed request on the pacer: they share
     * the org's fixed window with everyone of the org, so they go the
     * fleet's share of the window, less one, spread evenly apart (no minute
     * holds more).
     *
     * @returns When it may go, on the clock.
     */
    orgReserve(): number {
      const at = Math.max(clock.now(), orgNextAt);
      orgNextAt = at + 60_000 / Math.max(1, orgShare * orgLimit - 1);
      return at;
    },

    /** An org-keyed answer said the window's size (`X-RateLimit-Limit`). */
    orgLimitSeen(limit: number | undefined): void {
      if (limit !== undefined && limit > 0) orgLimit = limit;
    },

    /**
     * Accepted beats between two scheduled state questions of `ws`: the
     * option's, stretched for org-keyed workspaces so that their polls take
     * at most half the fleet's share of the org's window; 0 for none.
     */
    pollEvery(ws: Runtime): number {
      const every = statePollEvery;
      if (every === 0 || ws.orgId === undefined) return every;
      const beatsPerMinute = this.orgWorkspaces * (60_000 / interval);
      const polls = Math.max(1, (orgShare * orgLimit) / 2);
      return Math.max(every, Math.ceil(beatsPerMinute / polls));
    },

    /**
     * When a request that failed for the `failures`-th time in a row is
     * tried again, in ms from now: early (the backoff, with full jitter and
     * capped at the interval, or the wait the answer asks for if longer)
     * when the retry budget holds a retry, else not before `onTimeMs` (its
     * next slot on schedule) nor the wait asked for. A 429's wait is
     * honoured up to half the stale window, any other's up to the interval.
     *
     * @param failures Failures in a row, at least 1.
     * @param status The answer's HTTP status, if any.
     * @param retryAfterMs The wait the answer asked for, if any.
     * @param onTimeMs When it goes anyway, on schedule, in ms from now.
     */
    retryDelay(
      failures: number,
      status: number | undefined,
      retryAfterMs: number | undefined,
      onTimeMs: number,
    ): { delay: number; early: boolean } {
      const asked = Math.min(
        status === 429 ? staleWindow / 2 : interval,
        retryAfterMs ?? 0,
      );
      if (!budget.spend()) {
        return { delay: Math.max(onTimeMs, asked), early: false };
      }
      const backoff = backoffDelay(failures, {
        baseMs: Math.min(1000, interval / 4),
        capMs: interval,
        minMs: Math.min(100, interval / 10),
        random,
      });
      return { delay: Math.max(backoff, asked), early: true };
    },

    /** A request of `ws` was refused with 429; `limit` is the platform's `X-RateLimit-Limit`. */
    noteRateLimited(ws: Runtime, limit: number | undefined): void {
      const book = rateLimited;
      const now = clock.now();
      if (now - book.since > interval) {
        book.since = now;
        book.ids.clear();
      }
      book.ids.add(ws.id);
      if (limit !== undefined) book.limit = limit;
      if (book.ids.size < 2 || now - book.warnedAt < RATE_WARN_EVERY_MS) {
        return;
      }
      book.warnedAt = now;
      // Requests a minute the fleet sends when healthy: a beat per interval
      // per workspace, plus the scheduled state questions.
      const n = workspaces.length;
      const beats = n * (60_000 / interval);
      const polls = statePollEvery > 0 ? beats / statePollEvery : 0;
      const need = Math.ceil(beats + polls);
      const allows = book.limit === undefined
        ? "the platform did not say its limit (no X-RateLimit-Limit)"
        : `the platform allows ${book.limit} a minute per bucket`;
      logger.warn(
        "{refused} workspaces were refused with HTTP 429 (rate limited) within one interval: {count} workspaces at {seconds} s need {need} requests a minute; {allows}. " +
          "Each waits as long as the platform asks; if they share a bucket (one token for several, or the org header), give each its own token or ask for a higher RATE_LIMIT",
        {
          refused: book.ids.size,
          count: n,
          seconds: interval / 1000,
          need,
          allows,
        },
      );
    },

    /** How often a paused workspace's state is checked. */
    pausedCheckMs: options.pausedCheckMs ?? 60_000,

    /** The request options every call of `ws` shares (its deadline is the caller's signal). */
    wire(ws: Runtime) {
      return {
        platformUrl: ws.platformUrl,
        origin: options.origin,
        timeoutMs: 0,
        fetch: options.fetch,
        init: pool.init(),
      };
    },
  };
}
