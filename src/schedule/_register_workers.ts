/**
 * Register (internal): one queue of registers, drained by at most
 * `registerConcurrency` at once: the fleet's first tries in order, a failed
 * one's retries (within the retry budget; a configuration problem slowly),
 * a register again after a gap longer than the stale window, and one to get
 * a workspace with no live token a new one. The owner of every workspace's
 * `reg` book. Beats never wait on any of it.
 *
 * A 401/403 is the reference's fatal rejection only before anything of the
 * workspace was accepted; the platform's lookup tells a deleted workspace
 * from a bad token then. Once its beats (or `/state`) accepted the token, a
 * refused register is a warning and a slow retry.
 *
 * @module
 */
import { buildAgentCard } from "../platform/agent_card.ts";
import { processEnv } from "../shared/env.ts";
import { RegisterAuthError } from "../shared/errors.ts";
import type { Fleet } from "./_fleet.ts";
import { isFinal, moveTo, servedState } from "./_life.ts";
import { ask } from "./_lifecycle.ts";
import { raceSignal } from "../shared/_race.ts";
import { logger } from "../shared/_logger.ts";
import { register, type RegisterResult } from "../platform/register.ts";
import { offerSecret } from "./_secret_writer.ts";
import { adoptIssuedToken, onTokenRefused, tokenFor } from "./_token_keeper.ts";
import { noteAnswer, type Runtime } from "./_workspace_runtime.ts";

/**
 * A register refused as it is (400, 409: a configuration problem), or
 * refused for its token after the token was seen to work, is tried again
 * this much later, not at the transient backoff.
 */
export const REGISTER_SLOW_RETRY_MS = 300_000;

/** What a workspace's first register came to, for the handle's `ready`. */
export type FirstRegister =
  | "ok"
  | "rejected"
  | "deleted"
  | "aborted"
  | { reason: string };

/**
 * Queues a register of `ws`, unless one is queued, under way or armed as a
 * retry (which comes first), or `ws` is gone.
 */
export function wantRegister(fleet: Fleet, ws: Runtime): void {
  const r = ws.reg;
  if (fleet.stopped || isFinal(ws) || r.queued || r.running || r.timer) return;
  r.queued = true;
  fleet.registerQueue.push(ws);
  pump(fleet);
}

/** Drops every queued register (on stop). */
export function clearRegisters(fleet: Fleet): void {
  for (let i = fleet.registerHead; i < fleet.registerQueue.length; i++) {
    const ws = fleet.registerQueue[i];
    ws.reg.queued = false;
    first(ws, "aborted");
  }
  fleet.registerQueue = [];
  fleet.registerHead = 0;
}

function pump(fleet: Fleet): void {
  while (
    fleet.registersRunning < fleet.registerConcurrency &&
    fleet.registerHead < fleet.registerQueue.length
  ) {
    const ws = fleet.registerQueue[fleet.registerHead++];
    if (fleet.registerHead === fleet.registerQueue.length) {
      fleet.registerQueue = [];
      fleet.registerHead = 0;
    } else if (
      fleet.registerHead > 1024 &&
      fleet.registerHead * 2 > fleet.registerQueue.length
    ) {
      fleet.registerQueue.splice(0, fleet.registerHead);
      fleet.registerHead = 0;
    }
    ws.reg.queued = false;
    if (fleet.stopped || isFinal(ws)) {
      first(ws, finalOutcome(ws));
      continue;
    }
    fleet.registersRunning++;
    ws.reg.running = true;
    void fleet.track(
      registerOnce(fleet, ws).then(
        (outcome) => first(ws, outcome),
        (error) => {
          logger.error(
            "internal error in a register of {workspaceId}: {error}",
            {
              workspaceId: ws.id,
              error,
            },
          );
          first(ws, { reason: String(error) });
        },
      ).finally(() => {
        ws.reg.running = false;
        fleet.registersRunning--;
        pump(fleet);
      }),
    );
  }
}

function finalOutcome(ws: Runtime): FirstRegister {
  const state = ws.life.state;
  return state === "deleted" || state === "rejected" ? state : "aborted";
}

function first(ws: Runtime, outcome: FirstRegister): void {
  const report = ws.reg.first;
  if (!report) return;
  ws.reg.first = undefined;
  report(typeof outcome === "string" ? outcome : outcome.reason);
}

type Attempt =
  | { kind: "answer"; result: RegisterResult }
  | { kind: "auth"; status: number; token: string }
  | { kind: "aborted" };

async function attempt(fleet: Fleet, ws: Runtime): Promise<Attempt> {
  const deadline = fleet.deadlines.join(fleet.clock.now());
  const signal = deadline.controller.signal;
  let held = false;
  let used = "";
  try {
    const token = await tokenFor(fleet, ws, signal);
    if (token.kind !== "ok") {
      return {
        kind: "answer",
        result: { kind: "transient", reason: token.reason },
      };
    }
    fleet.cap.hold(); // registers count against the cap, beside it
    held = true;
    used = token.token;
    const result = await fleet.counted(register({
      platformUrl: ws.platformUrl,
      workspaceId: ws.id,
      token: token.token,
      agentCard: ws.config.agentCard ??
        buildAgentCard(ws.id, fleet.options.env ?? processEnv),
      timeoutMs: 0,
      signal,
      fetch: fleet.options.fetch,
      mcpServerPresent: fleet.options.mcpServerPresent,
      init: fleet.pool.init(),
    }));
    return { kind: "answer", result };
  } catch (error) {
    if (fleet.stopped) return { kind: "aborted" };
    if (error instanceof RegisterAuthError) {
      return { kind: "auth", status: error.status, token: used };
    }
    throw error;
  } finally {
    fleet.deadlines.leave(deadline);
    if (held) fleet.cap.release();
  }
}

/** Whether the platform accepted `ws`'s token in this run (a beat, or `/state`). */
function tokenWorked(ws: Runtime): boolean {
  return ws.beats.accepted > 0 || ws.ask.tokenAccepted || ws.reg.accepted;
}

/** One register of `ws` (and, refused, one with the stored token), and what it changes. */
async function registerOnce(
  fleet: Fleet,
  ws: Runtime,
): Promise<FirstRegister> {
  let tried = await attempt(fleet, ws);
  // A refused configured token: the one the platform issued before, if
  // stored, is tried at once.
  if (tried.kind === "auth" && !fleet.stopped && !isFinal(ws)) {
    fleet.counters.registers.refused++;
    if (await onTokenRefused(fleet, ws, tried.token)) {
      tried = await attempt(fleet, ws);
      if (tried.kind === "auth") fleet.counters.registers.refused++;
    }
  }
  if (tried.kind === "aborted" || fleet.stopped || isFinal(ws)) {
    return "aborted"; // a removed workspace's answer is ignored
  }
  const r = ws.reg;
  if (tried.kind === "auth") {
    return await refused(fleet, ws, tried.status, tried.token);
  }
  const result = tried.result;
  if (result.kind === "ok") {
    fleet.counters.registers.accepted++;
    fleet.budget.accepted();
    const again = r.accepted;
    r.accepted = true;
    r.failures = 0;
    r.lastAcceptedAt = fleet.elapsed();
    noteAnswer(ws, result.status, null);
    if (result.authToken) adoptIssuedToken(fleet, ws, result.authToken);
    logger.info(
      again
        ? "registered workspace {workspaceId} with the platform again"
        : "registered workspace {workspaceId} with the platform",
      { workspaceId: ws.id },
    );
    fleet.emit("registered", {
      workspaceId: ws.id,
      status: result.status!,
      ...(result.authToken ? { authToken: result.authToken } : {}),
    });
    offerSecret(fleet, ws, result.inboundSecret);
    // A 200 does not prove a paused or removed workspace live (the platform
    // answers it and changes nothing): only /state moves a paused one.
    if (ws.life.state === "registering") moveTo(fleet, ws, servedState(ws));
    return "ok";
  }
  r.failures++;
  noteAnswer(ws, result.status, result.reason);
  const configuration = result.kind === "rejected";
  fleet.counters.registers[configuration ? "refused" : "failed"]++;
  let retryInMs: number;
  if (configuration) {
    // 400, 409: the request is wrong as it is; resending it at once cannot help.
    retryInMs = REGISTER_SLOW_RETRY_MS;
    const message = result.platformMessage ?? result.reason;
    logger.error(
      "register of workspace {workspaceId} was refused with HTTP {status}: {message}. " +
        "This is a configuration problem (the agent card, the delivery mode, the workspace), not a blip; " +
        "heartbeats go on, register is retried every {minutes} minutes",
      {
        workspaceId: ws.id,
        status: result.status ?? "(none)",
        message,
        minutes: REGISTER_SLOW_RETRY_MS / 60_000,
      },
    );
  } else {
    const limited = result.status === 429;
    const retryAfter = Math.min(
      limited ? fleet.staleWindow / 2 : fleet.interval,
      result.answer?.retryAfterMs ?? 0,
    );
    retryInMs = fleet.budget.spend()
      ? Math.max(fleet.backoff(r.failures), retryAfter)
      : Math.max(fleet.interval, retryAfter);
    fleet.troubled(
      "register",
      ws,
      () =>
        logger[result.kind === "redirect" ? "error" : "warn"](
          "register of workspace {workspaceId} failed ({reason}); heartbeats go on, register is retried in {retryInMs} ms",
          { workspaceId: ws.id, reason: result.reason, retryInMs },
        ),
    );
  }
  fleet.emit("register-failed", {
    workspaceId: ws.id,
    kind: result.kind,
    status: result.status,
    reason: result.reason,
    retryInMs,
  });
  retryLater(fleet, ws, retryInMs);
  return { reason: result.reason };
}

/** Arms `ws`'s next register try. */
function retryLater(fleet: Fleet, ws: Runtime, ms: number): void {
  const r = ws.reg;
  if (r.timer) fleet.queue.cancel(r.timer);
  r.timer = fleet.queue.at(fleet.clock.now() + ms, () => {
    r.timer = undefined;
    wantRegister(fleet, ws);
  });
}

/**
 * A register refused for its token (after the stored token, if any, was
 * tried). In context: if the token was seen to work, a warning and a slow
 * retry; else the lookup tells deletion from a bad token, and a bad token
 * is the reference's fatal rejection.
 */
async function refused(
  fleet: Fleet,
  ws: Runtime,
  status: number,
  used: string,
): Promise<FirstRegister> {
  const reason = `register refused with HTTP ${status}`;
  noteAnswer(ws, status, reason);
  // Another token came in use meanwhile (issued to a beat's register, or
  // the store's): try it at once.
  if (ws.token.current !== undefined && ws.token.current !== used) {
    retryLater(fleet, ws, 0);
    return { reason };
  }
  if (tokenWorked(ws)) {
    logger.warn(
      "register of workspace {workspaceId} was refused with HTTP {status}, although the platform accepted its token before: " +
        "it keeps being served (heartbeats go on), and register is retried in {minutes} minutes",
      { workspaceId: ws.id, status, minutes: REGISTER_SLOW_RETRY_MS / 60_000 },
    );
    fleet.emit("register-failed", {
      workspaceId: ws.id,
      kind: "auth",
      status,
      reason,
      retryInMs: REGISTER_SLOW_RETRY_MS,
    });
    retryLater(fleet, ws, REGISTER_SLOW_RETRY_MS);
    return { reason };
  }
  // A refused token, or a deleted workspace? The platform can tell (the
  // answer is acted on: a deleted one is retired there).
  const answer = await raceSignal(ask(fleet, ws, "refused"), fleet.abort.signal)
    .catch(() => undefined);
  if (ws.life.state === "deleted") return "deleted";
  if (fleet.stopped || isFinal(ws)) return "aborted";
  // Accepted meanwhile (a beat went through): not fatal after all.
  if (tokenWorked(ws)) return await refusedLate(fleet, ws, status, reason);
  if (!moveTo(fleet, ws, "rejected")) return { reason };
  logger.error(
    answer?.exists
      ? "register rejected with HTTP {status}: the token is invalid for workspace {workspaceId} (the platform says the workspace exists). " +
        "Regenerate it from the canvas → Tokens tab. This workspace is no longer served."
      : "register rejected with HTTP {status}: the token is invalid for workspace {workspaceId}. " +
        "Regenerate it from the canvas → Tokens tab. This workspace is no longer served.",
    { status, workspaceId: ws.id },
  );
  fleet.emit("rejected", { workspaceId: ws.id, status });
  return "rejected";
}

function refusedLate(
  fleet: Fleet,
  ws: Runtime,
  status: number,
  reason: string,
): Promise<FirstRegister> {
  retryLater(fleet, ws, REGISTER_SLOW_RETRY_MS);
  logger.warn(
    "register of workspace {workspaceId} was refused with HTTP {status}, but its heartbeats are accepted: it keeps being served, register is retried in {minutes} minutes",
    { workspaceId: ws.id, status, minutes: REGISTER_SLOW_RETRY_MS / 60_000 },
  );
  return Promise.resolve({ reason });
}
