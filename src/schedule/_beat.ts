/**
 * One beat (internal): the live figures and the token, both within the
 * beat's deadline; the request; what its answer means (the next due time,
 * an early retry within the retry budget, `Retry-After`, the auth
 * escalation, a state question now and then, a register after a gap);
 * summarised log lines. The owner of every workspace's `beats` book. The
 * schedule (`_life.ts`) starts a beat and arms the next one.
 *
 * @module
 */
import { authFailureLevel } from "./_auth_escalation.ts";
import { failureReason, observeBeatDuration } from "./_counters.ts";
import type { BeatNext, Fleet } from "./_fleet.ts";
import {
  buildHeartbeatBody,
  type HeartbeatResult,
  type HeartbeatStats,
  sendHeartbeat,
} from "../platform/heartbeat.ts";
import { afterBeatState, isServed, moveTo } from "./_life.ts";
import { logger } from "../shared/_logger.ts";
import { raceSignal } from "../shared/_race.ts";
import { noteRateLimited } from "./_rate_limit.ts";
import { nextSlot } from "./_slots.ts";
import { offerSecret } from "./_secret_writer.ts";
import { onTokenRefused, type TokenFor, tokenFor } from "./_token_keeper.ts";
import { troubleKind } from "./_trouble_log.ts";
import { noteAnswer, type Runtime } from "./_workspace_runtime.ts";

/**
 * Sends one beat of `ws` (which holds a slot under the cap) and decides
 * when the next is due; `undefined` when stopped, or when `ws` is no longer
 * served (its answer is then ignored).
 */
export async function beat(
  fleet: Fleet,
  ws: Runtime,
): Promise<BeatNext | undefined> {
  const sentAt = ws.sched.sentAt; // set by the schedule as it starts the beat
  const b = ws.beats;
  let deadline = fleet.deadlines.join(sentAt);
  let result: HeartbeatResult;
  let sent = false;
  let switched = false;
  let late = false;
  try {
    if (isStale(fleet, ws)) fleet.parts.register(ws); // beside this beat
    // (No await without a stats or token function: a microtask per beat.)
    const stats = fleet.options.stats
      ? await liveStats(fleet, ws, deadline.controller.signal)
      : undefined;
    if (deadline.controller.signal.aborted) {
      if (fleet.stopped) return undefined;
      // The stats function took the deadline: the request gets its own.
      fleet.deadlines.leave(deadline);
      deadline = fleet.deadlines.join(fleet.clock.now());
    }
    const source = ws.token.current ?? ws.config.token;
    const token: TokenFor = typeof source === "string"
      ? { kind: "ok", token: source }
      : await tokenFor(fleet, ws, deadline.controller.signal);
    if (token.kind !== "ok") {
      result = { kind: "transient", reason: token.reason };
      late = token.kind === "late";
    } else {
      const body = buildHeartbeatBody(
        ws.id,
        (sentAt + fleet.sleptMs - fleet.startedAt) / 1000,
        stats,
      );
      if (fleet.options.stats) {
        const { workspace_id: _, uptime_seconds: __, ...figures } = body;
        b.lastStats = figures;
      }
      sent = true;
      result = await fleet.counted(sendHeartbeat({
        platformUrl: ws.platformUrl,
        token: token.token,
        body,
        timeoutMs: 0,
        signal: deadline.controller.signal,
        fetch: fleet.options.fetch,
        init: fleet.pool.init(),
      }));
      // A token that cannot be sent is refused before fetch (rejected, no
      // status): no request went out, so the beat is not counted as sent.
      if (result.kind === "rejected" && result.status === undefined) {
        sent = false;
      }
      // A refused token: the one the platform issued before, if stored, is
      // tried at once, before anything is escalated.
      if (result.kind === "auth") {
        switched = await onTokenRefused(fleet, ws, token.token);
      }
    }
  } catch (error) {
    if (fleet.stopped) return undefined;
    throw error;
  } finally {
    fleet.deadlines.leave(deadline);
  }
  if (fleet.stopped || !isServed(ws)) return undefined;
  return onAnswer(fleet, ws, { sentAt, result, sent, switched, late });
}

/**
 * Whether the platform's liveness key of `ws` has expired: its last
 * accepted beat and register are both older than the stale window (a
 * heartbeat only extends a key that still exists; a register sets it).
 */
function isStale(fleet: Fleet, ws: Runtime): boolean {
  const registered = ws.reg.lastAcceptedAt;
  if (registered === undefined) return false; // its register is still retried
  const alive = Math.max(registered, ws.beats.lastSuccessAt ?? -Infinity);
  return fleet.elapsed() - alive > fleet.staleWindow;
}

function countFailure(fleet: Fleet, result: HeartbeatResult): void {
  const refused = result.kind === "auth" || result.kind === "rejected";
  fleet.counters.beats[refused ? "refused" : "failed"]++;
  fleet.counters.beatFailures[
    failureReason(result.kind, result.status, result.reason)
  ]++;
}

function onAnswer(
  fleet: Fleet,
  ws: Runtime,
  { sentAt, result, sent, switched, late }: {
    sentAt: number;
    result: HeartbeatResult;
    /** A request went out (a late or failing token function sends none). */
    sent: boolean;
    /** Refused, and another token is now in use: try it at once. */
    switched: boolean;
    /** The token function did not answer in time (warned about once). */
    late: boolean;
  },
): BeatNext {
  const b = ws.beats;
  const now = fleet.clock.now();
  if (sent) {
    b.sent++;
    observeBeatDuration(fleet.counters, now - sentAt);
  }
  noteAnswer(
    ws,
    result.status,
    result.kind === "ok" ? undefined : result.reason,
  );
  let next = nextSlot(ws.anchor, fleet.interval, sentAt, now);
  let retry = false;
  if (switched) {
    countFailure(fleet, result);
    return { due: now, retry: false };
  }

  if (result.kind === "ok") {
    fleet.counters.beats.accepted++;
    fleet.budget.accepted();
    b.accepted++;
    b.consecutiveFailures = 0;
    b.authFailures = 0;
    b.lastSuccessAt = now + fleet.sleptMs; // fleet.elapsed(), without a clock read
    b.lastSuccessWall = fleet.wall();
    if (logger.isEnabledFor("debug")) {
      logger.debug("beat accepted for {workspaceId}", { workspaceId: ws.id });
    }
    fleet.emit("beat", {
      workspaceId: ws.id,
      status: result.status!,
      latencyMs: now - sentAt,
    });
    offerSecret(fleet, ws, result.inboundSecret);
    moveTo(fleet, ws, afterBeatState(ws, true));
    // Now and then the state: a deleted workspace's beats are accepted too.
    const every = fleet.statePollEvery;
    if (every > 0 && ++b.sinceState >= every && fleet.budget.trySpend()) {
      b.sinceState = 0;
      fleet.parts.ask(ws, "poll");
    }
    return { due: next, retry };
  }

  b.consecutiveFailures++;
  countFailure(fleet, result);
  if (result.kind === "auth") {
    b.authFailures++;
    // The platform tells a deleted workspace from a revoked token: asked at
    // the first refusal of a run and again at each escalation (3, 23, 43…),
    // not on every refused beat, which would double the load of a platform
    // refusing a whole fleet.
    if (b.authFailures === 1 || authFailureLevel(b.authFailures) === "error") {
      fleet.parts.ask(ws, "refused");
    }
    logAuthFailure(fleet, ws, result.status!);
  } else if (result.kind === "transient") {
    const limited = result.status === 429;
    if (limited) noteRateLimited(fleet, ws, result.answer?.rateLimit);
    // A rate limit is waited out as asked (but never into the stale
    // window); other answers' Retry-After up to the interval.
    const retryAfter = Math.min(
      limited ? fleet.staleWindow / 2 : fleet.interval,
      result.answer?.retryAfterMs ?? 0,
    );
    if (!sent) {
      // A late or failing token function: its next try is its next slot (no
      // request failed: nothing to retry early). A late one is warned about
      // once (by the token keeper), a failing one each time.
      if (!late) {
        fleet.troubled(
          "network",
          ws,
          () =>
            logger.warn("heartbeat of {workspaceId} not sent: {reason}", {
              workspaceId: ws.id,
              reason: result.reason,
            }),
        );
      }
    } else {
      if (fleet.budget.spend()) {
        next = now + Math.max(fleet.backoff(b.consecutiveFailures), retryAfter);
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
    }
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
    consecutiveFailures: b.consecutiveFailures,
    nextInMs: next - now,
  });
  moveTo(fleet, ws, afterBeatState(ws, false));
  return { due: next, retry };
}

/**
 * The live figures the `stats` option gives for `ws`, waited for until
 * `signal` (the beat's deadline) aborts: then the last figures it gave,
 * with one warning per workspace; zeros when it throws (warned once).
 *
 * @throws The stop's abort reason, when stopped meanwhile.
 */
async function liveStats(
  fleet: Fleet,
  ws: Runtime,
  signal: AbortSignal,
): Promise<HeartbeatStats | undefined> {
  const fn = fleet.options.stats;
  if (!fn) return undefined;
  const b = ws.beats;
  try {
    const stats = await raceSignal(
      Promise.resolve().then(() => fn(ws.id)),
      signal,
    );
    b.rawStats = stats;
    return stats;
  } catch (error) {
    if (fleet.stopped) throw error;
    if (signal.aborted) {
      if (!b.statsLateWarned) {
        logger.warn(
          "the stats function did not answer within {timeoutMs} ms for {workspaceId}: its beats go out with the last figures it gave (warned once)",
          { workspaceId: ws.id, timeoutMs: fleet.timeout },
        );
        b.statsLateWarned = true;
      }
      return b.rawStats;
    }
    if (!b.statsWarned) {
      logger.warn(
        "the stats function threw for {workspaceId}; sending zeros: {error}",
        { workspaceId: ws.id, error: String(error) },
      );
      b.statsWarned = true;
    }
    return undefined;
  }
}

/** The reference's escalation: a warning for 3 failures, then an error every 20. */
function logAuthFailure(fleet: Fleet, ws: Runtime, status: number): void {
  const count = ws.beats.authFailures;
  const level = authFailureLevel(count);
  if (level === "warning") {
    fleet.troubled("auth", ws, () =>
      logger.warn(
        "heartbeat of {workspaceId} got HTTP {status} (auth failure {count}/3): the token may be revoked. " +
          "Will retry; if it persists, regenerate it from the canvas → Tokens tab.",
        { workspaceId: ws.id, status, count },
      ));
  } else if (level === "error") {
    // The platform's lookup (GET /workspaces/:id answered 200) turns the
    // reference's guess into a certainty.
    const source = ws.config.tokenSource;
    const from = source ?? "MOLECULE_WORKSPACE_TOKEN or the token file";
    const why = ws.ask.authConfirmed
      ? `has been REVOKED: the platform says the workspace exists and refuses the token from ${from}. ` +
        "Every platform call will fail. Regenerate the token from the canvas (Tokens tab)"
      : "has been REVOKED, or the workspace was deleted (the platform could not be asked which). Every platform call " +
        "will fail. Regenerate the token (or the workspace and its token) from the canvas (Tokens tab)";
    // Where the new token goes, and whether a restart is needed.
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
