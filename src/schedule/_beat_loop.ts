/**
 * Each workspace's beats (internal): a fixed-rate schedule on its phase,
 * the in-flight cap (a beat that finds it full is skipped and counted, not
 * queued), the beat itself, and what a failure changes: an early retry
 * within the retry budget, `Retry-After`, the auth escalation, summarised
 * log lines.
 *
 * @module
 */
import { authFailureLevel } from "./_auth_escalation.ts";
import { failureReason, observeBeatDuration } from "./_counters.ts";
import type { Fleet } from "./_fleet.ts";
import {
  buildHeartbeatBody,
  type HeartbeatResult,
  type HeartbeatStats,
  sendHeartbeat,
} from "../platform/heartbeat.ts";
import { askState } from "./_lifecycle.ts";
import { logger } from "../shared/_logger.ts";
import { nextSlot } from "./_slots.ts";
import { offerSecret } from "./_secret_writer.ts";
import { troubleKind } from "./_trouble_log.ts";
import type { Runtime } from "./_workspace_runtime.ts";

/**
 * Schedules `ws`'s next beat at `due` (replacing one already scheduled);
 * `retry` marks an early retry, which earns no retry budget.
 */
export function scheduleBeat(
  fleet: Fleet,
  ws: Runtime,
  due: number,
  retry = false,
): void {
  if (!fleet.served(ws)) return;
  fleet.unschedule(ws);
  ws.retrying = retry;
  ws.timer = fleet.queue.at(due, () => {
    ws.timer = undefined;
    if (ws.inFlight || !fleet.served(ws)) return;
    const now = fleet.clock.now();
    if (fleet.inFlight >= fleet.maxInFlight) {
      skip(fleet, ws);
      return scheduleBeat(
        fleet,
        ws,
        nextSlot(ws.anchor, fleet.interval, now, now),
      );
    }
    if (!ws.retrying) fleet.budget.earn();
    ws.inFlight = true;
    void fleet.track(fleet.counted(beat(fleet, ws))).catch((error) => {
      ws.inFlight = false;
      logger.error("internal error in a beat of {workspaceId}: {error}", {
        workspaceId: ws.id,
        error,
      });
    });
  });
}

function skip(fleet: Fleet, ws: Runtime): void {
  ws.beatsSkipped++;
  fleet.skipped++;
  fleet.counters.beats.skipped++;
  fleet.skippedSinceWarn++;
  const now = fleet.clock.now();
  if (now - fleet.skipWarnedAt < 10_000) return;
  logger.warn(
    "{count} beat(s) skipped: {inFlight} requests are in flight, the cap; the platform is slow to answer (a skipped beat is superseded by the next)",
    { count: fleet.skippedSinceWarn, inFlight: fleet.inFlight },
  );
  fleet.skipWarnedAt = now;
  fleet.skippedSinceWarn = 0;
}

async function beat(fleet: Fleet, ws: Runtime): Promise<void> {
  const sentAt = fleet.clock.now();
  const stats = await liveStats(fleet, ws);
  const body = buildHeartbeatBody(
    ws.id,
    (sentAt - fleet.startedAt) / 1000,
    stats,
  );
  if (fleet.options.stats) {
    const { workspace_id: _, uptime_seconds: __, ...sent } = body;
    ws.lastStats = sent;
  }
  if (fleet.stopped) {
    ws.inFlight = false;
    return;
  }
  let result: HeartbeatResult;
  const deadline = fleet.deadlines.join(sentAt);
  try {
    result = await sendHeartbeat({
      platformUrl: fleet.options.platformUrl,
      token: ws.config.token,
      body,
      timeoutMs: 0,
      signal: deadline.controller.signal,
      fetch: fleet.options.fetch,
      orgId: fleet.options.orgId,
    });
  } catch (error) {
    ws.inFlight = false;
    if (fleet.stopped) return;
    throw error;
  } finally {
    fleet.deadlines.leave(deadline);
  }
  ws.inFlight = false;
  if (fleet.stopped || ws.removed) return;
  const now = fleet.clock.now();
  ws.beatsSent++;
  observeBeatDuration(fleet.counters, now - sentAt);
  if (result.status !== undefined) ws.lastStatus = result.status;
  let next = nextSlot(ws.anchor, fleet.interval, sentAt, now);
  let retry = false;

  if (result.kind === "ok") {
    fleet.counters.beats.accepted++;
    fleet.budget.accepted();
    ws.beatsAccepted++;
    ws.consecutiveFailures = 0;
    ws.authFailures = 0;
    ws.lastSuccessClock = now;
    ws.lastSuccessWall = Date.now();
    ws.lastError = undefined;
    if (logger.isEnabledFor("debug")) {
      logger.debug("beat accepted for {workspaceId}", { workspaceId: ws.id });
    }
    fleet.emit("beat", {
      workspaceId: ws.id,
      status: result.status!,
      latencyMs: now - sentAt,
    });
    offerSecret(fleet, ws, result.inboundSecret);
    const every = fleet.options.statePollEvery ?? 0;
    if (every > 0 && ++ws.beatsSinceState >= every) {
      ws.beatsSinceState = 0;
      askState(fleet, ws, true);
    }
    scheduleBeat(fleet, ws, next);
    return;
  }

  ws.consecutiveFailures++;
  ws.lastError = result.reason;
  const refused = result.kind === "auth" || result.kind === "rejected";
  fleet.counters.beats[refused ? "refused" : "failed"]++;
  fleet.counters.beatFailures[
    failureReason(result.kind, result.status, result.reason)
  ]++;
  if (result.kind === "auth") {
    ws.authFailures++;
    // The state tells a deleted workspace from a revoked token: asked at the
    // first refusal of a streak and again at each escalation (3, 23, 43…),
    // not on every refused beat, which would double the load of a platform
    // refusing a whole fleet.
    if (
      ws.authFailures === 1 || authFailureLevel(ws.authFailures) === "error"
    ) askState(fleet, ws, false);
    logAuthFailure(fleet, ws, result.status!);
  } else if (result.kind === "transient") {
    const retryAfter = Math.min(
      fleet.interval,
      result.answer?.retryAfterMs ?? 0,
    );
    if (fleet.budget.spend()) {
      next = now + Math.max(fleet.backoff(ws.consecutiveFailures), retryAfter);
      retry = true;
    } else next = Math.max(next, now + retryAfter);
    const retryInMs = Math.round(next - now);
    fleet.troubled(
      troubleKind(result.kind, result.status, result.reason),
      ws,
      () =>
        logger.warn(
          "heartbeat of {workspaceId} failed: {reason}; retrying in {retryInMs} ms",
          { workspaceId: ws.id, reason: result.reason, retryInMs },
        ),
    );
  } else {
    fleet.troubled(
      troubleKind(result.kind, result.status, result.reason),
      ws,
      () =>
        logger[result.kind === "redirect" ? "error" : "warn"](
          "heartbeat of {workspaceId} failed: {reason}",
          { workspaceId: ws.id, reason: result.reason },
        ),
    );
  }
  fleet.emit("failure", {
    workspaceId: ws.id,
    kind: result.kind,
    status: result.status,
    reason: result.reason,
    consecutiveFailures: ws.consecutiveFailures,
    nextInMs: next - now,
  });
  scheduleBeat(fleet, ws, next, retry);
}

/** The live figures the `stats` option gives for `ws`; zeros if it throws. */
async function liveStats(
  fleet: Fleet,
  ws: Runtime,
): Promise<HeartbeatStats | undefined> {
  const fn = fleet.options.stats;
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

/** The reference's escalation: a warning for 3 failures, then an error every 20. */
function logAuthFailure(fleet: Fleet, ws: Runtime, status: number): void {
  const count = ws.authFailures;
  const level = authFailureLevel(count);
  if (level === "warning") {
    fleet.troubled("auth", ws, () =>
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
    fleet.troubled("auth", ws, () =>
      logger.error(
        "{count} consecutive heartbeat auth failures (HTTP {status}): the token of workspace {workspaceId} " +
          `${why}, then ${then}.`,
        { workspaceId: ws.id, status, count },
      ));
    fleet.counters.authEscalations++;
    fleet.emit("auth-escalation", { workspaceId: ws.id, status, count });
  }
}
