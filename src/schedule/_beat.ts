/**
 * One beat (internal): the live figures and the token, both within the
 * beat's deadline; the request (with the agent card, as the platform's own
 * runtime sends it: it clears the "register failed" mark); what its answer
 * means (the next due time, an early retry within the retry budget,
 * `Retry-After`, the auth escalation once a refusal is confirmed, a state
 * question now and then); summarised log lines. There is no register after
 * a gap: an accepted heartbeat alone brings a workspace back `online`. The owner of every workspace's `beats` book. The
 * schedule (`_life.ts`) starts a beat and arms the next one.
 *
 * @module
 */
import {
  AUTH_LOUD_THRESHOLD,
  AUTH_RELOG_INTERVAL,
} from "../shared/constants.ts";
import { failureReason, observeBeatDuration } from "./_counters.ts";
import type { BeatNext, Fleet } from "./_fleet.ts";
import {
  buildHeartbeatBody,
  type HeartbeatResult,
  type HeartbeatStats,
  postHeartbeat,
} from "../platform/heartbeat.ts";
import { ask, isServed, moveTo, servedState } from "./_life.ts";
import { cureOf } from "../platform/outcome.ts";
import { logger } from "../shared/_logger.ts";
import { maskSecrets } from "../shared/mask.ts";
import { sendableToken } from "../shared/token.ts";
import { raceSignal } from "../shared/_race.ts";
import { nextSlot } from "./_slots.ts";
import { offerSecret } from "./_secret_writer.ts";
import {
  onTokenRefused,
  type TokenFor,
  tokenFor,
  tokenWorked,
} from "./_token_keeper.ts";
import { noteAnswer, type Runtime } from "./_workspace_runtime.ts";

/**
 * A beat refused by the platform's CORS layer is tried again this much
 * later at most (six intervals, if that is sooner): no retry can help until
 * the platform's side changes, and the workspace recovers without a restart
 * once it does.
 */
const BEAT_SLOW_RETRY_MS = 120_000;

/**
 * A refusal is confirmed (the "revoked" error, a first register's
 * rejection) only after refusals in a row over at least this long, in ms,
 * and the lookup showing the workspace: the platform's token check turns a
 * database error into a 401.
 */
export const AUTH_CONFIRM_MS = 3_000;

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
  /** A request went out (a late or failing token function sends none). */
  let sent = false;
  /** Refused, and another token is now in use: try it at once. */
  let switched = false;
  /** The token function did not answer in time (warned about once). */
  let late = false;
  try {
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
      // Known before the body's texts are masked (this may be its first
      // use); one that cannot be sent is refused below.
      sendableToken(token.token);
      const body = buildHeartbeatBody(
        ws.id,
        (sentAt + fleet.sleptMs - fleet.startedAt) / 1000,
        stats,
        ws.card,
      );
      if (fleet.options.stats) {
        const {
          workspace_id: _,
          uptime_seconds: __,
          agent_card: ___,
          ...figures
        } = body;
        b.lastStats = figures;
      }
      result = await postHeartbeat({
        ...fleet.wire(ws),
        token: token.token,
        body,
        signal: deadline.controller.signal,
      });
      // A token that cannot be sent is refused before fetch (rejected, no
      // status): no request went out, so the beat is not counted as sent.
      sent = result.kind !== "rejected" || result.status !== undefined;
      // A refused token: the one the platform issued before, if stored, is
      // tried at once, before anything is escalated.
      if (result.kind === "auth") {
        switched = await onTokenRefused(fleet, ws, token.token);
      } else if (result.kind === "ok") tokenWorked(ws, token.token);
    }
  } catch (error) {
    if (fleet.stopped) return undefined;
    throw error;
  } finally {
    fleet.deadlines.leave(deadline);
  }
  if (fleet.stopped || !isServed(ws)) return undefined;
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
  // A failure's reason label (what `beatFailures` counts it under).
  const label = failureReason(result.kind, result.status, result.reason);
  if (result.kind !== "ok") {
    const refused = result.kind === "auth" || result.kind === "rejected";
    fleet.counters.beats[refused ? "refused" : "failed"]++;
    fleet.counters.beatFailures[label]++;
  }
  if (switched) return { due: now, retry: false };

  if (result.kind === "ok") {
    fleet.counters.beats.accepted++;
    fleet.budget.accepted();
    b.accepted++;
    // The end of a run of warned failures is said too (an outage's last
    // line is otherwise its last failure).
    if (b.consecutiveFailures >= 2) {
      fleet.troubled(
        "recovered",
        ws,
        "warn",
        "heartbeat of {workspaceId} accepted again, after {failures} failed tries over {seconds} s",
        {
          workspaceId: ws.id,
          failures: b.consecutiveFailures,
          seconds: Math.round((now + fleet.sleptMs - b.failingSince) / 1000),
        },
      );
    }
    // After an outage, the next one's lookup failures are said again.
    if (b.consecutiveFailures > 0) ws.reg.lookupSaid = undefined;
    b.consecutiveFailures = 0;
    b.authFailures = 0;
    b.firstRefusedAt = undefined;
    b.escalatedAt = undefined;
    b.lastFailKind = undefined;
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
    moveTo(fleet, ws, servedState(ws));
    // Now and then the state: a deleted workspace's beats are accepted too.
    // (Org-keyed polls stretch with the fleet, and are jittered.)
    const every = fleet.pollEvery(ws);
    if (every > 0 && ++b.sinceState >= every && fleet.budget.trySpend()) {
      b.sinceState = ws.orgId === undefined
        ? 0
        : -Math.floor(fleet.random() * every * 0.2);
      ask(fleet, ws, "poll");
    }
    return { due: next, retry };
  }

  if (b.consecutiveFailures++ === 0) b.failingSince = now + fleet.sleptMs;
  const episode = b.lastFailKind !== result.kind;
  b.lastFailKind = result.kind;
  if (result.kind === "auth") {
    b.authFailures++;
    b.firstRefusedAt ??= now + fleet.sleptMs;
    // The reference's escalation: a warning for each of the first 3
    // refusals, then an error every 20; the first error once the refusal is
    // confirmed (refusals in a row over AUTH_CONFIRM_MS, and the lookup
    // showing the workspace: a 401 can be a blip), at the 3rd or later.
    const status = result.status!;
    const count = b.authFailures;
    const confirmed = ws.ask.authConfirmed &&
      fleet.elapsed() - (b.firstRefusedAt ?? Infinity) >= AUTH_CONFIRM_MS;
    const level = b.escalatedAt !== undefined
      ? (count - b.escalatedAt) % 20 === 0 ? "error" : "none"
      : count < 3
      ? authFailureLevel(count)
      : confirmed
      ? "error"
      : "none";
    if (level === "error") b.escalatedAt = count;
    if (level === "warning") {
      fleet.troubled(
        "auth",
        ws,
        "warn",
        "heartbeat of {workspaceId} got HTTP {status} (auth failure {count}/3): the token may be revoked. " +
          "Will retry; if it persists, regenerate it from the canvas → Tokens tab.",
        { workspaceId: ws.id, status, count },
      );
    } else if (level === "error") {
      // Confirmed: refusals in a row over a few seconds, every candidate
      // token refused, and the platform's lookup (GET /workspaces/:id
      // answered 200) says the workspace exists.
      const source = ws.config.tokenSource;
      const from = source ?? "MOLECULE_WORKSPACE_TOKEN or the token file";
      const why =
        `has been REVOKED: the platform says the workspace exists and refuses the token from ${from} ` +
        "(and any token stored for it). Every platform call will fail. Regenerate the token from the canvas (Tokens tab)";
      // Where the new token goes, and whether a restart is needed.
      const then = source === undefined
        ? "update MOLECULE_WORKSPACE_TOKEN or the token file, and restart"
        : ws.config.tokenReread
        ? `put the new one in ${source} (re-read when it changes: no restart needed)`
        : `update ${source}, and restart`;
      fleet.troubled(
        "auth",
        ws,
        "error",
        "{count} consecutive heartbeat auth failures (HTTP {status}): the token of workspace {workspaceId} " +
          `${why}, then ${then}.`,
        { workspaceId: ws.id, status, count },
      );
      fleet.counters.authEscalations++;
      fleet.emit("auth-escalation", { workspaceId: ws.id, status, count });
    }
    // The platform tells a deleted workspace from a revoked token: asked at
    // the first refusal of a run and again at each escalation (3, 23, 43…),
    // not on every refused beat, which would double the load of a platform
    // refusing a whole fleet.
    // (And while a refusal at 3 or more is not confirmed.)
    if (
      b.authFailures === 1 || level === "error" ||
      (b.authFailures >= 3 && !ws.ask.authConfirmed)
    ) {
      ask(fleet, ws, "refused");
    }
  } else if (result.kind === "transient") {
    if (result.status === 429) {
      fleet.noteRateLimited(ws, result.answer?.rateLimit);
    }
    if (!sent) {
      // A late or failing token function: its next try is its next slot (no
      // request failed: nothing to retry early). A late one is warned about
      // once (by the token keeper), a failing one each time.
      if (!late) {
        fleet.troubled(
          "network",
          ws,
          "warn",
          "heartbeat of {workspaceId} not sent: {reason}",
          {
            workspaceId: ws.id,
            reason: result.reason,
          },
        );
      }
    } else {
      const decided = fleet.retryDelay(
        b.consecutiveFailures,
        result.status,
        result.answer?.retryAfterMs,
        next - now,
      );
      next = now + decided.delay;
      retry = decided.early;
      const retryInMs = Math.round(next - now);
      fleet.troubled(
        label,
        ws,
        "warn",
        "heartbeat of {workspaceId} failed: {reason}; retrying in {retryInMs} ms",
        { workspaceId: ws.id, reason: result.reason, retryInMs },
      );
    }
  } else if (
    result.kind === "cors" || result.kind === "not-platform" ||
    result.kind === "redirect"
  ) {
    // Said once as the trouble starts (the cure is on the platform's side,
    // or in PLATFORM_URL); a CORS refusal is tried again slowly, a redirect
    // or an answer that is not the platform's on the grid (a proxy's page
    // may be a blip).
    const slow = Math.min(BEAT_SLOW_RETRY_MS, 6 * fleet.interval);
    if (result.kind === "cors") next = Math.max(next, now + slow);
    if (episode) {
      fleet.troubled(
        label,
        ws,
        "error",
        "heartbeat of {workspaceId} failed: {reason}{cure}; tried again every {seconds} s until it is accepted (said once)",
        {
          workspaceId: ws.id,
          reason: result.reason,
          cure: cureOf(result.kind, ws.platformUrl, fleet.options.origin),
          seconds: Math.round(
            (result.kind === "cors" ? slow : fleet.interval) / 1000,
          ),
        },
      );
    }
  } else {
    fleet.troubled(
      label,
      ws,
      "warn",
      "heartbeat of {workspaceId} failed: {reason}",
      { workspaceId: ws.id, reason: result.reason },
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
  moveTo(fleet, ws, servedState(ws));
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
  const fn = fleet.options.stats!;
  const b = ws.beats;
  try {
    return b.rawStats = await raceSignal(
      Promise.resolve().then(() => fn(ws.id)),
      signal,
    );
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
        { workspaceId: ws.id, error: maskSecrets(String(error)) },
      );
      b.statsWarned = true;
    }
    return undefined;
  }
}

/** What to log for one failed beat, as the reference does: a warning, an error, or nothing. */
export type AuthFailureLevel = "warning" | "error" | "none";

/**
 * The log level for the `count`-th consecutive auth failure: a warning below
 * 3, an error at 3 and at every 20th failure after (23, 43, …), nothing
 * in between.
 *
 * @example
 * ```ts
 * import { authFailureLevel } from "./_beat.ts";
 * authFailureLevel(2); // "warning"
 * authFailureLevel(3); // "error"
 * authFailureLevel(4); // "none"
 * authFailureLevel(23); // "error"
 * ```
 *
 * @param count Consecutive auth failures, this one included (≥ 1).
 * @returns The level to log at.
 */
export function authFailureLevel(count: number): AuthFailureLevel {
  if (count < AUTH_LOUD_THRESHOLD) return "warning";
  return (count - AUTH_LOUD_THRESHOLD) % AUTH_RELOG_INTERVAL === 0
    ? "error"
    : "none";
}
