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
 * | `ask` | `_life.ts` | `/state` and `GET /workspaces/:id` questions |
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

/** What the scheduler knows and decides about one workspace. */
export type Runtime = ReturnType<typeof newRuntime>;

/** A workspace's bookkeeping, fresh. */
export function newRuntime(
  config: WorkspaceConfig,
  where: {
    /** Due time of its beat 0: its beats are due at `anchor + k × interval`. */
    anchor: number;
    /** The base URL of its platform, trimmed: its own `platformUrl` or the fleet's. */
    platformUrl: string;
    /** `X-Molecule-Org-Id` for its `/workspaces/…` requests; none with a URL of its own. */
    orgId: string | undefined;
    /** Its accepted beats between two scheduled state questions start here (a fleet's spread). */
    pollPhase: number;
    /** Its agent card, built once: sent with its registers and every beat. */
    card: AgentCard;
  },
) {
  return {
    config,
    id: config.id,
    ...where,
    life: {
      /**
       * Where it is (see `_life.ts`), and so what the schedule keeps
       * armed; `deleted`, `rejected` and `removed` are final.
       */
      state: "registering" as WorkspacePhase,
      /** Why it was rejected: its token, or its id (malformed). */
      rejectedFor: undefined as "token" | "id" | undefined,
    },
    sched: {
      /** The next beat, armed. */
      timer: undefined as QueuedTimer | undefined,
      /** The next state check while paused, armed. */
      checkTimer: undefined as QueuedTimer | undefined,
      /** A beat is under way (it holds a slot under the cap). */
      inFlight: false,
      /** Its beat waits in the cap's queue for a slot. */
      waiting: false,
      /** The armed beat is an early retry (it earns no retry budget). */
      retrying: false,
      /** When the beat under way started. */
      sentAt: 0,
      /** The machine woke while its beat was under way: the next one goes at once. */
      woke: false,
      /** Beats skipped: the cap was full when they were due. */
      skipped: 0,
    },
    beats: {
      sent: 0,
      accepted: 0,
      /** Elapsed time (monotonic plus slept) of the last accepted beat. */
      lastSuccessAt: undefined as number | undefined,
      lastSuccessWall: undefined as number | undefined,
      consecutiveFailures: 0,
      /** Elapsed time of the first failure of the current run of failures. */
      failingSince: 0,
      authFailures: 0,
      /** Elapsed time of the first refusal of the current run of refusals. */
      firstRefusedAt: undefined as number | undefined,
      /** The refusal count of the last escalation, in the current run of refusals. */
      escalatedAt: undefined as number | undefined,
      /** The kind of the last failed beat (a CORS or not-platform episode is logged once as it starts). */
      lastFailKind: undefined as OutcomeKind | undefined,
      /** Accepted beats since the last scheduled state question. */
      sinceState: where.pollPhase,
      /** What went out with its last beat (a `stats` function given). */
      lastStats: undefined as HeartbeatStats | undefined,
      /** What the `stats` function last returned: sent again when it is late. */
      rawStats: undefined as HeartbeatStats | undefined,
      statsWarned: false,
      statsLateWarned: false,
    },
    reg: {
      /** A register has been accepted in this run. */
      accepted: false,
      failures: 0,
      /**
       * Refused as it is (a 4xx other than 401/429: a configuration problem):
       * not tried again; its beats go on (they carry the card).
       */
      gaveUp: false,
      /** Elapsed time of a first register refused for its token, awaiting its confirmation. */
      refusedAt: undefined as number | undefined,
      /** The reason of the last lookup failure warned about (said once each). */
      lookupSaid: undefined as string | undefined,
      /** A register is queued or under way. */
      wanted: false,
      /** The next retry, armed. */
      timer: undefined as QueuedTimer | undefined,
      /** The first attempt's outcome goes here (the handle's `ready`). */
      first: undefined as ((outcome: string) => void) | undefined,
    },
    ask: {
      /** The question queued or under way: its answer, once acted on. */
      current: undefined as Promise<unknown> | undefined,
      /** The one queued or under way asks the lookup alone (not `/state`). */
      lookupOnly: false,
      lastState: undefined as WorkspaceStateKind | undefined,
      /** `/state` accepted the token in this run: the token works. */
      tokenAccepted: false,
      /** A refused token on a workspace the platform says exists: certainly revoked. */
      authConfirmed: false,
      /**
       * The token whose `/state` refusal, its beats accepted, sent a
       * register, and whether a refusal since was said; cleared when
       * `/state` accepts a token.
       */
      refusalRegister: undefined as
        | { token: string | undefined; said: boolean }
        | undefined,
    },
    secret: {
      value: undefined as string | undefined,
      loaded: false,
      /** A value to write: set while a write is queued or under way. */
      pending: undefined as string | undefined,
      stored: false,
      badWarned: false,
      /** The reason of the last storing failure warned about. */
      failure: undefined as string | undefined,
    },
    token: {
      /** A token the platform issued (or the store held): used instead of the configured one. */
      current: undefined as string | undefined,
      /** The candidates' re-read after a refusal, under way (one for every request refused meanwhile). */
      reread: undefined as Promise<boolean> | undefined,
      /** Tokens refused since they last worked (a few, oldest first). */
      refused: [] as string[],
      /** Tokens the platform replaced by minting a new one: never tried again. */
      replaced: [] as string[],
      /** A late token function was warned about. */
      lateWarned: false,
    },
    /** The last answer's HTTP status and failure reason, for `status()`. */
    last: {
      status: undefined as number | undefined,
      error: undefined as string | undefined,
    },
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
