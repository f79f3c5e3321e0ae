/**
 * Register and heartbeat any number of workspaces on one event loop: the
 * public handle. Its parts, each in a file named for its job, share one
 * `Fleet` (`_fleet.ts`): the state machine and the schedule (`_life.ts`),
 * the beat (`_beat.ts`), register (`_register_workers.ts`), the lifecycle
 * questions (`_life.ts`), the inbound secrets and issued tokens
 * (`_secret_writer.ts`, `_token_keeper.ts`) and sleep and wake
 * (`_life.ts`).
 *
 * @module
 */
import { beat } from "./_beat.ts";
import {
  createFleet,
  type Fleet,
  LAST_CALL_MS,
  MAX_GROUPS_PER_SECOND,
  WRITE_GRACE_MS,
} from "./_fleet.ts";
import { logger } from "../shared/_logger.ts";
import { maskSecrets } from "../shared/mask.ts";
import { armBeat, ask, isServed, moveTo, startWatchdog } from "./_life.ts";
import { wantRegister } from "./_register_workers.ts";
import { burstOffset, phaseOffset } from "./_slots.ts";

import { isUuid, isValidWorkspaceId } from "../shared/workspace_id.ts";
import { buildAgentCard } from "../platform/agent_card.ts";
import { processEnv } from "../shared/env.ts";
import { trimBaseUrl } from "../platform/http.ts";
import { newRuntime, type Runtime } from "./_workspace_runtime.ts";
import { byPhase, metricsOf } from "./_counters.ts";
import type {
  HeartbeatEventMap,
  HeartbeatMetrics,
  HeartbeatOptions,
  HeartbeatStatus,
  ReadyResult,
  WorkspaceConfig,
} from "./types.ts";

/** stop() gives up waiting for work left (it is all raced against the stop) after this, in ms. */
const STOP_BOUND_MS = 2_000;

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
 *   const { workspaceId } = e.detail;
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
  #listeners = new Map<string, number>();
  #resolveStopped!: () => void;
  #onSignal = () => void this.stop();
  /** Workspaces added so far: the state questions of added ones spread on from there. */
  #added = 0;

  /**
   * Use {@link startHeartbeat}; this constructor starts the work too.
   *
   * @param options What to serve and how.
   */
  constructor(options: HeartbeatOptions) {
    super();
    const fleet = createFleet(
      options,
      (type, detail) => this.#emit(type, detail),
    );
    this.#fleet = fleet;
    fleet.parts = {
      beat: (ws) => beat(fleet, ws),
      register: (ws) => wantRegister(fleet, ws),
    };
    this.stopped = new Promise((resolve) => this.#resolveStopped = resolve);
    const { interval, groupSize } = fleet;
    const t0 = fleet.clock.now();
    options.workspaces.forEach((config, i, all) => {
      const offset = phaseOffset(i, all.length, interval, groupSize);
      fleet.workspaces.push(this.#runtime(config, t0 + offset));
    });
    if (options.signal?.aborted) {
      this.ready = this.#firstRegisters([]);
      void this.stop();
      return;
    }
    options.signal?.addEventListener("abort", this.#onSignal, { once: true });
    warnNonUuid(options.workspaces.map((w) => w.id));
    this.ready = this.#firstRegisters([...fleet.workspaces]);
    // Beats never wait on register: each workspace beats on its phase from
    // the first interval, whatever its register is doing (a hung register
    // must not leave a fleet OFFLINE); a refused or deleted one is dropped.
    for (const ws of fleet.workspaces) armBeat(fleet, ws, ws.anchor, false);
    for (const ws of fleet.workspaces) wantRegister(fleet, ws);
    if (options.checkStateAtStart) {
      for (const ws of fleet.workspaces) ask(fleet, ws, "start");
    }
    startWatchdog(fleet);
  }

  #runtime(config: WorkspaceConfig, anchor: number): Runtime {
    const fleet = this.#fleet;
    const own = config.platformUrl?.trim();
    const url = own || fleet.options.platformUrl;
    if (typeof url !== "string" || url.trim() === "") {
      throw new TypeError(
        `no platform URL for workspace ${config.id}: set platformUrl, the platform's base URL (such as https://platform.example), or a platformUrl on the workspace`,
      );
    }
    if (!/^https?:\/\/[^/]/i.test(url.trim()) || !URL.canParse(url.trim())) {
      throw new TypeError(
        `the platform URL of workspace ${config.id} must be an http(s) URL, such as https://platform.example, not ${
          JSON.stringify(maskSecrets(url, { tokenLike: true }))
        }`,
      );
    }
    const every = fleet.statePollEvery;
    const index = this.#added++;
    // The org id is the fleet platform's: never sent elsewhere.
    const orgId = own ? undefined : fleet.options.orgId || undefined;
    if (orgId !== undefined) fleet.orgWorkspaces++;
    return newRuntime(config, {
      anchor,
      platformUrl: trimBaseUrl(url),
      orgId,
      card: config.agentCard ??
        buildAgentCard(config.id, fleet.options.env ?? processEnv),
      // Workspace i asks its state after (i mod N) + 1 accepted beats, then
      // every N: a fleet's questions spread over N beats.
      pollPhase: every > 0 ? every - 1 - (index % every) : 0,
    });
  }

  /** The handle's `ready`: every first register's outcome, or what is known at stop. */
  #firstRegisters(runtimes: Runtime[]): Promise<ReadyResult> {
    const result: ReadyResult = {
      registered: [],
      rejected: [],
      failed: [],
      deleted: [],
    };
    let left = runtimes.length;
    return new Promise<ReadyResult>((resolve) => {
      const done = () => resolve(result);
      this.stopped.then(done);
      for (const ws of runtimes) {
        ws.reg.first = (outcome) => {
          if (outcome === "ok") result.registered.push(ws.id);
          else if (outcome === "rejected") {
            result.rejected.push({
              workspaceId: ws.id,
              status: ws.last.status!,
            });
          } else if (outcome === "deleted") result.deleted.push(ws.id);
          else if (outcome !== "aborted") {
            result.failed.push({
              workspaceId: ws.id,
              reason: outcome,
            });
          }
          if (--left === 0) done();
        };
      }
      if (left === 0) done();
    });
  }

  /**
   * Listens for an event of {@link HeartbeatEventMap}: its `detail` is
   * typed by the map.
   *
   * @example
   * ```ts
   * import { startHeartbeat } from "@molecule/heartbeat";
   * const hb = startHeartbeat({
   *   platformUrl: "http://127.0.0.1:9",
   *   workspaces: [{ id: "ws-1", token: "tok-0123456789" }],
   *   signal: AbortSignal.abort(),
   * });
   * hb.addEventListener("beat", (e) => console.log(e.detail.workspaceId));
   * ```
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options The standard listener options.
   */
  override addEventListener<K extends keyof HeartbeatEventMap>(
    type: K,
    listener: ((event: CustomEvent<HeartbeatEventMap[K]>) => void) | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Listens for an event by any name, as `EventTarget` does.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options The standard listener options.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener:
      | EventListenerOrEventListenerObject
      | ((event: CustomEvent<never>) => void)
      | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    this.#listeners.set(type, (this.#listeners.get(type) ?? 0) + 1);
    super.addEventListener(type, listener as EventListener | null, options);
  }

  /**
   * Stops a listener; typed as {@link HeartbeatHandle.addEventListener} is.
   *
   * @param type The event type.
   * @param listener The listener given to `addEventListener`.
   * @param options The standard listener options.
   */
  override removeEventListener<K extends keyof HeartbeatEventMap>(
    type: K,
    listener: ((event: CustomEvent<HeartbeatEventMap[K]>) => void) | null,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Stops a listener of an event by any name, as `EventTarget` does.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options The standard listener options.
   */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener:
      | EventListenerOrEventListenerObject
      | ((event: CustomEvent<never>) => void)
      | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener as EventListener | null, options);
  }

  /**
   * A snapshot of every workspace's state.
   *
   * @returns The snapshot; plain data, safe to serialize.
   */
  status(): HeartbeatStatus {
    const fleet = this.#fleet;
    const elapsed = fleet.elapsed();
    return {
      stopped: fleet.stopped,
      intervalMs: fleet.interval,
      timeoutMs: fleet.timeout,
      registerConcurrency: fleet.registers.max,
      staleWindowMs: fleet.staleWindow,
      uptimeSeconds: Math.floor((elapsed - fleet.startedAt) / 1000),
      inFlight: fleet.cap.used,
      maxInFlight: fleet.cap.max,
      beatsSkipped: fleet.counters.beats.skipped,
      retriesDeferred: fleet.budget.deferred,
      workspaces: fleet.workspaces.map((ws) => {
        const b = ws.beats;
        const state = ws.life.state;
        return {
          workspaceId: ws.id,
          registered: ws.reg.accepted,
          rejected: state === "rejected",
          ...(state === "rejected"
            ? { rejectedFor: ws.life.rejectedFor ?? "token" }
            : {}),
          deleted: state === "deleted",
          paused: state === "paused",
          state,
          platformUrl: ws.platformUrl,
          lastState: ws.ask.lastState,
          beatsSent: b.sent,
          beatsAccepted: b.accepted,
          lastSuccessAt: b.lastSuccessWall === undefined
            ? undefined
            : new Date(b.lastSuccessWall).toISOString(),
          sinceLastSuccessMs: b.lastSuccessAt === undefined
            ? undefined
            : Math.max(0, elapsed - b.lastSuccessAt),
          lastStatus: ws.last.status,
          lastError: ws.last.error === undefined
            ? undefined
            : maskSecrets(ws.last.error),
          consecutiveFailures: b.consecutiveFailures,
          ...(b.lastFailKind ? { lastFailure: b.lastFailKind } : {}),
          authFailures: b.authFailures,
          secretStored: ws.secret.stored,
          beatsSkipped: ws.sched.skipped,
          ...(b.lastStats ? { stats: b.lastStats } : {}),
        };
      }),
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
    const elapsed = fleet.elapsed();
    const workspaces = byPhase();
    let oldest = 0;
    let unarmed = 0;
    for (const ws of fleet.workspaces) {
      const state = ws.life.state;
      // (A removed workspace has left the list.)
      if (state !== "removed") {
        workspaces[state === "backing-off" ? "beating" : state]++;
      }
      if (!isServed(ws)) continue;
      const since = elapsed - (ws.beats.lastSuccessAt ?? fleet.startedAt);
      if (since > oldest) oldest = since;
      // Served with nothing armed: 0 of these while the scheduler works.
      const s = ws.sched;
      if (!fleet.stopped && !s.timer && !s.inFlight && !s.waiting) unarmed++;
    }
    return metricsOf(c, {
      requestsInFlight: fleet.cap.used,
      workspaces,
      oldestAcceptedBeatAgeSeconds: Math.max(0, oldest) / 1000,
      retryBudgetTokens: fleet.budget.tokens,
      unarmed,
      stopped: fleet.stopped,
    });
  }

  /**
   * Stops: aborts requests under way, clears every timer, and resolves when
   * everything (secret writes included) has settled. Safe to call twice.
   *
   * @returns A promise that resolves when all has settled.
   */
  stop(): Promise<void> {
    const fleet = this.#fleet;
    if (fleet.stopped) return this.stopped;
    const reason = new DOMException("heartbeat stopped", "AbortError");
    fleet.stopped = true;
    fleet.abort.abort(reason);
    fleet.deadlines.abortAll(reason);
    fleet.trouble.flush(); // its open windows' summaries, before the timers go
    fleet.queue.clear();
    fleet.cap.clear();
    fleet.registers.clear();
    fleet.options.signal?.removeEventListener("abort", this.#onSignal);
    void (async () => {
      // Every wait on outside code is raced against the stop (stats and
      // token functions) or a moment after it (a store's write under way);
      // the bound is a safety net.
      const timers = [
        setTimeout(() => fleet.grace.abort(reason), WRITE_GRACE_MS),
        setTimeout(() => fleet.lastCall.abort(reason), LAST_CALL_MS),
      ];
      const settled = await Promise.race([
        fleet.settle().then(() => true),
        new Promise<boolean>((resolve) =>
          timers.push(setTimeout(() => resolve(false), STOP_BOUND_MS))
        ),
      ]);
      timers.forEach(clearTimeout);
      fleet.grace.abort(reason);
      fleet.lastCall.abort(reason);
      if (!settled) {
        logger.warn(
          "stop: some work had not settled after {ms} ms; not waiting longer",
          { ms: STOP_BOUND_MS },
        );
      }
      fleet.queue.clear();
      fleet.pool.close();
      this.#resolveStopped();
    })();
    return this.stopped;
  }

  /**
   * Starts serving one more workspace: it registers at once and beats
   * within the interval. Workspaces added together (a workspaces file that
   * gained many entries) are spread over the next interval, the first
   * beating at once, so that they do not all beat in one burst every
   * interval.
   *
   * @param config The workspace.
   * @throws {TypeError} When its id is already served or not a valid id.
   */
  addWorkspace(config: WorkspaceConfig): void {
    checkWorkspace(config);
    const fleet = this.#fleet;
    if (fleet.workspaces.some((w) => w.id === config.id)) {
      throw new TypeError(`workspace id ${config.id} is already served`);
    }
    if (fleet.stopped) return;
    const now = fleet.clock.now();
    const burst = fleet.burst;
    if (now - burst.at > fleet.interval) {
      burst.at = now;
      burst.count = 0;
    }
    const offset = burstOffset(
      burst.count++,
      fleet.interval,
      Math.ceil((fleet.interval / 1000) * MAX_GROUPS_PER_SECOND),
    );
    const ws = this.#runtime(config, now + offset);
    fleet.workspaces.push(ws);
    warnNonUuid([ws.id]);
    armBeat(fleet, ws, ws.anchor, false);
    wantRegister(fleet, ws);
  }

  /**
   * Stops serving a workspace: its schedule ends, nothing more is sent for
   * it, and the answer of a request already under way is ignored (no
   * event, no secret written), but for a token a register under way
   * mints: the token it replaced no longer works, so it is saved (one
   * try; `issued-token` says where) for the workspace added again. It
   * leaves {@link HeartbeatHandle.status}.
   *
   * @param workspaceId The workspace.
   * @returns Whether it was served.
   */
  removeWorkspace(workspaceId: string): boolean {
    const fleet = this.#fleet;
    const i = fleet.workspaces.findIndex((w) => w.id === workspaceId);
    if (i === -1) return false;
    const ws = fleet.workspaces[i];
    moveTo(fleet, ws, "removed");
    fleet.workspaces.splice(i, 1);
    if (ws.orgId !== undefined) fleet.orgWorkspaces--;
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
    // (A listener that throws is the runtime's to report: dispatchEvent
    // does not throw.)
    if (this.#listeners.get(type)) {
      this.dispatchEvent(new CustomEvent(type, { detail }));
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
 * @throws {TypeError} When there is no workspace, an id repeats, a
 * workspace has no platform URL or one that is not http(s), a token that
 * is neither a string nor a function, or a number option (the interval,
 * timeouts, sizes) is not a positive number.
 */
export function startHeartbeat(options: HeartbeatOptions): HeartbeatHandle {
  if (options.workspaces.length === 0) {
    throw new TypeError("startHeartbeat needs at least one workspace");
  }
  const ids = new Set<string>();
  for (const ws of options.workspaces) {
    checkWorkspace(ws);
    if (ids.has(ws.id)) {
      throw new TypeError(`workspace id ${ws.id} is given twice`);
    }
    ids.add(ws.id);
  }
  for (const name of POSITIVE_OPTIONS) {
    const value = options[name];
    if (value !== undefined && !(value > 0 && Number.isFinite(value))) {
      throw new TypeError(`${name} must be a positive number, not ${value}`);
    }
  }
  return new HeartbeatHandle(options);
}

/**
 * One warning for ids that are not lower-case UUIDs: the platform's ids are
 * (any other id is answered 500 by every register and heartbeat; an
 * upper-case UUID finds its row, but the token check compares the id as
 * sent with the row's, so every request is refused with 401); the platform
 * decides (its lookup's 400 `invalid workspace ID` drops the workspace).
 */
function warnNonUuid(ids: readonly string[]): void {
  let count = 0;
  const named: string[] = [];
  for (const id of ids) {
    if (isUuid(id) && id === id.toLowerCase()) continue;
    if (++count <= 3) named.push(id);
  }
  if (count === 0) return;
  logger.warn(
    "{count} workspace id(s) are not lower-case UUIDs ({ids}): the platform's workspace ids are, and it answers any other id with errors (an upper-case UUID with 401s, even with the right token: its token check compares the id as sent); the platform decides",
    {
      count,
      // One value: a sink that quotes values would quote an empty "more".
      ids: named.join(", ") +
        (count > named.length ? `, and ${count - named.length} more` : ""),
    },
  );
}

function checkWorkspace(config: WorkspaceConfig): void {
  if (typeof config?.id !== "string" || !isValidWorkspaceId(config.id)) {
    throw new TypeError(
      "a workspace id must be 1 to 512 characters without control characters",
    );
  }
  const token = config.token;
  if (typeof token !== "string" && typeof token !== "function") {
    throw new TypeError(
      `the token of workspace ${config.id} must be a string or a function that returns one, not ${
        token === null ? "null" : typeof token
      } (an unset variable?)`,
    );
  }
}

/** Numeric options that must be positive and finite when given. */
const POSITIVE_OPTIONS = [
  "intervalMs",
  "timeoutMs",
  "beatGroupSize",
  "registerConcurrency",
  "maxInFlight",
  "staleWindowMs",
] as const;
