/**
 * The scheduler's bookkeeping for one workspace (internal), in books: each
 * book has one owner, the only module that writes it; the others read.
 *
 * | book | owner | what |
 * | --- | --- | --- |
 * | `life` | `_life.ts` | the state (registering, beating, …) |
 * | `sched` | `_life.ts` | the beat timer, the paused check, the cap queue, in flight |
 * | `beats` | `_beat.ts` | counts, last success, failures, stats |
 * | `reg` | `_register_workers.ts` | register accepted, queued, retries |
 * | `ask` | `_lifecycle.ts` | `/state` and `GET /workspaces/:id` questions |
 * | `secret` | `_secret_writer.ts` | the inbound secret, stored and pending |
 * | `token` | `_token_keeper.ts` | the token in use: configured, issued or stored |
 *
 * `last` (the last answer's status and error, for `status()`) is written
 * only through {@link noteAnswer}.
 *
 * @module
 */
import type { AgentCard } from "../platform/agent_card.ts";
import type { HeartbeatStats } from "../platform/heartbeat.ts";
import type { OutcomeKind } from "../platform/outcome.ts";
import type { WorkspaceStateKind } from "../platform/workspace_state.ts";
import type { WorkspaceConfig, WorkspacePhase } from "./types.ts";
import type { QueuedTimer } from "./_timer_queue.ts";

/**
 * A workspace's life: where it is, and so what the schedule keeps armed.
 *
 * - `registering`: served; no register accepted yet (its beats go on);
 * - `beating`: served, registered, its last beat accepted (or none sent yet);
 * - `backing-off`: served, registered, its beats failing (retried sooner
 *   within the retry budget, or at `Retry-After`);
 * - `paused`: the platform says paused: no beats, its state asked at a low rate;
 * - `deleted`: the platform says deleted: nothing more is sent;
 * - `rejected`: its token was refused before anything of it was ever accepted;
 * - `removed`: taken out with `removeWorkspace`.
 *
 * The last three are final (a deleted or rejected one can still be removed).
 */
export type LifeState = WorkspacePhase;

/** What the scheduler knows and decides about one workspace. */
export interface Runtime {
  readonly config: WorkspaceConfig;
  readonly id: string;
  /** The base URL of its platform, trimmed: its own `platformUrl` or the fleet's. */
  readonly platformUrl: string;
  /** `X-Molecule-Org-Id` for its `/workspaces/…` requests; none with a URL of its own. */
  readonly orgId: string | undefined;
  /** Due time of its beat 0: its beats are due at `anchor + k × interval`. */
  readonly anchor: number;
  /** Its accepted beats between two scheduled state questions start here (a fleet's spread). */
  readonly pollPhase: number;
  /** Its agent card, built once: sent with its registers and every beat. */
  readonly card: AgentCard;
  life: {
    state: LifeState;
    /** Why it was rejected: its token, or its id (malformed). */
    rejectedFor: "token" | "id" | undefined;
  };
  sched: {
    /** The next beat, armed. */
    timer: QueuedTimer | undefined;
    /** The next state check while paused, armed. */
    checkTimer: QueuedTimer | undefined;
    /** A beat is under way (it holds a slot under the cap). */
    inFlight: boolean;
    /** Its beat waits in the cap's queue for a slot. */
    waiting: boolean;
    /** The armed beat is an early retry (it earns no retry budget). */
    retrying: boolean;
    /** When the beat under way started. */
    sentAt: number;
    /** The machine woke while its beat was under way: the next one goes at once. */
    woke: boolean;
    /** Beats skipped: the cap was full when they were due. */
    skipped: number;
  };
  beats: {
    sent: number;
    accepted: number;
    /** Elapsed time (monotonic plus slept) of the last accepted beat. */
    lastSuccessAt: number | undefined;
    lastSuccessWall: number | undefined;
    consecutiveFailures: number;
    authFailures: number;
    /** Elapsed time of the first refusal of the current run of refusals. */
    firstRefusedAt: number | undefined;
    /** The refusal count of the last escalation, in the current run of refusals. */
    escalatedAt: number | undefined;
    /** The kind of the last failed beat (a CORS or not-platform episode is logged once as it starts). */
    lastFailKind: OutcomeKind | undefined;
    /** Accepted beats since the last scheduled state question. */
    sinceState: number;
    /** What went out with its last beat (a `stats` function given). */
    lastStats: HeartbeatStats | undefined;
    /** What the `stats` function last returned: sent again when it is late. */
    rawStats: HeartbeatStats | undefined;
    statsWarned: boolean;
    statsLateWarned: boolean;
  };
  reg: {
    /** A register has been accepted in this run. */
    accepted: boolean;
    failures: number;
    /**
     * Refused as it is (a 4xx other than 401/429: a configuration problem):
     * not tried again; its beats go on (they carry the card).
     */
    gaveUp: boolean;
    /** Elapsed time of a first register refused for its token, awaiting its confirmation. */
    refusedAt: number | undefined;
    queued: boolean;
    running: boolean;
    /** The next retry, armed. */
    timer: QueuedTimer | undefined;
    /** The first attempt's outcome goes here (the handle's `ready`). */
    first: ((outcome: string) => void) | undefined;
  };
  ask: {
    /** A question is queued or under way. */
    busy: boolean;
    /** Its answer, once acted on, while it is queued or under way. */
    current: Promise<unknown> | undefined;
    /** The one queued or under way asks the lookup alone (not `/state`). */
    lookupOnly: boolean;
    lastState: WorkspaceStateKind | undefined;
    /** `/state` accepted the token in this run: the token works. */
    tokenAccepted: boolean;
    /** A refused token on a workspace the platform says exists: certainly revoked. */
    authConfirmed: boolean;
  };
  secret: {
    value: string | undefined;
    loaded: boolean;
    pending: string | undefined;
    writing: boolean;
    stored: boolean;
    badWarned: boolean;
    /** The reason of the last storing failure warned about. */
    failure: string | undefined;
  };
  token: {
    /** A token the platform issued (or the store held): used instead of the configured one. */
    current: string | undefined;
    /** The candidates' re-read after a refusal, under way (one for every request refused meanwhile). */
    reread: Promise<boolean> | undefined;
    /** Tokens refused since they last worked (a few, oldest first). */
    refused: string[];
    /** Tokens the platform replaced by minting a new one: never tried again. */
    replaced: string[];
    /** An issued token not yet saved (its save is retried until it succeeds). */
    unsaved: string | undefined;
    /** A late token function was warned about. */
    lateWarned: boolean;
  };
  /** The last answer's HTTP status and failure reason, for `status()`. */
  last: { status: number | undefined; error: string | undefined };
}

/** A workspace's bookkeeping, fresh. */
export function newRuntime(
  config: WorkspaceConfig,
  where: {
    anchor: number;
    platformUrl: string;
    orgId: string | undefined;
    pollPhase: number;
    card: AgentCard;
  },
): Runtime {
  return {
    config,
    id: config.id,
    platformUrl: where.platformUrl,
    orgId: where.orgId,
    anchor: where.anchor,
    pollPhase: where.pollPhase,
    card: where.card,
    life: { state: "registering", rejectedFor: undefined },
    sched: {
      timer: undefined,
      checkTimer: undefined,
      inFlight: false,
      waiting: false,
      retrying: false,
      sentAt: 0,
      woke: false,
      skipped: 0,
    },
    beats: {
      sent: 0,
      accepted: 0,
      lastSuccessAt: undefined,
      lastSuccessWall: undefined,
      consecutiveFailures: 0,
      authFailures: 0,
      firstRefusedAt: undefined,
      escalatedAt: undefined,
      lastFailKind: undefined,
      sinceState: where.pollPhase,
      lastStats: undefined,
      rawStats: undefined,
      statsWarned: false,
      statsLateWarned: false,
    },
    reg: {
      accepted: false,
      failures: 0,
      gaveUp: false,
      refusedAt: undefined,
      queued: false,
      running: false,
      timer: undefined,
      first: undefined,
    },
    ask: {
      busy: false,
      current: undefined,
      lookupOnly: false,
      lastState: undefined,
      tokenAccepted: false,
      authConfirmed: false,
    },
    secret: {
      value: undefined,
      loaded: false,
      pending: undefined,
      writing: false,
      stored: false,
      badWarned: false,
      failure: undefined,
    },
    token: {
      current: undefined,
      reread: undefined,
      refused: [],
      replaced: [],
      unsaved: undefined,
      lateWarned: false,
    },
    last: { status: undefined, error: undefined },
  };
}

/**
 * Records the last answer of any request of `ws`: its status (when there
 * was one) and why it failed (`undefined` clears it: a success; `null`
 * leaves it as it is).
 */
export function noteAnswer(
  ws: Runtime,
  status: number | undefined,
  error: string | undefined | null,
): void {
  if (status !== undefined) ws.last.status = status;
  if (error !== null) ws.last.error = error;
}
