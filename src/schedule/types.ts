/**
 * The shapes {@link startHeartbeat} takes and gives: options, a workspace's
 * configuration, status snapshots, the result of the first registers, and
 * the events.
 *
 * @module
 */
import type { AgentCard } from "../platform/agent_card.ts";
import type { Clock } from "../shared/clock.ts";
import type { HeartbeatStats } from "../platform/heartbeat.ts";
import type { FetchLike } from "../platform/http.ts";
import type { OutcomeKind } from "../platform/outcome.ts";
import type { SecretStore } from "../storage/secret_store.ts";
import type { TokenSource } from "../shared/token.ts";
import type { WorkspaceStateKind } from "../platform/workspace_state.ts";

/** One workspace to keep alive. */
export interface WorkspaceConfig {
  /** The workspace id. */
  id: string;
  /** Its token, or a function asked for the current token before every request. */
  token: TokenSource;
  /** The card to register with. @default {buildAgentCard(id, env)} */
  agentCard?: AgentCard;
  /**
   * This workspace's own platform base URL (a trailing `/` is removed): its
   * register, heartbeat, `Origin`, state and lookup calls go there, and the
   * org header is never sent for it. @default {HeartbeatOptions.platformUrl}
   */
  platformUrl?: string;
  /**
   * Where the token comes from, for the revoked-token error (such as
   * `MOLECULE_WORKSPACE_TOKEN` or `the token file /run/token`).
   * @default {"MOLECULE_WORKSPACE_TOKEN or the token file"}
   */
  tokenSource?: string;
  /** Whether that source is re-read when it changes (no restart needed). @default {false} */
  tokenReread?: boolean;
  /**
   * Where the id comes from, for the error that says the platform does not
   * have it or refuses it as malformed (such as `WORKSPACE_ID`, or `entry 3
   * of MOLECULE_WORKSPACES`). @default {"the workspace id"}
   */
  idSource?: string;
}

/** Options of {@link startHeartbeat}. */
export interface HeartbeatOptions {
  /** The platform base URL (`PLATFORM_URL`); a trailing `/` is removed. */
  platformUrl: string;
  /** The workspaces, at least one; ids must be unique. */
  workspaces: readonly WorkspaceConfig[];
  /** Time between two beats of one workspace, in ms. @default {20000} */
  intervalMs?: number;
  /** Time limit of one request, in ms. @default {min(10000, intervalMs)} */
  timeoutMs?: number;
  /**
   * Live figures for a workspace's next beat; the reference's zeros when
   * absent. Called before every beat; an error or a bad field falls back to
   * the zero.
   */
  stats?: (
    workspaceId: string,
  ) => HeartbeatStats | undefined | Promise<HeartbeatStats | undefined>;
  /**
   * Where the secrets the platform hands over are kept: each workspace's
   * inbound secret (saved when it changes), and the token the platform
   * issues. A register answer with an `auth_token` (the platform mints one
   * whenever the workspace has no live token) switches that workspace to
   * it at once, for every later request; it is also saved here, so that a
   * restart with the old configured token recovers: when a configured
   * token is refused, the stored one is tried before anything is
   * escalated. @default {none: inbound secrets are not stored, issued tokens kept in memory only}
   */
  secretStore?: SecretStore;
  /** Sends `mcp_server_present: true` with each register: an MCP server runs beside the agent. @default {false} */
  mcpServerPresent?: boolean;
  /**
   * The platform's stale window, in ms: a workspace silent this long is
   * OFFLINE on the canvas until its next accepted heartbeat (no register is
   * needed, and none is sent: a register has side effects a heartbeat has
   * not). Readiness follows it, and a 429 is waited out at most half of it.
   * @default {STALE_AFTER_MS (180000, the platform's default)}
   */
  staleWindowMs?: number;
  /**
   * Beats sent together in one timer wake-up. The workspaces are spread over
   * the interval in groups of at most this many beats, at evenly spaced
   * offsets: a wake-up costs about as much CPU as the requests it
   * sends, so grouping cuts the CPU per beat by more than half, at the price
   * of up to this many requests (and pooled connections) at once. 1 gives
   * every workspace an offset of its own.
   * @default {8, or more for a fleet beating over 256 times a second, so that there are at most 32 groups a second (16 for 10,000 workspaces at 20 s)}
   */
  beatGroupSize?: number;
  /** Registrations under way at once. @default {8} */
  registerConcurrency?: number;
  /**
   * Requests in flight at most, for the whole fleet (each holds a socket, so
   * this bounds descriptors and memory when the platform hangs). A beat that
   * finds the cap full is counted as skipped and waits, first come first
   * served, for the next free slot (a workspace is in that line at most
   * once; its grid slots that pass meanwhile count as skipped too); state
   * questions wait in the same line. Registers (at most
   * `registerConcurrency`) count against it but never wait for it: with
   * the cap full of beats they come on top. The command derives it from
   * the descriptor limit. @default {256}
   */
  maxInFlight?: number;
  /**
   * Summarise failure lines shared by many workspaces: per kind of trouble
   * (5xx, 429, other 4xx, timeout, network, redirect, auth, register), the
   * first line of each second is logged as it is, the rest of that second as
   * one line with how many workspaces and a few ids. Events are not
   * affected. `false` logs every workspace's line. @default {true}
   */
  summarizeLogs?: boolean;
  /** Stops everything when aborted, as {@link HeartbeatHandle.stop} does. */
  signal?: AbortSignal;
  /** The fetch to call. @default {globalThis.fetch} */
  fetch?: FetchLike;
  /** Time and timers (a monotonic clock, which stops while the machine sleeps). @default {systemClock} */
  clock?: Clock;
  /**
   * Wall-clock time, epoch ms. A watchdog compares it with `clock` every 2
   * seconds: when the wall clock ran ahead by more than 5 seconds, the
   * machine slept; then every workspace beats at once (a fleet spread over
   * up to 2 seconds), on fresh connections (the first accepted beat brings
   * a workspace the platform marked offline back).
   * @default {Date.now; with an injected `clock`, that clock's time (no sleep is seen)}
   */
  wallClock?: () => number;
  /** Uniform random numbers in [0, 1), for backoff jitter. @default {Math.random} */
  random?: () => number;
  /**
   * Reads one agent-card variable (`MOLECULE_AGENT_NAME`, …); `undefined`
   * when unset. @default {the process environment}
   */
  env?: (name: string) => string | undefined;
  /**
   * The org id of a multi-tenant platform, sent as `X-Molecule-Org-Id` on
   * its `/workspaces/…` requests (state, lookup), where its tenant guard
   * wants it, and never on `/registry/*`: its rate limiter keys on the
   * header first, and there it would put every workspace of the org into
   * one bucket. Not sent for a workspace with a `platformUrl` of its own.
   * @default {not sent}
   */
  orgId?: string;
  /**
   * Ask the platform for each workspace's state (`GET /workspaces/:id/state`)
   * every this many accepted beats: a deleted workspace's heartbeats are
   * still accepted, and only `/state` (refused, then `GET /workspaces/:id`
   * answering 410 or 404) tells. A fleet's questions are spread over the N
   * beats, and each spends from the retry budget (deferred to a later beat
   * when it is empty). Also asked after a refused register, at the first
   * refused beat of a run and at each escalation (3rd, 23rd, 43rd…). 0 asks
   * only then. @default {15 (every 5 minutes at 20 s)}
   */
  statePollEvery?: number;
  /**
   * The `Origin` header sent with every request: the platform's CORS layer
   * refuses (403, empty body) an `Origin` that is neither `http(s)://` + the
   * `Host` it receives nor in its `CORS_ORIGINS`, and a reverse proxy that
   * rewrites `Host` makes the platform URL's own origin such an `Origin`.
   * `""` sends none (passes the CORS layer; a SaaS edge may want one).
   * @default {each workspace's platform URL's origin}
   */
  origin?: string;
  /**
   * The share of the org's rate window (its `X-RateLimit-Limit`, else 600 a
   * minute) that the requests carrying `X-Molecule-Org-Id` (`/state`,
   * `GET /workspaces/:id`) may use, all workspaces of the fleet together:
   * that window is shared with every person of the org using the canvas.
   * State polls stretch and start-up lookups are spread to stay under it.
   * Between 0 (exclusive) and 1. @default {0.1}
   */
  orgRequestShare?: number;
  /** Ask every workspace's state at start, beside its register (as `--once` does). @default {false} */
  checkStateAtStart?: boolean;
  /** While a workspace is paused, ask its state this often, in ms. @default {60000} */
  pausedCheckMs?: number;
}

/** A workspace's state, as {@link HeartbeatHandle.status} reports it. */
export interface WorkspaceStatus {
  /** The workspace id. */
  workspaceId: string;
  /** Whether a register has been accepted. */
  registered: boolean;
  /** Whether the platform refused its token at register; it is no longer served. */
  rejected: boolean;
  /**
   * Why it was rejected: `token` (its token refused at register, confirmed),
   * `id` (the platform says the id is malformed: ids are UUIDs); absent when
   * not rejected.
   */
  rejectedFor?: "token" | "id";
  /** Whether the platform says it was deleted; it is no longer served. */
  deleted: boolean;
  /** Whether the platform says it is paused; beats wait until it is resumed. */
  paused: boolean;
  /**
   * Its phase: `registering`, `beating`, `backing-off`, `paused`,
   * `deleted`, `rejected` (always set by `status()`). Not what the
   * platform's `/state` says: that is {@link WorkspaceStatus.lastState}.
   */
  state?: WorkspacePhase;
  /** Its platform base URL (always set by `status()`). */
  platformUrl?: string;
  /**
   * What the platform's last `/state` answer meant (see
   * `fetchWorkspaceState`), if it was asked.
   */
  lastState: WorkspaceStateKind | undefined;
  /** Beats whose request completed with an answer or an error. */
  beatsSent: number;
  /** Beats the platform accepted (2xx). */
  beatsAccepted: number;
  /** Wall-clock time of the last accepted beat, ISO 8601. */
  lastSuccessAt: string | undefined;
  /** Milliseconds since the last accepted beat. */
  sinceLastSuccessMs: number | undefined;
  /** HTTP status of the last answer (register or beat). */
  lastStatus: number | undefined;
  /** Why the last failed request failed. */
  lastError: string | undefined;
  /** Failed beats in a row, of any kind. */
  consecutiveFailures: number;
  /**
   * What the last failed beat's answer meant (`transient`, `auth`, `cors`,
   * `not-platform`, …), while its beats fail; absent once one is accepted.
   */
  lastFailure?: OutcomeKind;
  /** 401/403 beats in a row. */
  authFailures: number;
  /** Whether an inbound secret has been stored during this run. */
  secretStored: boolean;
  /** Beats skipped because the fleet's requests in flight were at the cap. */
  beatsSkipped: number;
  /**
   * The live figures sent with its last beat (`active_tasks`,
   * `current_task`, `error_rate`, `sample_error`, …); only when a `stats`
   * function is given.
   */
  stats?: HeartbeatStats;
}

/**
 * Where a workspace is in its life, as the scheduler moves it (see
 * `docs/library.md`): `registering` (no register accepted yet; its beats
 * go on), `beating`, `backing-off` (its beats failing), `paused`, and the
 * final `deleted`, `rejected`, `removed`.
 */
export type WorkspacePhase =
  | "registering"
  | "beating"
  | "backing-off"
  | "paused"
  | "deleted"
  | "rejected"
  | "removed";

/** A snapshot of every workspace. */
export interface HeartbeatStatus {
  /** Whether the heartbeat has been stopped. */
  stopped: boolean;
  /** The interval, in ms. */
  intervalMs: number;
  /** A request's time limit, in ms (always set by `status()`). */
  timeoutMs?: number;
  /** Registers under way at most (always set by `status()`). */
  registerConcurrency?: number;
  /** The stale window, in ms (always set by `status()`). */
  staleWindowMs?: number;
  /** Seconds since start, whole. */
  uptimeSeconds: number;
  /** Requests in flight now. */
  inFlight: number;
  /** The cap on requests in flight. */
  maxInFlight: number;
  /** Beats skipped at the cap, all workspaces. */
  beatsSkipped: number;
  /** Failed requests that waited for their next slot: the retry budget was spent. */
  retriesDeferred: number;
  /** One entry per workspace, in the order given. */
  workspaces: WorkspaceStatus[];
}

/** The outcome of every workspace's first register attempt. */
export interface ReadyResult {
  /** Ids the platform accepted. */
  registered: string[];
  /**
   * Ids the platform refused, confirmed: their token (401), or their id as
   * malformed (400, see {@link WorkspaceStatus.rejectedFor}); not served.
   */
  rejected: { workspaceId: string; status: number }[];
  /** Ids whose register failed otherwise; they heartbeat and retry register. */
  failed: { workspaceId: string; reason: string }[];
  /** Ids the platform says were deleted (asked after a refused register); not served. */
  deleted: string[];
}

/** The `detail` of each event a {@link HeartbeatHandle} dispatches, by type. */
export interface HeartbeatEventMap {
  /**
   * A register was accepted. `authToken` is the token the platform issued
   * with it, if it did (now in use for this workspace).
   */
  registered: { workspaceId: string; status: number; authToken?: string };
  /**
   * The platform issued a new token for a workspace, now in use for every
   * later request; `storedAt` says where the secret store keeps it (a place,
   * never the token), absent when it is kept in memory only or storing
   * failed.
   */
  "issued-token": { workspaceId: string; storedAt?: string };
  /**
   * A workspace was dropped: its token was refused at register (`token`,
   * confirmed), or the platform refuses its id as malformed (`id`).
   */
  rejected: { workspaceId: string; status: number; reason?: "token" | "id" };
  /** A register failed otherwise; it is retried in the background. */
  "register-failed": {
    workspaceId: string;
    kind: OutcomeKind;
    status?: number;
    reason: string;
    retryInMs: number;
  };
  /** A beat was accepted. */
  beat: { workspaceId: string; status: number; latencyMs: number };
  /** A beat failed. */
  failure: {
    workspaceId: string;
    kind: OutcomeKind;
    status?: number;
    reason: string;
    consecutiveFailures: number;
    nextInMs: number;
  };
  /** The auth-failure count reached 3, or 3 + k × 20. */
  "auth-escalation": { workspaceId: string; status: number; count: number };
  /** The platform answered a state request (after it was acted on). */
  state: {
    workspaceId: string;
    kind: WorkspaceStateKind;
    platformStatus?: string;
  };
  /**
   * The platform says the workspace was deleted (or, never accepted yet, its
   * id is not the platform's: `notFound`); it is no longer served.
   */
  deleted: { workspaceId: string; platformStatus?: string; notFound?: boolean };
  /** The platform says the workspace is paused; its beats wait. */
  paused: { workspaceId: string };
  /** A paused workspace is live again; its beats resume. */
  resumed: { workspaceId: string };
  /** A new inbound secret was stored. */
  "secret-stored": { workspaceId: string };
  /** Storing an inbound secret failed; the next answer carrying it retries. */
  "secret-failed": { workspaceId: string; reason: string };
}

/** Why a beat failed, as {@link HeartbeatMetrics.beatFailures} counts it. */
export type BeatFailureReason =
  | "timeout"
  | "network"
  | "http_4xx"
  | "http_5xx"
  | "rate_limited"
  | "auth"
  | "cors"
  | "not_platform"
  | "redirect";

/**
 * Fleet-wide figures for monitoring (a Prometheus `/metrics`, say): counts
 * since start, which only grow, and gauges of now. No workspace id is in
 * them. {@link HeartbeatHandle.metrics} computes them in one pass, without
 * building {@link HeartbeatHandle.status}'s per-workspace objects.
 */
export interface HeartbeatMetrics {
  /**
   * Beats by outcome: `accepted` (2xx with the platform's JSON), `refused`
   * (401, a 403 with the platform's error, or another 4xx but 429),
   * `failed` (5xx, 429, network, timeout, redirect, the CORS layer's empty
   * 403, a 2xx that is not the platform's), `skipped` (not sent: the
   * in-flight cap was full).
   */
  beats: { accepted: number; refused: number; failed: number; skipped: number };
  /** Beats not accepted, by reason. */
  beatFailures: Record<BeatFailureReason, number>;
  /**
   * Time from sending a beat to its outcome, in seconds: `counts[i]` beats
   * took at most `bounds[i]` (and more than the bound before); the last
   * count is for those over the last bound.
   */
  beatDuration: {
    bounds: readonly number[];
    counts: readonly number[];
    sum: number;
    count: number;
  };
  /** Registers by outcome: `accepted`, `refused` (401/403, 400, 409), `failed` (transient). */
  registers: { accepted: number; refused: number; failed: number };
  /** Times the auth-failure count reached 3, or 3 + k × 20. */
  authEscalations: number;
  /** Requests in flight now, every kind. */
  requestsInFlight: number;
  /**
   * Workspaces by phase now (see {@link WorkspacePhase}):
   * `registering` (no register accepted yet), `beating` (registered and
   * served: beating or backing off), `paused`, `deleted`, `rejected` (token
   * refused at register before anything was accepted).
   */
  workspaces: {
    beating: number;
    registering: number;
    paused: number;
    deleted: number;
    rejected: number;
  };
  /**
   * Seconds since the last accepted beat of the served workspace that has
   * waited longest (one never accepted counts from start); 0 with none
   * served. The figure to alert on.
   */
  oldestAcceptedBeatAgeSeconds: number;
  /** Early retries the retry budget holds now. */
  retryBudgetTokens: number;
  /**
   * Served workspaces (not paused, deleted, rejected) with neither a beat
   * armed nor one in flight: 0 while the scheduler works. A liveness probe
   * fails on it.
   */
  unarmed: number;
  /** Whether the heartbeat has been stopped. */
  stopped: boolean;
}
