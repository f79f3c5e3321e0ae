/**
 * Register and heartbeat any number of workspaces on one event loop: the
 * public handle. Its parts, each in a file named for its job, share one
 * `Fleet` (`fleet.ts`): the beats (`beat_loop.ts`), register
 * (`register_workers.ts`), the workspace lifecycle (`lifecycle.ts`) and the
 * inbound secrets (`secret_writer.ts`).
 *
 * @module
 */
import { scheduleBeat } from "./_beat_loop.ts";
import { BEAT_GROUP_SIZE, HEARTBEAT_INTERVAL_MS } from "../shared/constants.ts";
import { Fleet } from "./_fleet.ts";
import { logger } from "../shared/_logger.ts";
import { maskSecrets } from "../shared/mask.ts";
import { askState } from "./_lifecycle.ts";
import { registerAll, registerOne } from "./_register_workers.ts";
import { phaseOffset } from "./_slots.ts";
import { isValidWorkspaceId } from "../shared/workspace_id.ts";
import { newRuntime, type Runtime } from "./_workspace_runtime.ts";
import { BEAT_DURATION_BOUNDS } from "./_counters.ts";
import type {
  HeartbeatEventMap,
  HeartbeatMetrics,
  HeartbeatOptions,
  HeartbeatStatus,
  ReadyResult,
  WorkspaceConfig,
} from "./types.ts";

export type {
  BeatFailureReason,
  HeartbeatEventMap,
  HeartbeatMetrics,
  HeartbeatOptions,
  HeartbeatStatus,
  ReadyResult,
  WorkspaceConfig,
  WorkspaceStatus,
} from "./types.ts";

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

  #fleet: Fleet;
  #runtimes: Runtime[];
  #listeners = new Map<string, number>();
  #stopping: Promise<void> | undefined;
  #resolveStopped!: () => void;
  #onSignal = () => void this.stop();

  /**
   * Use {@link startHeartbeat}; this constructor starts the work too.
   *
   * @param options What to serve and how.
   */
  constructor(options: HeartbeatOptions) {
    super();
    const fleet = new Fleet(
      options,
      (type, detail) => this.#emit(type, detail),
    );
    this.#fleet = fleet;
    fleet.rearm = (ws, due) => scheduleBeat(fleet, ws, due);
    this.stopped = new Promise((resolve) => this.#resolveStopped = resolve);
    const count = options.workspaces.length;
    const groupSize = options.beatGroupSize ??
      Math.max(
        BEAT_GROUP_SIZE,
        Math.ceil((count * 1000) / fleet.interval / MAX_GROUPS_PER_SECOND),
      );
    const t0 = fleet.clock.now();
    this.#runtimes = options.workspaces.map((config, i) =>
      newRuntime(config, t0 + phaseOffset(i, count, fleet.interval, groupSize))
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
    for (const ws of this.#runtimes) scheduleBeat(fleet, ws, ws.anchor);
    this.ready = fleet.track(registerAll(fleet, this.#runtimes));
    if (options.checkStateAtStart) {
      for (const ws of this.#runtimes) askState(fleet, ws, true);
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
    const fleet = this.#fleet;
    const now = fleet.clock.now();
    return {
      stopped: this.#stopping !== undefined,
      intervalMs: fleet.interval,
      uptimeSeconds: Math.floor((now - fleet.startedAt) / 1000),
      inFlight: fleet.inFlight,
      maxInFlight: fleet.maxInFlight,
      beatsSkipped: fleet.skipped,
      retriesDeferred: fleet.budget.deferred,
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
   * Fleet-wide counts and gauges for monitoring, in one pass over the
   * workspaces and without per-workspace objects (cheap enough to serve on
   * every scrape of a fleet of ten thousand).
   *
   * @returns The figures; plain data.
   */
  metrics(): HeartbeatMetrics {
    const fleet = this.#fleet;
    const c = fleet.counters;
    const now = fleet.clock.now();
    const workspaces = {
      beating: 0,
      registering: 0,
      paused: 0,
      deleted: 0,
      rejected: 0,
    };
    let oldest = 0;
    let unarmed = 0;
    for (const ws of this.#runtimes) {
      if (ws.deleted) workspaces.deleted++;
      else if (ws.rejected) workspaces.rejected++;
      else if (ws.paused) workspaces.paused++;
      else {
        if (ws.registered) workspaces.beating++;
        else workspaces.registering++;
        const since = now - (ws.lastSuccessClock ?? fleet.startedAt);
        if (since > oldest) oldest = since;
        if (!ws.timer && !ws.inFlight && !fleet.stopped) unarmed++;
      }
    }
    return {
      beats: { ...c.beats },
      beatFailures: { ...c.beatFailures },
      beatDuration: {
        bounds: BEAT_DURATION_BOUNDS,
        counts: [...c.durationCounts],
        sum: c.durationSum,
        count: c.durationCount,
      },
      registers: { ...c.registers },
      authEscalations: c.authEscalations,
      requestsInFlight: fleet.inFlight,
      workspaces,
      oldestAcceptedBeatAgeSeconds: Math.max(0, oldest) / 1000,
      retryBudgetTokens: fleet.budget.tokens,
      unarmed,
      stopped: fleet.stopped,
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
    const fleet = this.#fleet;
    const reason = new DOMException("heartbeat stopped", "AbortError");
    fleet.stopped = true;
    fleet.abort.abort(reason);
    fleet.deadlines.abortAll(reason);
    fleet.queue.clear();
    fleet.options.signal?.removeEventListener("abort", this.#onSignal);
    this.#stopping = (async () => {
      await fleet.settle();
      fleet.queue.clear();
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
    const fleet = this.#fleet;
    if (fleet.stopped) return;
    const ws = newRuntime(config, fleet.clock.now());
    this.#runtimes.push(ws);
    scheduleBeat(fleet, ws, ws.anchor);
    void fleet.track(registerOne(fleet, ws));
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
    this.#fleet.unschedule(ws);
    this.#runtimes.splice(i, 1);
    return true;
  }

  /** Stops, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
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
