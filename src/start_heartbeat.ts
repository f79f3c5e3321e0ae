/**
 * Register and heartbeat any number of workspaces on one event loop.
 *
 * @module
 */
import { buildAgentCard } from "./agent_card.ts";
import { authFailureLevel } from "./auth_escalation.ts";
import { backoffDelay } from "./backoff.ts";
import { type Clock, systemClock } from "./clock.ts";
import {
  BEAT_GROUP_SIZE,
  HEARTBEAT_INTERVAL_MS,
  REQUEST_TIMEOUT_MS,
} from "./constants.ts";
import { processEnv } from "./env.ts";
import { RegisterAuthError } from "./errors.ts";
import {
  buildHeartbeatBody,
  type HeartbeatResult,
  type HeartbeatStats,
  sendHeartbeat,
} from "./heartbeat.ts";
import { createLimiter, type Limiter } from "./limiter.ts";
import { logger } from "./logger.ts";
import { maskSecrets, rememberSecret } from "./mask.ts";
import { register } from "./register.ts";
import { nextSlot, phaseOffset } from "./schedule.ts";
import { isValidSecret } from "./secret.ts";
import { TimerQueue } from "./timer_queue.ts";
import { RetryBudget } from "./retry_budget.ts";
import { SharedDeadlines } from "./shared_deadline.ts";
import { isValidWorkspaceId } from "./workspace_id.ts";
import { newRuntime, type Runtime } from "./workspace_runtime.ts";
import type {
  HeartbeatEventMap,
  HeartbeatOptions,
  HeartbeatStatus,
  ReadyResult,
  WorkspaceConfig,
} from "./heartbeat_types.ts";

export type {
  HeartbeatEventMap,
  HeartbeatOptions,
  HeartbeatStatus,
  ReadyResult,
  WorkspaceConfig,
  WorkspaceStatus,
} from "./heartbeat_types.ts";
import {
  createTroubleLog,
  type TroubleKind,
  troubleKind,
  type TroubleLog,
} from "./trouble_log.ts";
import { fetchWorkspaceState, type WorkspaceState } from "./workspace_state.ts";

/** Wake-ups a second a big fleet's default grouping aims to stay under. */
const MAX_GROUPS_PER_SECOND = 32;

/**
 * The handle {@link startHeartbeat} returns: status, events, stop.
 *
 * Events are `CustomEvent`s whose `detail` is given by
 * {@link HeartbeatEventMap}.
 *
 * @example
 * ```ts
 * import { startHeartbeat } from "@molecule/heartbeat";
 * const hb = startHeartbeat({
 *   platformUrl: "http://127.0.0.1:8080",
 *   workspaces: [{ id: "ws-1", token: "t" }],
 * });
 * hb.addEventListener("beat", (e) => {
 *   const { workspaceId } = (e as CustomEvent).detail;
 *   console.log("alive", workspaceId);
 * });
 * await hb.stop();
 * ```
 */
export class HeartbeatHandle extends EventTarget {
  /** Resolves once every workspace's first register attempt has finished (or on stop). */
  readonly ready: Promise<ReadyResult>;
  /** Resolves when the heartbeat has stopped and everything has settled. */
  readonly stopped: Promise<void>;

  #options: HeartbeatOptions;
  #interval: number;
  #timeout: number;
  #clock: Clock;
  #random: () => number;
  #queue: TimerQueue;
  #abort = new AbortController();
  #limit: Limiter;
  #registerConcurrency: number;
  #runtimes: Runtime[];
  #pending = new Set<Promise<unknown>>();
  #listeners = new Map<string, number>();
  #startedAt: number;
  #stopping: Promise<void> | undefined;
  #resolveStopped!: () => void;
  #onSignal = () => void this.stop();
  #deadlines: SharedDeadlines;
  #inFlight = 0;
  #maxInFlight: number;
  #skipped = 0;
  #skippedSinceWarn = 0;
  #skipWarnedAt = -Infinity;
  #budget: RetryBudget;
  #trouble: TroubleLog | undefined;

  /**
   * Use {@link startHeartbeat}; this constructor starts the work too.
   *
   * @param options What to serve and how.
   */
  constructor(options: HeartbeatOptions) {
    super();
    this.#options = options;
    this.#interval = options.intervalMs ?? HEARTBEAT_INTERVAL_MS;
    this.#timeout = options.timeoutMs ??
      Math.min(REQUEST_TIMEOUT_MS, this.#interval);
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#queue = new TimerQueue(
      this.#clock,
      (error) =>
        logger.error("internal error in a scheduled task: {error}", { error }),
    );
    this.#registerConcurrency = Math.max(
      1,
      Math.floor(options.registerConcurrency ?? 8),
    );
    this.#limit = createLimiter(this.#registerConcurrency);
    this.#maxInFlight = Math.max(1, Math.floor(options.maxInFlight ?? 256));
    this.#budget = new RetryBudget({
      ratio: options.retryBudget,
      perInterval: options.workspaces.length,
    });
    this.#deadlines = new SharedDeadlines(this.#queue, this.#timeout);
    if (options.summarizeLogs ?? true) {
      this.#trouble = createTroubleLog({
        now: () => this.#clock.now(),
        later: (ms, fn) => void this.#queue.at(this.#clock.now() + ms, fn),
        summary: (kind, count, ids) =>
          logger[kind === "auth" || kind === "redirect" ? "error" : "warn"](
            "…and {count} more workspace(s) had the same trouble ({kind}) in the last second: {ids} (--verbose shows each)",
            { count, kind, ids },
          ),
      });
    }
    this.#startedAt = options.startedAt ?? this.#clock.now();
    this.stopped = new Promise((resolve) => this.#resolveStopped = resolve);
    const count = options.workspaces.length;
    const groupSize = options.beatGroupSize ??
      Math.max(
        BEAT_GROUP_SIZE,
        Math.ceil((count * 1000) / this.#interval / MAX_GROUPS_PER_SECOND),
      );
    const t0 = this.#clock.now();
    this.#runtimes = options.workspaces.map((config, i) =>
      newRuntime(
        config,
        t0 + phaseOffset(i, count, this.#interval, groupSize),
      )
    );
    if (options.signal?.aborted) {
      this.ready = Promise.resolve({
        registered: [],
        rejected: [],
        failed: [],
        deleted: [],
      });
      void this.stop();
      return;
    }
    options.signal?.addEventListener("abort", this.#onSignal, { once: true });
    // Beats never wait on register: each workspace beats on its phase from
    // the first interval, whatever its register is doing (a hung register
    // must not leave a fleet OFFLINE); a refused or deleted one is dropped.
    for (const ws of this.#runtimes) this.#scheduleBeat(ws, ws.anchor);
    this.ready = this.#track(this.#registerAll());
    if (options.checkStateAtStart) {
      for (const ws of this.#runtimes) this.#askState(ws, true);
    }
  }

  /**
   * Listens for an event; see {@link HeartbeatEventMap} for the types.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options The standard listener options.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    this.#listeners.set(type, (this.#listeners.get(type) ?? 0) + 1);
    super.addEventListener(type, listener, options);
  }

  /**
   * A snapshot of every workspace's state.
   *
   * @returns The snapshot; plain data, safe to serialize.
   */
  status(): HeartbeatStatus {
    const now = this.#clock.now();
    return {
      stopped: this.#stopping !== undefined,
      intervalMs: this.#interval,
      uptimeSeconds: Math.floor((now - this.#startedAt) / 1000),
      inFlight: this.#inFlight,
      maxInFlight: this.#maxInFlight,
      beatsSkipped: this.#skipped,
      retriesDeferred: this.#budget.deferred,
      workspaces: this.#runtimes.map((ws) => ({
        workspaceId: ws.id,
        registered: ws.registered,
        rejected: ws.rejected,
        deleted: ws.deleted,
        paused: ws.paused,
        lastState: ws.lastState,
        beatsSent: ws.beatsSent,
        beatsAccepted: ws.beatsAccepted,
        lastSuccessAt: ws.lastSuccessWall === undefined
          ? undefined
          : new Date(ws.lastSuccessWall).toISOString(),
        sinceLastSuccessMs: ws.lastSuccessClock === undefined
          ? undefined
          : Math.max(0, now - ws.lastSuccessClock),
        lastStatus: ws.lastStatus,
        lastError: ws.lastError === undefined
          ? undefined
          : maskSecrets(ws.lastError),
        consecutiveFailures: ws.consecutiveFailures,
        authFailures: ws.authFailures,
        secretStored: ws.secretStored,
        beatsSkipped: ws.beatsSkipped,
        ...(ws.lastStats ? { stats: ws.lastStats } : {}),
      })),
    };
  }

  /**
   * Stops: aborts requests under way, clears every timer, and resolves when
   * everything (secret writes included) has settled. Safe to call twice.
   *
   * @returns A promise that resolves when all has settled.
   */
  stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    const reason = new DOMException("heartbeat stopped", "AbortError");
    this.#abort.abort(reason);
    this.#deadlines.abortAll(reason);
    this.#queue.clear();
    this.#options.signal?.removeEventListener("abort", this.#onSignal);
    this.#stopping = (async () => {
      while (this.#pending.size > 0) {
        await Promise.allSettled([...this.#pending]);
      }
      this.#queue.clear();
      this.#resolveStopped();
    })();
    return this.#stopping;
  }

  /**
   * Starts serving one more workspace: it registers and beats at once, then
   * every interval.
   *
   * @param config The workspace.
   * @throws {TypeError} When its id is already served or not a valid id.
   */
  addWorkspace(config: WorkspaceConfig): void {
    checkWorkspaceId(config.id);
    if (this.#runtimes.some((w) => w.id === config.id)) {
      throw new TypeError(`workspace id ${config.id} is already served`);
    }
    if (this.#isStopped) return;
    const ws = newRuntime(config, this.#clock.now());
    this.#runtimes.push(ws);
    this.#scheduleBeat(ws, ws.anchor);
    void this.#track(this.#register(ws));
  }

  /**
   * Stops serving a workspace: its schedule ends, nothing more is sent for
   * it, and the answer of a request already under way is ignored. It leaves
   * {@link HeartbeatHandle.status}.
   *
   * @param workspaceId The workspace.
   * @returns Whether it was served.
   */
  removeWorkspace(workspaceId: string): boolean {
    const i = this.#runtimes.findIndex((w) => w.id === workspaceId);
    if (i === -1) return false;
    const ws = this.#runtimes[i];
    ws.removed = true;
    if (ws.timer) this.#queue.cancel(ws.timer);
    ws.timer = undefined;
    this.#runtimes.splice(i, 1);
    return true;
  }

  /** Stops, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  get #isStopped(): boolean {
    return this.#stopping !== undefined;
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise);
    const forget = () => this.#pending.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  #emit<K extends keyof HeartbeatEventMap>(
    type: K,
    detail: HeartbeatEventMap[K],
  ): void {
    if (!this.#listeners.get(type)) return;
    try {
      this.dispatchEvent(new CustomEvent(type, { detail }));
    } catch (error) {
      logger.error("an event listener threw: {error}", { error });
    }
  }

  // ---- register ----

  async #registerAll(): Promise<ReadyResult> {
    const result: ReadyResult = {
      registered: [],
      rejected: [],
      failed: [],
      deleted: [],
    };
    // A few workers take the workspaces in turn, rather than one waiting
    // promise per workspace: ten thousand of those all alive at once made
    // V8 grow its young generation for good.
    const next = this.#runtimes.values();
    const worker = async () => {
      for (const ws of next) {
        const outcome = await this.#register(ws);
        if (outcome === "ok") result.registered.push(ws.id);
        else if (outcome === "rejected") {
          result.rejected.push({ workspaceId: ws.id, status: ws.lastStatus! });
        } else if (outcome === "deleted") result.deleted.push(ws.id);
        else if (outcome !== "aborted") {
          result.failed.push({ workspaceId: ws.id, reason: outcome.reason });
        }
      }
    };
    const workers = Math.max(
      1,
      Math.min(this.#registerConcurrency, this.#runtimes.length),
    );
    await Promise.all(Array.from({ length: workers }, worker));
    return result;
  }

  async #register(
    ws: Runtime,
  ): Promise<
    "ok" | "rejected" | "deleted" | "aborted" | { reason: string }
  > {
    if (this.#isStopped || ws.deleted || ws.removed) return "aborted";
    const signal = this.#abort.signal;
    let result;
    try {
      result = await this.#limit(() =>
        this.#isStopped
          ? Promise.reject(signal.reason)
          : this.#counted(register({
            platformUrl: this.#options.platformUrl,
            workspaceId: ws.id,
            token: ws.config.token,
            agentCard: ws.config.agentCard ??
              buildAgentCard(ws.id, this.#options.env ?? processEnv),
            timeoutMs: this.#timeout,
            signal,
            fetch: this.#options.fetch,
            orgId: this.#options.orgId,
          }))
      );
    } catch (error) {
      if (error instanceof RegisterAuthError) {
        // A refused token, or a deleted workspace? The platform can tell.
        const state = await this.#fetchState(ws);
        if (state) this.#applyState(ws, state);
        if (ws.deleted) return "deleted";
        if (this.#isStopped) return "aborted";
        this.#reject(ws, error);
        return "rejected";
      }
      if (signal.aborted) return "aborted";
      return { reason: String(error) };
    }
    ws.lastStatus = result.status ?? ws.lastStatus;
    if (result.kind === "ok") {
      if (result.authToken) rememberSecret(result.authToken);
      ws.registered = true;
      ws.registerFailures = 0;
      logger.info("registered workspace {workspaceId} with the platform", {
        workspaceId: ws.id,
      });
      this.#emit("registered", {
        workspaceId: ws.id,
        status: result.status!,
        ...(result.authToken ? { authToken: result.authToken } : {}),
      });
      this.#offerSecret(ws, result.inboundSecret);
      return "ok";
    }
    ws.registerFailures++;
    ws.lastError = result.reason;
    const retryInMs = this.#budget.spend()
      ? Math.min(
        this.#interval,
        Math.max(
          this.#backoff(ws.registerFailures),
          result.answer?.retryAfterMs ?? 0,
        ),
      )
      : this.#interval;
    this.#troubled(
      "register",
      ws,
      () =>
        logger[result.kind === "redirect" ? "error" : "warn"](
          "register of workspace {workspaceId} failed ({reason}); heartbeats go on, register is retried in {retryInMs} ms",
          { workspaceId: ws.id, reason: result.reason, retryInMs },
        ),
    );
    this.#emit("register-failed", {
      workspaceId: ws.id,
      kind: result.kind,
      status: result.status,
      reason: result.reason,
      retryInMs,
    });
    this.#queue.at(this.#clock.now() + retryInMs, () => {
      void this.#track(
        this.#register(ws).catch((error) => {
          logger.error("register retry failed: {error}", { error });
        }),
      );
    });
    return { reason: result.reason };
  }

  #reject(ws: Runtime, error: RegisterAuthError): void {
    ws.rejected = true;
    ws.lastStatus = error.status;
    ws.lastError = `register rejected with HTTP ${error.status}`;
    if (ws.timer) this.#queue.cancel(ws.timer);
    ws.timer = undefined;
    logger.error(
      "register rejected with HTTP {status}: the token is invalid for workspace {workspaceId}. " +
        "Regenerate it from the canvas → Tokens tab. This workspace is no longer served.",
      { status: error.status, workspaceId: ws.id },
    );
    this.#emit("rejected", { workspaceId: ws.id, status: error.status });
  }

  #backoff(attempt: number): number {
    return backoffDelay(attempt, {
      baseMs: Math.min(1000, this.#interval / 4),
      capMs: this.#interval,
      minMs: Math.min(100, this.#interval / 10),
      random: this.#random,
    });
  }

  // ---- heartbeat ----

  #served(ws: Runtime): boolean {
    return !this.#isStopped && !ws.rejected && !ws.deleted && !ws.paused &&
      !ws.removed;
  }

  /** Counts a request in flight while it runs. */
  async #counted<T>(request: Promise<T>): Promise<T> {
    this.#inFlight++;
    try {
      return await request;
    } finally {
      this.#inFlight--;
    }
  }

  #skip(ws: Runtime): void {
    ws.beatsSkipped++;
    this.#skipped++;
    this.#skippedSinceWarn++;
    const now = this.#clock.now();
    if (now - this.#skipWarnedAt < 10_000) return;
    logger.warn(
      "{count} beat(s) skipped: {inFlight} requests are in flight, the cap; the platform is slow to answer (a skipped beat is superseded by the next)",
      { count: this.#skippedSinceWarn, inFlight: this.#inFlight },
    );
    this.#skipWarnedAt = now;
    this.#skippedSinceWarn = 0;
  }

  #scheduleBeat(ws: Runtime, due: number, retry = false): void {
    if (!this.#served(ws)) return;
    if (ws.timer) this.#queue.cancel(ws.timer);
    ws.retrying = retry;
    ws.timer = this.#queue.at(due, () => {
      ws.timer = undefined;
      if (ws.inFlight || !this.#served(ws)) return;
      const now = this.#clock.now();
      if (this.#inFlight >= this.#maxInFlight) {
        this.#skip(ws);
        return this.#scheduleBeat(
          ws,
          nextSlot(ws.anchor, this.#interval, now, now),
        );
      }
      if (!ws.retrying) {
        this.#budget.earn();
      }
      ws.inFlight = true;
      void this.#track(this.#counted(this.#beat(ws))).catch((error) => {
        ws.inFlight = false;
        logger.error("internal error in a beat of {workspaceId}: {error}", {
          workspaceId: ws.id,
          error,
        });
      });
    });
  }

  async #beat(ws: Runtime): Promise<void> {
    const sentAt = this.#clock.now();
    const stats = await this.#stats(ws);
    const body = buildHeartbeatBody(
      ws.id,
      (sentAt - this.#startedAt) / 1000,
      stats,
    );
    if (this.#options.stats) {
      const { workspace_id: _, uptime_seconds: __, ...sent } = body;
      ws.lastStats = sent;
    }
    if (this.#isStopped) {
      ws.inFlight = false;
      return;
    }
    let result: HeartbeatResult;
    const deadline = this.#deadlines.join(sentAt);
    try {
      result = await sendHeartbeat({
        platformUrl: this.#options.platformUrl,
        token: ws.config.token,
        body,
        timeoutMs: 0,
        signal: deadline.controller.signal,
        fetch: this.#options.fetch,
        orgId: this.#options.orgId,
      });
    } catch (error) {
      ws.inFlight = false;
      if (this.#isStopped) return;
      throw error;
    } finally {
      this.#deadlines.leave(deadline);
    }
    ws.inFlight = false;
    if (this.#isStopped || ws.removed) return;
    const now = this.#clock.now();
    ws.beatsSent++;
    if (result.status !== undefined) ws.lastStatus = result.status;
    let next = nextSlot(ws.anchor, this.#interval, sentAt, now);
    let retry = false;

    if (result.kind === "ok") {
      ws.beatsAccepted++;
      ws.consecutiveFailures = 0;
      ws.authFailures = 0;
      ws.lastSuccessClock = now;
      ws.lastSuccessWall = Date.now();
      ws.lastError = undefined;
      if (logger.isEnabledFor("debug")) {
        logger.debug("beat accepted for {workspaceId}", { workspaceId: ws.id });
      }
      this.#emit("beat", {
        workspaceId: ws.id,
        status: result.status!,
        latencyMs: now - sentAt,
      });
      this.#offerSecret(ws, result.inboundSecret);
      const every = this.#options.statePollEvery ?? 0;
      if (every > 0 && ++ws.beatsSinceState >= every) {
        ws.beatsSinceState = 0;
        this.#askState(ws, true);
      }
      this.#scheduleBeat(ws, next);
      return;
    }

    ws.consecutiveFailures++;
    ws.lastError = result.reason;
    if (result.kind === "auth") {
      ws.authFailures++;
      this.#askState(ws, false);
      this.#logAuthFailure(ws, result.status!);
    } else if (result.kind === "transient") {
      const retryAfter = Math.min(
        this.#interval,
        result.answer?.retryAfterMs ?? 0,
      );
      if (this.#budget.spend()) {
        next = now +
          Math.max(this.#backoff(ws.consecutiveFailures), retryAfter);
        retry = true;
      } else next = Math.max(next, now + retryAfter);
      const retryInMs = Math.round(next - now);
      this.#troubled(
        troubleKind(result.kind, result.status, result.reason),
        ws,
        () =>
          logger.warn(
            "heartbeat of {workspaceId} failed: {reason}; retrying in {retryInMs} ms",
            { workspaceId: ws.id, reason: result.reason, retryInMs },
          ),
      );
    } else {
      this.#troubled(
        troubleKind(result.kind, result.status, result.reason),
        ws,
        () =>
          logger[result.kind === "redirect" ? "error" : "warn"](
            "heartbeat of {workspaceId} failed: {reason}",
            { workspaceId: ws.id, reason: result.reason },
          ),
      );
    }
    this.#emit("failure", {
      workspaceId: ws.id,
      kind: result.kind,
      status: result.status,
      reason: result.reason,
      consecutiveFailures: ws.consecutiveFailures,
      nextInMs: next - now,
    });
    this.#scheduleBeat(ws, next, retry);
  }

  async #stats(ws: Runtime): Promise<HeartbeatStats | undefined> {
    const fn = this.#options.stats;
    if (!fn) return undefined;
    try {
      return await fn(ws.id);
    } catch (error) {
      if (!ws.statsWarned) {
        logger.warn(
          "the stats function threw for {workspaceId}; sending zeros: {error}",
          { workspaceId: ws.id, error: String(error) },
        );
        ws.statsWarned = true;
      }
      return undefined;
    }
  }

  /** A failure's log line, summarised with the fleet's (see `summarizeLogs`). */
  #troubled(kind: TroubleKind, ws: Runtime, line: () => void): void {
    if (this.#trouble) this.#trouble.report(kind, ws.id, line);
    else line();
  }

  #logAuthFailure(ws: Runtime, status: number): void {
    const count = ws.authFailures;
    const level = authFailureLevel(count);
    if (level === "warning") {
      this.#troubled("auth", ws, () =>
        logger.warn(
          "heartbeat of {workspaceId} got HTTP {status} (auth failure {count}/3): the token may be revoked. " +
            "Will retry; if it persists, regenerate it from the canvas → Tokens tab.",
          { workspaceId: ws.id, status, count },
        ));
    } else if (level === "error") {
      // The platform's workspace state, when asked, turns the reference's
      // guess into a certainty.
      const why = ws.authConfirmed
        ? "has been REVOKED (the platform's workspace state confirms the workspace exists and refuses the token). " +
          "Every platform call will fail. Regenerate the token from the canvas (Tokens tab)"
        : "has been REVOKED, likely because the workspace was deleted server-side. Every platform call " +
          "will fail. Regenerate the workspace and its token from the canvas (Tokens tab)";
      // Where the new token goes, and whether a restart is needed.
      const source = ws.config.tokenSource;
      const then = source === undefined
        ? "update MOLECULE_WORKSPACE_TOKEN or the token file, and restart"
        : ws.config.tokenReread
        ? `put the new one in ${source} (re-read when it changes: no restart needed)`
        : `update ${source}, and restart`;
      this.#troubled("auth", ws, () =>
        logger.error(
          "{count} consecutive heartbeat auth failures (HTTP {status}): the token of workspace {workspaceId} " +
            `${why}, then ${then}.`,
          { workspaceId: ws.id, status, count },
        ));
      this.#emit("auth-escalation", { workspaceId: ws.id, status, count });
    }
  }

  // ---- lifecycle: GET /workspaces/:id/state ----

  /** One state request for `ws`; `undefined` when stopped meanwhile. */
  async #fetchState(ws: Runtime): Promise<WorkspaceState | undefined> {
    ws.stateAskedAt = this.#clock.now();
    try {
      const state = await this.#counted(fetchWorkspaceState({
        platformUrl: this.#options.platformUrl,
        workspaceId: ws.id,
        token: ws.config.token,
        orgId: this.#options.orgId,
        timeoutMs: this.#timeout,
        signal: this.#abort.signal,
        fetch: this.#options.fetch,
      }));
      ws.lastState = state.kind;
      return state;
    } catch {
      return undefined; // stopped
    }
  }

  /**
   * Asks the platform for `ws`'s state in the background: at most one
   * request at a time per workspace, and unless `force`, at most once per
   * interval.
   */
  #askState(ws: Runtime, force: boolean): void {
    if (
      this.#isStopped || ws.deleted || ws.rejected || ws.removed ||
      ws.stateAsking
    ) return;
    const now = this.#clock.now();
    if (
      !force && ws.stateAskedAt !== undefined &&
      now - ws.stateAskedAt < this.#interval
    ) return;
    if (this.#inFlight >= this.#maxInFlight) {
      // Asked again when it matters; a paused one keeps its low-rate check.
      if (ws.paused) {
        this.#queue.at(
          now + this.#pausedCheckMs,
          () => this.#askState(ws, true),
        );
      }
      return;
    }
    ws.stateAsking = true;
    void this.#track(
      this.#fetchState(ws).then((state) => {
        ws.stateAsking = false;
        if (state && !this.#isStopped) this.#applyState(ws, state);
      }),
    );
  }

  #applyState(ws: Runtime, state: WorkspaceState): void {
    this.#actOnState(ws, state);
    this.#emit("state", {
      workspaceId: ws.id,
      kind: state.kind,
      ...(state.platformStatus ? { platformStatus: state.platformStatus } : {}),
    });
  }

  #actOnState(ws: Runtime, state: WorkspaceState): void {
    if (ws.deleted) return;
    switch (state.kind) {
      case "deleted": {
        ws.deleted = true;
        ws.paused = false;
        if (ws.timer) this.#queue.cancel(ws.timer);
        ws.timer = undefined;
        ws.lastError = "deleted on the platform";
        logger.error(
          "workspace {workspaceId} was deleted on the platform: it is no longer served. " +
            "Create a new workspace in the canvas and use its id and token.",
          { workspaceId: ws.id },
        );
        this.#emit("deleted", {
          workspaceId: ws.id,
          ...(state.platformStatus
            ? { platformStatus: state.platformStatus }
            : {}),
        });
        return;
      }
      case "paused":
        if (!ws.paused) {
          ws.paused = true;
          if (ws.timer) this.#queue.cancel(ws.timer);
          ws.timer = undefined;
          logger.warn(
            "workspace {workspaceId} is paused on the platform: heartbeats stop until it is resumed (its state is checked every {seconds} s)",
            {
              workspaceId: ws.id,
              seconds: Math.round(this.#pausedCheckMs / 1000),
            },
          );
          this.#emit("paused", { workspaceId: ws.id });
        }
        break;
      case "auth":
        ws.authConfirmed = true;
        break;
      case "online":
        ws.authConfirmed = false;
        break;
    }
    if (ws.paused && state.kind !== "paused" && state.kind !== "unknown") {
      ws.paused = false;
      logger.warn("workspace {workspaceId} was resumed: heartbeats go on", {
        workspaceId: ws.id,
      });
      this.#emit("resumed", { workspaceId: ws.id });
      this.#scheduleBeat(ws, this.#clock.now());
    }
    if (ws.paused) {
      this.#queue.at(
        this.#clock.now() + this.#pausedCheckMs,
        () => this.#askState(ws, true),
      );
    }
  }

  get #pausedCheckMs(): number {
    return this.#options.pausedCheckMs ?? 60_000;
  }

  // ---- inbound secret ----

  #offerSecret(ws: Runtime, value: unknown): void {
    if (value === undefined || value === null || value === "") return;
    if (!isValidSecret(value)) {
      if (!ws.badSecretWarned) {
        logger.warn(
          "ignoring a platform_inbound_secret for {workspaceId} that is not a string of 1-4096 characters without control characters",
          { workspaceId: ws.id },
        );
        ws.badSecretWarned = true;
      }
      return;
    }
    ws.badSecretWarned = false;
    rememberSecret(value);
    if (!this.#options.secretStore) return;
    if (value === ws.secret || value === ws.secretPending) return;
    ws.secretPending = value;
    if (!ws.secretWriting) void this.#track(this.#writeSecret(ws));
  }

  async #writeSecret(ws: Runtime): Promise<void> {
    const store = this.#options.secretStore!;
    ws.secretWriting = true;
    try {
      if (!ws.secretLoaded) {
        ws.secret = await store.load(ws.id).catch(() => undefined);
        ws.secretLoaded = true;
      }
      while (
        ws.secretPending !== undefined && ws.secretPending !== ws.secret
      ) {
        const value = ws.secretPending;
        try {
          await store.save(ws.id, value);
        } catch (error) {
          const reason = maskSecrets(
            error instanceof Error ? error.message : String(error),
          );
          // Once per workspace until the reason changes, not on every beat.
          if (ws.secretFailure !== reason) {
            ws.secretFailure = reason;
            logger.warn(
              "could not store the inbound secret of {workspaceId}: {reason}; the next answer that carries it retries",
              { workspaceId: ws.id, reason },
            );
          }
          this.#emit("secret-failed", { workspaceId: ws.id, reason });
          break;
        }
        ws.secret = value;
        ws.secretStored = true;
        ws.secretFailure = undefined;
        logger.info("stored a new inbound secret for {workspaceId}", {
          workspaceId: ws.id,
        });
        this.#emit("secret-stored", { workspaceId: ws.id });
      }
    } finally {
      ws.secretPending = undefined;
      ws.secretWriting = false;
    }
  }
}

/**
 * Registers every workspace (at most `registerConcurrency` at once) and then
 * heartbeats each on a fixed-rate schedule: beat k at `start + phase + k ×
 * interval`, the phases spreading a fleet's beats evenly over the interval.
 * Failed beats (network, timeout, 5xx, 429) are retried sooner with
 * exponential backoff and full jitter, capped at the interval; `Retry-After`
 * is honoured up to the interval. 401/403 beats escalate as the reference
 * does. Inbound secrets from any answer are stored when they change.
 *
 * @example One workspace, with secrets kept in memory
 * ```ts
 * import { MemorySecretStore, startHeartbeat } from "@molecule/heartbeat";
 * const controller = new AbortController();
 * const hb = startHeartbeat({
 *   platformUrl: "http://127.0.0.1:8080",
 *   workspaces: [{ id: "ws-1", token: "t" }],
 *   secretStore: new MemorySecretStore(),
 *   signal: controller.signal,
 * });
 * const { rejected } = await hb.ready;
 * if (rejected.length > 0) console.error("token refused");
 * controller.abort();
 * await hb.stopped;
 * ```
 *
 * @param options What to serve and how.
 * @returns The handle: status, events, stop.
 * @throws {TypeError} When there is no workspace, an id repeats, or the
 * interval is not a positive number.
 */
export function startHeartbeat(options: HeartbeatOptions): HeartbeatHandle {
  if (options.workspaces.length === 0) {
    throw new TypeError("startHeartbeat needs at least one workspace");
  }
  const ids = new Set<string>();
  for (const ws of options.workspaces) {
    checkWorkspaceId(ws.id);
    if (ids.has(ws.id)) {
      throw new TypeError(`workspace id ${ws.id} is given twice`);
    }
    ids.add(ws.id);
  }
  const interval = options.intervalMs ?? HEARTBEAT_INTERVAL_MS;
  if (!(interval > 0) || !Number.isFinite(interval)) {
    throw new TypeError(
      `intervalMs must be a positive number, not ${interval}`,
    );
  }
  return new HeartbeatHandle(options);
}

function checkWorkspaceId(id: string): void {
  if (typeof id !== "string" || !isValidWorkspaceId(id)) {
    throw new TypeError(
      "a workspace id must be 1 to 512 characters without control characters",
    );
  }
}
