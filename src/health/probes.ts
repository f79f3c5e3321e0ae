/**
 * The two probes a supervisor asks: liveness (is the process broken? restart
 * it) and readiness (is every workspace it serves live on the platform?).
 * Plain functions over the heartbeat's figures.
 *
 * @module
 */
import type { HeartbeatMetrics, WorkspaceStatus } from "../schedule/types.ts";

/** A probe's verdict. */
export interface ProbeResult {
  /** Whether the probe passes. */
  ok: boolean;
  /** Why it fails; empty when it passes. */
  reasons: string[];
}

/** Options of {@link liveness}. */
export interface LivenessOptions {
  /** The event loop's lag now (see `startLoopLagMonitor`), in ms. */
  loopLagMs: number;
  /** Lag above which the process counts as broken, in ms. @default {5000} */
  maxLoopLagMs?: number;
}

/**
 * Liveness: the process works while it is not stopping, every served
 * workspace has a beat armed or in flight (`unarmed` is 0), and the event
 * loop runs its timers within `maxLoopLagMs`. The platform's answers and any
 * one workspace's trouble (rejected, deleted, refused, an outage) never
 * fail it: a restart cannot cure those.
 *
 * @example
 * ```ts
 * import { liveness } from "./probes.ts";
 * const m = { stopped: false, unarmed: 0 };
 * console.log(liveness(m, { loopLagMs: 3 })); // { ok: true, reasons: [] }
 * ```
 *
 * @param metrics The heartbeat's metrics (`stopped` and `unarmed` are read).
 * @param options The loop's lag and its bound.
 * @returns The verdict.
 */
export function liveness(
  metrics: Pick<HeartbeatMetrics, "stopped" | "unarmed">,
  options: LivenessOptions,
): ProbeResult {
  const maxLag = options.maxLoopLagMs ?? 5_000;
  const reasons: string[] = [];
  if (metrics.stopped) reasons.push("stopping");
  else if (metrics.unarmed > 0) {
    reasons.push(
      `${metrics.unarmed} served workspace(s) have neither a beat armed nor one in flight: the scheduler has stopped`,
    );
  }
  if (options.loopLagMs > maxLag) {
    reasons.push(
      `the event loop ran a timer ${
        Math.round(options.loopLagMs)
      } ms late (bound ${maxLag} ms)`,
    );
  }
  return { ok: reasons.length === 0, reasons };
}

/**
 * One served workspace that is not ready, in a verbose readiness answer:
 * its id, why (no accepted beat yet, or the last one too long ago), and
 * why its last request failed, if it did.
 */
export type NotReady =
  & Pick<WorkspaceStatus, "workspaceId">
  & Partial<Pick<WorkspaceStatus, "lastError">>
  & { reason: string };

/**
 * What {@link readiness} reads of a workspace: its id, whether it is
 * served (not paused, deleted or rejected), the time since its last
 * accepted beat, and why its last request failed.
 */
export type ReadinessWorkspace =
  & Pick<WorkspaceStatus, "workspaceId" | "paused" | "deleted" | "rejected">
  & Partial<
    Pick<WorkspaceStatus, "sinceLastSuccessMs" | "lastError" | "lastFailure">
  >;

/** Options of {@link readiness}. */
export interface ReadinessOptions {
  /** How long a workspace stays live after an accepted beat, in ms. */
  staleWindowMs: number;
  /** Whether reasons may name workspace ids (on loopback, or with the token). */
  nameIds: boolean;
  /** Whether to list every workspace that is not ready. @default {false} */
  verbose?: boolean;
}

/** Readiness: the verdict, how many are served, and with `verbose` the list. */
export interface ReadinessResult extends ProbeResult {
  /** Workspaces served (not paused, deleted or rejected). */
  served: number;
  /** Every served workspace that is not ready (with `verbose` and `nameIds`). */
  notReady?: NotReady[];
}

/**
 * Readiness: every served workspace (not paused, deleted or rejected) had a
 * beat accepted within the stale window, and the process is not stopping.
 * Reasons count the workspaces of each kind, naming a few when ids may be
 * shown.
 *
 * @example
 * ```ts
 * import { readiness } from "./probes.ts";
 * const ws = (workspaceId: string, sinceLastSuccessMs?: number) => ({
 *   workspaceId, sinceLastSuccessMs, paused: false, deleted: false, rejected: false,
 * });
 * const status = { stopped: false, workspaces: [ws("ws-1", 5_000), ws("ws-2")] };
 * const r = readiness(status, { staleWindowMs: 180_000, nameIds: true });
 * console.log(r.ok, r.reasons[0]);
 * // false "1 of 2 served workspace(s) have no accepted heartbeat yet: ws-2"
 * ```
 *
 * @param status A status snapshot (only the fields read are needed).
 * @param options The stale window and what may be shown.
 * @returns The verdict.
 */
export function readiness(
  status: {
    stopped: boolean;
    workspaces: readonly ReadinessWorkspace[];
  },
  options: ReadinessOptions,
): ReadinessResult {
  const list = options.verbose && options.nameIds;
  const notReady: NotReady[] = [];
  // The ids of those never accepted, and of those accepted too long ago.
  const never: string[] = [];
  const stale: string[] = [];
  // Causes a probe's reader can act on (the platform's side, or PLATFORM_URL).
  let cors = 0;
  let notPlatform = 0;
  let served = 0;
  for (const ws of status.workspaces) {
    if (ws.paused || ws.deleted || ws.rejected) continue;
    served++;
    const since = ws.sinceLastSuccessMs;
    if (since !== undefined && since <= options.staleWindowMs) continue;
    if (ws.lastFailure === "cors") cors++;
    else if (ws.lastFailure === "not-platform") notPlatform++;
    (since === undefined ? never : stale).push(ws.workspaceId);
    if (list) {
      notReady.push({
        workspaceId: ws.workspaceId,
        reason: since === undefined
          ? "no accepted heartbeat yet"
          : `last accepted heartbeat ${Math.round(since / 1000)} s ago`,
        ...(ws.lastError ? { lastError: ws.lastError } : {}),
      });
    }
  }
  // Three ids named at most in each reason.
  const named = (ids: string[]) => {
    if (!options.nameIds) return "";
    const more = ids.length > 3 ? ` and ${ids.length - 3} more` : "";
    return `: ${ids.slice(0, 3).join(", ")}${more}`;
  };
  const reasons: string[] = [];
  if (status.stopped) reasons.push("stopping");
  if (never.length > 0) {
    reasons.push(
      `${never.length} of ${served} served workspace(s) have no accepted heartbeat yet${
        named(never)
      }`,
    );
  }
  if (stale.length > 0) {
    reasons.push(
      `${stale.length} of ${served} served workspace(s) have had no accepted heartbeat for over ${
        Math.round(options.staleWindowMs / 1000)
      } s${named(stale)}`,
    );
  }
  if (cors > 0) {
    reasons.push(
      `${cors} of them refused by the platform's CORS layer (HTTP 403, empty body): the Origin sent is not the one the platform sees ` +
        "(a reverse proxy that rewrites Host, or CORS_ORIGINS; see --origin)",
    );
  }
  if (notPlatform > 0) {
    reasons.push(
      `${notPlatform} of them answered by something that is not the platform (a web page?): check PLATFORM_URL`,
    );
  }
  return {
    ok: reasons.length === 0,
    reasons,
    served,
    ...(list ? { notReady } : {}),
  };
}
