/**
 * Register (internal): one queue of registers, drained by at most
 * `registerConcurrency` at once: the fleet's first tries in order, a failed
 * one's retries (with backoff, within the retry budget, until one
 * succeeds), and one to get a workspace with no live token a new one. The
 * owner of every workspace's `reg` book. Beats never wait on any of it.
 *
 * The platform's register has side effects a heartbeat has not: it creates
 * a workspace for an id the platform does not have, forces a degraded one
 * `online`, broadcasts it, and mints a token for a removed one that can
 * never work. So every register comes after a lookup that shows the
 * workspace live (`_life.ts`), there is no register after a gap
 * (heartbeats alone bring a workspace back), and a 4xx other than 401 and
 * 429 (the request is wrong as it is) is not tried again: the beats carry
 * the agent card, which clears the "register failed" mark a failed register
 * leaves on the platform.
 *
 * A 401 is no verdict alone (the platform's token check turns a database
 * error into one): the candidates are re-read (`_token_keeper.ts`), and a
 * workspace never accepted in this run is rejected only when a register a
 * few seconds later, after a lookup that shows the workspace, is refused
 * too. Once its beats (or `/state`) accepted the token, a refused register
 * is a warning and a slow retry.
 *
 * @module
 */
import type { Fleet } from "./_fleet.ts";
import { type Answer, ask, isFinal, moveTo, servedState } from "./_life.ts";
import { raceSignal } from "../shared/_race.ts";
import { logger } from "../shared/_logger.ts";
import { register, type RegisterResult } from "../platform/register.ts";
import { cureOf } from "../platform/outcome.ts";
import type { HeartbeatEventMap } from "./types.ts";
import { offerSecret } from "./_secret_writer.ts";
import { adoptIssuedToken, onTokenRefused, tokenFor } from "./_token_keeper.ts";
import { failureReason } from "./_counters.ts";
import { AUTH_CONFIRM_MS } from "./_beat.ts";
import { noteAnswer, type Runtime } from "./_workspace_runtime.ts";

/**
 * A register refused for its token after the token was seen to work, or
 * refused by the platform's CORS layer, or answered by something that is
 * not the platform, is tried again this much later, not at the transient
 * backoff.
 */
export const REGISTER_SLOW_RETRY_MS = 300_000;

/**
 * What a workspace's first register came to, for the handle's `ready`:
 * `ok`, `rejected`, `deleted`, `aborted`, `pending` (no verdict yet), or
 * else why it failed.
 */
type FirstRegister = string;

/**
 * Queues a register of `ws` (at most `registerConcurrency` run at once, the
 * others wait their turn first come), unless one is queued, under way or
 * armed as a retry (which comes first), or `ws` is gone.
 */
export function wantRegister(fleet: Fleet, ws: Runtime): void {
  const r = ws.reg;
  if (fleet.stopped || isFinal(ws) || r.wanted || r.timer) return;
  r.wanted = true;
  const go = () => {
    if (fleet.stopped || isFinal(ws)) {
      r.wanted = false;
      first(ws, finalOutcome(ws));
      return false;
    }
    void fleet.track(
      registerOnce(fleet, ws).then(
        (outcome) => first(ws, outcome),
        (error) => {
          logger.error(
            "internal error in a register of {workspaceId}: {error}",
            { workspaceId: ws.id, error },
          );
          first(ws, String(error));
        },
      ).finally(() => {
        r.wanted = false;
        fleet.registers.release();
      }),
    );
    return true;
  };
  if (fleet.registers.tryTake()) go();
  else fleet.registers.wait(go);
}

function finalOutcome(ws: Runtime): FirstRegister {
  const state = ws.life.state;
  return state === "deleted" || state === "rejected" ? state : "aborted";
}

function first(ws: Runtime, outcome: FirstRegister): void {
  const report = ws.reg.first;
  if (!report || outcome === "pending") return;
  ws.reg.first = undefined;
  report(outcome);
}

/**
 * One register request, and the token it went with; `undefined` when
 * stopped. It is not aborted by a stop at once: its answer may carry a
 * token the platform just minted (the old one then no longer works), so it
 * has until the stop's grace to be read.
 */
async function attempt(
  fleet: Fleet,
  ws: Runtime,
): Promise<{ result: RegisterResult; used: string } | undefined> {
  const own = new AbortController();
  const timer = fleet.queue.at(
    fleet.clock.now() + fleet.timeout,
    () => own.abort(new DOMException("request timed out", "TimeoutError")),
  );
  const signal = AbortSignal.any([own.signal, fleet.grace.signal]);
  let held = false;
  try {
    const token = await tokenFor(fleet, ws, signal);
    if (token.kind !== "ok") {
      return { result: { kind: "transient", reason: token.reason }, used: "" };
    }
    fleet.cap.hold(); // registers count against the cap, beside it
    held = true;
    const result = await register({
      ...fleet.wire(ws),
      workspaceId: ws.id,
      token: token.token,
      agentCard: ws.card,
      signal,
      mcpServerPresent: fleet.options.mcpServerPresent,
    });
    return { result, used: token.token };
  } catch (error) {
    if (fleet.stopped) return undefined;
    throw error;
  } finally {
    fleet.queue.cancel(timer);
    if (held) fleet.cap.release();
  }
}

/** Emits `register-failed` and arms the next try (none for a `rejected` one). */
function failed(
  fleet: Fleet,
  ws: Runtime,
  detail: Omit<HeartbeatEventMap["register-failed"], "workspaceId">,
): FirstRegister {
  fleet.emit("register-failed", { workspaceId: ws.id, ...detail });
  if (detail.kind !== "rejected") retryLater(fleet, ws, detail.retryInMs);
  return detail.reason;
}

/** One register of `ws` (after a lookup; refused, one with another candidate token), and what it changes. */
async function registerOnce(
  fleet: Fleet,
  ws: Runtime,
): Promise<FirstRegister> {
  // First, whether `ws` is there and live.
  const answer = await raceSignal(
    ask(fleet, ws, "register"),
    fleet.abort.signal,
  ).catch(() => undefined);
  if (fleet.stopped) return "aborted";
  if (isFinal(ws)) return finalOutcome(ws);
  if (ws.life.state === "paused") {
    // Never registered while paused (it would broadcast it online); the
    // resume registers it.
    logger.warn(
      "workspace {workspaceId} is paused on the platform: it is registered once it is resumed",
      { workspaceId: ws.id },
    );
    return "paused on the platform";
  }
  if (!answer?.exists && answer?.kind !== "online") {
    // No answer proves anything: beats go on, and the lookup is asked again.
    ws.reg.failures++;
    if (answer?.cors) {
      // No retry can help until the platform's side changes: slowly.
      const reason = answer.reason ?? "refused by the platform's CORS layer";
      noteAnswer(ws, 403, reason);
      fleet.troubled(
        "cors",
        ws,
        "error",
        "workspace {workspaceId} is not registered: asking the platform whether it exists failed: {reason}{cure}; asked again every {minutes} minutes",
        {
          workspaceId: ws.id,
          reason,
          cure: cureOf("cors", ws.platformUrl, fleet.options.origin),
          minutes: REGISTER_SLOW_RETRY_MS / 60_000,
        },
      );
      return failed(fleet, ws, {
        kind: "cors",
        status: 403,
        reason,
        retryInMs: REGISTER_SLOW_RETRY_MS,
      });
    }
    // The tenant guard's answer: no retry helps until the org id changes
    // (a restart), so it is said as an error and asked again slowly.
    const tenant = answer ? tenantCure(ws, answer) : "";
    const reason = `could not ask the platform whether the workspace exists (${
      answer?.reason ?? "no answer"
    })${tenant}`;
    const retryInMs = tenant
      ? REGISTER_SLOW_RETRY_MS
      : fleet.retryDelay(ws.reg.failures, undefined, 0, fleet.interval).delay;
    if (tenant) {
      fleet.troubled(
        "register",
        ws,
        "error",
        "workspace {workspaceId} is not registered: {reason}; heartbeats go on, it is asked again every {minutes} minutes",
        {
          workspaceId: ws.id,
          reason,
          minutes: REGISTER_SLOW_RETRY_MS / 60_000,
        },
      );
    } else if (!answer?.noToken) {
      // Said once per reason (the beats' own lines tell an outage's course).
      const message =
        "workspace {workspaceId} is not registered yet: {reason}; heartbeats go on, it is asked again in {retryInMs} ms";
      const properties = {
        workspaceId: ws.id,
        reason,
        retryInMs: Math.round(retryInMs),
      };
      if (ws.reg.lookupSaid === reason) logger.debug(message, properties);
      else fleet.troubled("register", ws, "warn", message, properties);
      ws.reg.lookupSaid = reason;
    }
    return failed(fleet, ws, { kind: "transient", reason, retryInMs });
  }
  let tried = await attempt(fleet, ws);
  // A refused token: another candidate (the store's, a new configured one),
  // if any, is tried at once.
  if (tried?.result.kind === "auth" && !fleet.stopped && !isFinal(ws)) {
    fleet.counters.registers.refused++;
    if (await onTokenRefused(fleet, ws, tried.used)) {
      tried = await attempt(fleet, ws);
      if (tried?.result.kind === "auth") fleet.counters.registers.refused++;
    }
  }
  const result = tried?.result;
  // An answer read after a stop, or after `ws` was removed, still hands
  // over a minted token: the one it replaced no longer works, so the next
  // run (or `ws` added again) needs it from the store.
  const gone = ws.life.state === "removed" || (fleet.stopped && !isFinal(ws));
  if (gone && result?.authToken) adoptIssuedToken(fleet, ws, result.authToken);
  if (!tried || !result || fleet.stopped || isFinal(ws)) {
    return "aborted"; // a removed workspace's answer is ignored (its token aside)
  }
  const r = ws.reg;
  if (result.kind === "auth") {
    // A register refused for its token (after every other candidate token was
    // tried). In context: if the token was seen to work, a warning and a slow
    // retry; else, the first time, a register again a few seconds later (one
    // 401 can be a blip); refused again, after the lookup that showed the
    // workspace, the reference's fatal rejection.
    const status = result.status!;
    const reason = `register refused with HTTP ${status}`;
    noteAnswer(ws, status, reason);
    // Another token came in use meanwhile (issued to a beat's register, or
    // the store's): try it at once.
    if (ws.token.current !== undefined && ws.token.current !== tried.used) {
      retryLater(fleet, ws, 0);
      return reason;
    }
    // The platform accepted the token in this run (a beat, or /state).
    if (ws.beats.accepted > 0 || ws.ask.tokenAccepted || r.accepted) {
      logger.warn(
        "register of workspace {workspaceId} was refused with HTTP {status}, although the platform accepted its token before: " +
          "it keeps being served (heartbeats go on), and register is retried in {minutes} minutes",
        {
          workspaceId: ws.id,
          status,
          minutes: REGISTER_SLOW_RETRY_MS / 60_000,
        },
      );
      return failed(fleet, ws, {
        kind: "auth",
        status,
        reason,
        retryInMs: REGISTER_SLOW_RETRY_MS,
      });
    }
    const now = fleet.elapsed();
    if (r.refusedAt === undefined || now - r.refusedAt < AUTH_CONFIRM_MS) {
      // One refusal is no verdict: again in a few seconds, after a lookup
      // (the token store and the configured source are read again then).
      r.refusedAt ??= now;
      fleet.troubled(
        "auth",
        ws,
        "warn",
        "register of workspace {workspaceId} was refused with HTTP {status}: the token may be invalid; " +
          "confirming in {seconds} s (one refusal can be a blip on the platform)",
        { workspaceId: ws.id, status, seconds: AUTH_CONFIRM_MS / 1000 },
      );
      retryLater(fleet, ws, r.refusedAt + AUTH_CONFIRM_MS - now);
      return "pending";
    }
    // Refused again, a few seconds on, with the workspace shown to exist
    // by the lookup just before: the token is refused.
    if (!moveTo(fleet, ws, "rejected")) return reason;
    ws.life.rejectedFor = "token";
    fleet.troubled(
      "auth",
      ws,
      "error",
      "register rejected with HTTP {status}: the token is invalid for workspace {workspaceId} (the platform says the workspace exists; refused again {seconds} s later). " +
        "Regenerate it from the canvas → Tokens tab. This workspace is no longer served.",
      {
        status,
        workspaceId: ws.id,
        seconds: Math.round((now - r.refusedAt!) / 1000),
      },
    );
    fleet.emit("rejected", { workspaceId: ws.id, status, reason: "token" });
    return "rejected";
  }
  if (result.kind === "ok") {
    fleet.counters.registers.accepted++;
    fleet.budget.accepted();
    const again = r.accepted;
    r.accepted = true;
    r.lookupSaid = undefined;
    r.failures = 0;
    r.refusedAt = undefined;
    noteAnswer(ws, result.status, null);
    if (result.authToken) {
      // A removed workspace is minted a token that never works: it is
      // used at once (the token it replaces is dead), but stored only once
      // a lookup shows the workspace is still there (stopped: no lookup
      // said removed).
      const kept = () => ws.life.state !== "deleted";
      const keep = raceSignal(ask(fleet, ws, "minted"), fleet.abort.signal)
        .then(kept, kept);
      adoptIssuedToken(fleet, ws, result.authToken, keep);
    }
    logger.info(
      again
        ? "registered workspace {workspaceId} with the platform again"
        : "registered workspace {workspaceId} with the platform",
      { workspaceId: ws.id },
    );
    // The token it minted, when it is now in use (one that cannot be sent
    // is ignored, and no save of it is awaited).
    const minted = result.authToken;
    fleet.emit("registered", {
      workspaceId: ws.id,
      status: result.status!,
      ...(minted && ws.token.current === minted ? { authToken: minted } : {}),
    });
    offerSecret(fleet, ws, result.inboundSecret);
    // A 200 does not prove a paused or removed workspace live (the platform
    // answers it and changes nothing): only /state moves a paused one.
    if (ws.life.state === "registering") moveTo(fleet, ws, servedState(ws));
    return "ok";
  }
  r.failures++;
  noteAnswer(ws, result.status, result.reason);
  const { kind, status, reason } = result;
  fleet.counters.registers[kind === "rejected" ? "refused" : "failed"]++;
  let retryInMs: number;
  if (kind === "rejected") {
    // 400, 409, a 403 with the platform's error: the request is wrong as it
    // is; resending it cannot help, and each failed register marks the
    // workspace "register failed" on the platform. Beats go on (they carry
    // the card, which clears that mark).
    retryInMs = 0;
    r.gaveUp = true;
    logger.error(
      "register of workspace {workspaceId} was refused with HTTP {status}: {message}. " +
        "This is a configuration problem (the agent card, the delivery mode, the workspace), not a blip: " +
        "it is not tried again; heartbeats go on (a restart tries register again)",
      {
        workspaceId: ws.id,
        status: status ?? "(none)",
        message: result.platformMessage ?? reason,
      },
    );
  } else if (
    kind === "cors" || kind === "not-platform" || kind === "redirect"
  ) {
    // No token and no retry can help until the platform's side changes:
    // tried again slowly, and recovered without a restart.
    retryInMs = REGISTER_SLOW_RETRY_MS;
    fleet.troubled(
      failureReason(kind, status, reason),
      ws,
      "error",
      "register of workspace {workspaceId} failed: {reason}{cure}; register is retried every {minutes} minutes",
      {
        workspaceId: ws.id,
        reason,
        cure: cureOf(kind, ws.platformUrl, fleet.options.origin),
        minutes: REGISTER_SLOW_RETRY_MS / 60_000,
      },
    );
  } else {
    retryInMs = fleet.retryDelay(
      r.failures,
      status,
      result.answer?.retryAfterMs,
      fleet.interval,
    ).delay;
    fleet.troubled(
      "register",
      ws,
      "warn",
      "register of workspace {workspaceId} failed ({reason}); heartbeats go on, register is retried in {retryInMs} ms",
      { workspaceId: ws.id, reason, retryInMs },
    );
  }
  return failed(fleet, ws, { kind, status, reason, retryInMs });
}

/**
 * The cure of a lookup answered by the platform's tenant guard, `""` for
 * any other answer: the org header missing (a multi-tenant platform wants
 * `X-Molecule-Org-Id`), or the org id sent wrong.
 */
function tenantCure(ws: Runtime, answer: Answer): string {
  const set = "(--org-id, MOLECULE_ORG_ID or the orgId option)";
  if (answer.tenantGuard === "org-missing") {
    return ws.config.platformUrl?.trim()
      ? `. The platform at ${ws.platformUrl} is multi-tenant (its tenant guard wants X-Molecule-Org-Id), and the org id is never sent to a workspace's own platform_url: serve this workspace from a run whose PLATFORM_URL is ${ws.platformUrl}, with the org id set ${set}`
      : `. The platform is multi-tenant: its tenant guard wants X-Molecule-Org-Id, the org's UUID; set the org id ${set}`;
  }
  if (answer.tenantGuard === "org-wrong") {
    return `. A bare 404 is the tenant guard's answer to a wrong org id: check that the org id ${set} is the UUID of this platform's org`;
  }
  return "";
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
