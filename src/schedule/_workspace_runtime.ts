/**
 * The scheduler's bookkeeping for one workspace (internal).
 *
 * @module
 */
import type { HeartbeatStats } from "../platform/heartbeat.ts";
import type { WorkspaceConfig } from "./types.ts";
import type { QueuedTimer } from "./_timer_queue.ts";
import type { WorkspaceStateKind } from "../platform/workspace_state.ts";

/** What the scheduler knows and decides about one workspace. */
export interface Runtime {
  config: WorkspaceConfig;
  id: string;
  anchor: number;
  registered: boolean;
  rejected: boolean;
  registerFailures: number;
  timer: QueuedTimer | undefined;
  inFlight: boolean;
  beatsSent: number;
  beatsAccepted: number;
  lastSuccessClock: number | undefined;
  lastSuccessWall: number | undefined;
  lastStatus: number | undefined;
  lastError: string | undefined;
  consecutiveFailures: number;
  authFailures: number;
  // Inbound secret bookkeeping: what the store holds, what waits to be written.
  secret: string | undefined;
  secretLoaded: boolean;
  secretPending: string | undefined;
  secretWriting: boolean;
  secretStored: boolean;
  badSecretWarned: boolean;
  /** The reason of the last storing failure warned about. */
  secretFailure: string | undefined;
  statsWarned: boolean;
  lastStats: HeartbeatStats | undefined;
  // Lifecycle, from GET /workspaces/:id/state.
  deleted: boolean;
  paused: boolean;
  lastState: WorkspaceStateKind | undefined;
  stateAskedAt: number | undefined;
  stateAsking: boolean;
  beatsSinceState: number;
  /** /state refused the token too: the workspace exists, the token is revoked. */
  authConfirmed: boolean;
  /** Taken out with removeWorkspace: nothing more is sent, answers are ignored. */
  removed: boolean;
  /** The scheduled beat is an early retry (it earns no retry budget). */
  retrying: boolean;
  beatsSkipped: number;
}

/** A workspace's bookkeeping, fresh. */
export function newRuntime(config: WorkspaceConfig, anchor: number): Runtime {
  return {
    config,
    id: config.id,
    anchor,
    registered: false,
    rejected: false,
    registerFailures: 0,
    timer: undefined,
    inFlight: false,
    beatsSent: 0,
    beatsAccepted: 0,
    lastSuccessClock: undefined,
    lastSuccessWall: undefined,
    lastStatus: undefined,
    lastError: undefined,
    consecutiveFailures: 0,
    authFailures: 0,
    secret: undefined,
    secretLoaded: false,
    secretPending: undefined,
    secretWriting: false,
    secretStored: false,
    badSecretWarned: false,
    secretFailure: undefined,
    statsWarned: false,
    lastStats: undefined,
    deleted: false,
    paused: false,
    lastState: undefined,
    stateAskedAt: undefined,
    stateAsking: false,
    beatsSinceState: 0,
    authConfirmed: false,
    removed: false,
    retrying: false,
    beatsSkipped: 0,
  };
}
