/**
 * A workspace's life and its schedule (internal): the states, the moves
 * between them, and the timers each state keeps armed. The one owner of
 * every workspace's `life` and `sched` books:
 *
 * - {@link moveTo} is the only way a state changes, and only along
 *   {@link NEXT};
 * - {@link reconcile} arms what a state needs and cancels the rest: a
 *   served workspace has exactly one of a beat armed, a beat waiting for a
 *   slot under the cap, or a beat under way; a paused one has a state check
 *   armed (or a question under way); a final one has nothing;
 * - a beat starts only here (when its timer fires with a slot free, or when
 *   a slot frees for it), and every way out of a beat (an answer, a
 *   timeout, a throw, a stop, its workspace paused or removed meanwhile)
 *   goes through {@link finishBeat}, which reschedules or retires it.
 *
 * ```
 *   registering ──register accepted──▶ beating ◀──beat accepted── backing-off
 *        │                               │ ──────beat failed──────▶  │
 *        ├──token refused, never accepted──▶ rejected                │
 *        └──────────────┬────────────────┴───────────────────────────┘
 *                       ├──/state: paused──▶ paused ──/state: live──▶ (back)
 *                       ├──/state or GET /workspaces/:id: gone──▶ deleted
 *                       └──removeWorkspace──▶ removed
 * ```
 *
 * @module
 */
import type { AskWhy, Fleet } from "./_fleet.ts";
import { logger } from "../shared/_logger.ts";
import {
  fetchWorkspaceState,
  type WorkspaceStateKind,
} from "../platform/workspace_state.ts";
import { lookupWorkspace } from "../platform/workspace_lookup.ts";
import { nextSlot } from "./_slots.ts";
import { tokenFor } from "./_token_keeper.ts";
import { noteAnswer, type Runtime } from "./_workspace_runtime.ts";
import type { WorkspacePhase as LifeState } from "./types.ts";

/** The moves each state allows; the final states allow none but `removed`. */
export const NEXT: Readonly<Record<LifeState, readonly LifeState[]>> = {
  registering: [
    "beating",
    "backing-off",
    "paused",
    "deleted",
    "rejected",
    "removed",
  ],
  beating: ["backing-off", "paused", "deleted", "removed"],
  "backing-off": ["beating", "paused", "deleted", "removed"],
  paused: ["registering", "beating", "backing-off", "deleted", "removed"],
  deleted: ["removed"],
  rejected: ["removed"],
  removed: [],
};

/** Whether `ws` is to beat: registering, beating or backing off. */
export function isServed(ws: Runtime): boolean {
  const state = ws.life.state;
  return state === "registering" || state === "beating" ||
    state === "backing-off";
}

/** Whether `ws` is gone for good: deleted, rejected or removed. */
export function isFinal(ws: Runtime): boolean {
  const state = ws.life.state;
  return state === "deleted" || state === "rejected" || state === "removed";
}

/**
 * Moves `ws` to `to`, if its state allows it, and arms what `to` needs.
 *
 * @returns Whether `ws` is now in `to`.
 */
export function moveTo(fleet: Fleet, ws: Runtime, to: LifeState): boolean {
  const from = ws.life.state;
  if (from === to) return true;
  if (!NEXT[from].includes(to)) {
    logger.debug("workspace {workspaceId} stays {from} (not {to})", {
      workspaceId: ws.id,
      from,
      to,
    });
    return false;
  }
  ws.life.state = to;
  reconcile(fleet, ws);
  return true;
}

/**
 * The served state `ws` is in when it beats (again, after a resume; or
 * after a beat's outcome, its failures in a row counted).
 */
export function servedState(ws: Runtime): LifeState {
  if (!ws.reg.accepted) return "registering";
  return ws.beats.consecutiveFailures > 0 ? "backing-off" : "beating";
}

/**
 * Arms what `ws`'s state needs, cancels what it does not: the schedule's
 * invariant (see the module doc). Safe to call at any time.
 */
export function reconcile(fleet: Fleet, ws: Runtime): void {
  const s = ws.sched;
  if (fleet.stopped || isFinal(ws)) {
    cancel(fleet, s, "timer");
    cancel(fleet, s, "checkTimer");
    s.waiting = false;
    return;
  }
  if (ws.life.state === "paused") {
    cancel(fleet, s, "timer");
    s.waiting = false;
    if (!s.checkTimer && !ws.ask.current) {
      s.checkTimer = fleet.queue.at(
        fleet.clock.now() + fleet.pausedCheckMs,
        () => {
          s.checkTimer = undefined;
          ask(fleet, ws, "paused");
        },
      );
    }
    return;
  }
  cancel(fleet, s, "checkTimer");
  if (!s.inFlight && !s.timer && !s.waiting) {
    armBeat(fleet, ws, fleet.clock.now(), false);
  }
}

/** The one place a beat is armed (its first, at its anchor, by the handle). */
export function armBeat(
  fleet: Fleet,
  ws: Runtime,
  due: number,
  retry: boolean,
): void {
  const s = ws.sched;
  if (s.timer) fleet.queue.cancel(s.timer);
  s.retrying = retry;
  s.timer = fleet.queue.at(due, () => beatDue(fleet, ws));
}

/** Cancels a workspace's armed beat (`timer`) or paused check (`checkTimer`). */
function cancel(
  fleet: Fleet,
  s: Runtime["sched"],
  which: "timer" | "checkTimer",
): void {
  const timer = s[which];
  if (timer) fleet.queue.cancel(timer);
  s[which] = undefined;
}

/** A beat's timer fired: send it, or, the cap full, wait for the next free slot. */
function beatDue(fleet: Fleet, ws: Runtime): void {
  const s = ws.sched;
  s.timer = undefined;
  if (fleet.stopped || !isServed(ws) || s.inFlight) return;
  if (!s.waiting && fleet.cap.tryTake()) return startBeat(fleet, ws);
  // The cap is full: first in line for a free slot (before any beat due
  // later), and the grid slot after this one armed, which counts another
  // skip if the wait lasts that long. (Still in line since an earlier
  // slot: this one is skipped too.)
  skip(fleet, ws);
  const now = fleet.clock.now();
  const next = nextSlot(ws.anchor, fleet.interval, now, now);
  armBeat(fleet, ws, next, !s.waiting && s.retrying);
  if (s.waiting) return;
  s.waiting = true;
  fleet.cap.wait(() => {
    if (!s.waiting) return false;
    s.waiting = false;
    if (fleet.stopped || !isServed(ws) || s.inFlight) return false;
    cancel(fleet, s, "timer");
    startBeat(fleet, ws);
    return true;
  });
}

/** Starts a beat of `ws`, which holds a slot; it ends in {@link finishBeat}. */
function startBeat(fleet: Fleet, ws: Runtime): void {
  const s = ws.sched;
  s.inFlight = true;
  s.sentAt = fleet.clock.now();
  if (!s.retrying) fleet.budget.earn();
  void fleet.track(
    fleet.parts.beat(ws).then(
      (next) => finishBeat(fleet, ws, next),
      (error) => {
        logger.error(
          "internal error in a beat of {workspaceId}: {error}; its schedule goes on",
          { workspaceId: ws.id, error },
        );
        finishBeat(fleet, ws, undefined);
      },
    ),
  );
}

/**
 * Every beat ends here, whatever happened: the slot goes back (to the
 * longest waiter), then the next beat is armed, or the workspace retired
 * if it is no longer served. Without a decision (a throw, a stop) the next
 * beat is its next grid slot.
 */
function finishBeat(
  fleet: Fleet,
  ws: Runtime,
  next: { due: number; retry: boolean } | undefined,
): void {
  const s = ws.sched;
  s.inFlight = false;
  fleet.cap.release();
  if (fleet.stopped) return;
  if (!isServed(ws)) return reconcile(fleet, ws);
  if (s.timer || s.waiting) return;
  if (s.woke) {
    s.woke = false;
    return armBeat(fleet, ws, fleet.clock.now(), false);
  }
  if (next) return armBeat(fleet, ws, next.due, next.retry);
  const now = fleet.clock.now();
  armBeat(fleet, ws, nextSlot(ws.anchor, fleet.interval, s.sentAt, now), false);
}

function skip(fleet: Fleet, ws: Runtime): void {
  ws.sched.skipped++;
  fleet.counters.beats.skipped++;
  fleet.skippedSinceWarn++;
  const now = fleet.clock.now();
  if (now - fleet.skipWarnedAt < 10_000) return;
  logger.warn(
    "{count} beat(s) skipped: {inFlight} requests are in flight (the cap is {max}, registers may come on top); the platform is slow to answer (a skipped beat goes out at the next free slot)",
    {
      count: fleet.skippedSinceWarn,
      inFlight: fleet.cap.used,
      max: fleet.cap.max,
    },
  );
  fleet.skipWarnedAt = now;
  fleet.skippedSinceWarn = 0;
}

// Sleep and wake. Timers and `performance.now()` run on the monotonic
// clock, which stops while the machine is suspended: after a two-hour sleep
// the next beat would wait whatever was left of its interval, on a pooled
// connection that died meanwhile, while the workspace had long gone
// OFFLINE. So a watchdog compares the wall clock with the monotonic one
// every WATCHDOG_MS: when the wall clock ran ahead by more than
// SLEEP_JUMP_MS, the machine slept. Then the time slept counts into every
// "since" (the stale window, `status()`), new connections are used from
// now on, and every workspace beats at once (spread over up to
// WAKE_SPREAD_MS for a fleet). No register: an accepted heartbeat alone
// brings a workspace the platform marked offline back `online`.

/** How often the clocks are compared, in ms. */
const WATCHDOG_MS = 2_000;
/** The wall clock running ahead of the monotonic one by more than this means a sleep, in ms. */
const SLEEP_JUMP_MS = 5_000;
/** A fleet's beats after a wake are spread over at most this, in ms. */
const WAKE_SPREAD_MS = 2_000;

/**
 * Starts the watchdog (ended by stop). On the system clock a look
 * allocates nothing of ours (one closure, the clocks' last readings in a
 * typed array) and runs on one runtime interval timer, which costs the
 * runtime far less garbage than a timeout armed anew every look (Deno:
 * about 0.6 KB a second against 3); with an injected clock, on the
 * fleet's timer queue.
 */
export function startWatchdog(fleet: Fleet): void {
  const injected = fleet.options.clock !== undefined;
  // An injected clock without a wall clock: the wall follows the clock, no
  // sleep is ever seen.
  if (injected && !fleet.options.wallClock) return;
  const last = new Float64Array([fleet.wall(), fleet.clock.now()]);
  const look = () => {
    const wall = fleet.wall();
    const mono = fleet.clock.now();
    const slept = (wall - last[0]) - (mono - last[1]);
    last[0] = wall;
    last[1] = mono;
    if (slept > SLEEP_JUMP_MS) woke(fleet, slept);
    if (injected) fleet.queue.at(mono + WATCHDOG_MS, look);
  };
  if (injected) fleet.queue.at(last[1] + WATCHDOG_MS, look);
  else {
    const interval = setInterval(look, WATCHDOG_MS);
    fleet.abort.signal.addEventListener("abort", () => clearInterval(interval));
  }
}

/** The machine slept for `slept` ms: see the module doc. */
export function woke(fleet: Fleet, slept: number): void {
  fleet.sleptMs += slept;
  const renewed = fleet.pool.renew(fleet.timeout * 2);
  const served = fleet.workspaces.filter(isServed);
  logger.warn(
    "the machine slept for {seconds} s: {count} workspace(s) beat now{fresh} (a workspace the platform marked offline after its {window} s stale window is back with its first accepted beat)",
    {
      seconds: Math.round(slept / 1000),
      count: served.length,
      fresh: renewed ? " on fresh connections" : "",
      window: Math.round(fleet.staleWindow / 1000),
    },
  );
  const now = fleet.clock.now();
  const n = served.length;
  const spread = n <= 1 ? 0 : Math.min(WAKE_SPREAD_MS, n * 10);
  // Each one's next beat brought forward; one under way is followed by
  // another at once.
  served.forEach((ws, i) => {
    const s = ws.sched;
    const due = now + Math.floor((i * spread) / n);
    if (s.waiting) return;
    if (s.inFlight) s.woke = true;
    else if (!s.timer || s.timer.due > due) armBeat(fleet, ws, due, false);
  });
}

// A workspace's lifecycle on the platform: the questions asked about it,
// and what their answers change (the owner of every workspace's `ask` book).
//
// Today's platform answers a deleted workspace's heartbeats 200 and its
// `/state` 401 (deletion revokes every token), so:
//
// - `/state` is asked now and then (every `statePollEvery` accepted beats,
//   at start with `checkStateAtStart`, and while paused at a low rate);
// - when `/state` or a beat is refused, `GET /workspaces/:id` (open) is
//   asked once: 410 or 404 is deleted; 200 is a token revoked on a live
//   workspace (the escalation then says so with certainty; and when its
//   beats are accepted, the workspace has no live token at all, so a
//   register gets it a new one); anything else proves nothing;
// - a 404 from `/state` is deleted only with `"deleted": true`.
//
// - before every register, the lookup alone: the platform's register is an
//   upsert that creates a workspace for an id it does not have (a typo, a
//   purged workspace), and answers a paused or removed one 200 with side
//   effects; only a workspace the lookup shows live is registered. A 400
//   `invalid workspace ID` there is a configuration error (ids are UUIDs).
//
// A question waits in the cap's queue when the cap is full (never dropped),
// at most one per workspace at a time. A workspace whose requests carry the
// org header (`X-Molecule-Org-Id`) first waits its turn on the fleet's org
// pacer: those requests share the org's one fixed rate window with every
// person of the org using the canvas, and the fleet keeps to its share.

/** What a question came to. */
export interface Answer {
  kind: WorkspaceStateKind;
  platformStatus?: string;
  /** The lookup said the workspace exists (a refused token is revoked). */
  exists?: boolean;
  /** Deleted: the lookup's 404 (purged, or an id the platform never had). */
  notFound?: boolean;
  /** The lookup's 400 `invalid workspace ID`: the id is malformed. */
  invalid?: boolean;
  /** Why nothing could be told, for logs. */
  reason?: string;
  /**
   * The HTTP status of a refused `/state`, or of a lookup that proved
   * nothing (what the platform said, for logs).
   */
  status?: number;
  /** Not asked: no token to register with (a late or failing token function). */
  noToken?: boolean;
  /** Refused by the platform's CORS layer: nothing could be told. */
  cors?: boolean;
  /** Refused by the platform's tenant guard (see `WorkspaceState`). */
  tenantGuard?: "org-missing" | "org-wrong";
  /**
   * As the question went out: the token in use (the issued or stored one),
   * and whether a register had been accepted. A refusal is out of date once
   * either changed. `sent`: the token `/state` went with.
   */
  asked?: { token: string | undefined; registered: boolean; sent?: string };
}

/** The questions that ask the lookup alone. */
const LOOKUP_ONLY: ReadonlySet<AskWhy> = new Set<AskWhy>([
  "refused",
  "register",
  "minted",
]);

/** The platform's statuses of a workspace that exists but is not to be served. */
const ASLEEP = new Set(["paused", "hibernated", "hibernating"]);

/**
 * Asks about `ws`: `/state` (then the lookup if it is refused), or for a
 * refused beat or register the lookup alone; the answer is acted on (see
 * {@link apply}). Queued under the cap; one question at a time per
 * workspace: asked again while one is queued or under way, the same one's
 * answer comes back.
 *
 * @returns The answer, once acted on; `undefined` when stopped or gone.
 */
export function ask(
  fleet: Fleet,
  ws: Runtime,
  why: AskWhy,
): Promise<Answer | undefined> {
  const book = ws.ask;
  const lookupOnly = LOOKUP_ONLY.has(why);
  if (book.current) {
    // A lookup under way does not answer for /state: asked after it.
    if (book.lookupOnly && !lookupOnly) {
      return book.current.then(() => ask(fleet, ws, why));
    }
    return book.current as Promise<Answer | undefined>;
  }
  if (fleet.stopped || isFinal(ws)) return Promise.resolve(undefined);
  let settle!: (answer: Answer | undefined) => void;
  const current = new Promise<Answer | undefined>((r) => settle = r);
  book.current = current;
  book.lookupOnly = lookupOnly;
  const end = (answer: Answer | undefined) => {
    book.current = undefined;
    settle(answer);
  };
  const run = () => {
    void fleet.track(
      question(fleet, ws, why).then(
        (answer) => {
          if (answer && !fleet.stopped) apply(fleet, ws, answer, why);
          return answer;
        },
        (error) => {
          logger.error(
            "internal error in a question about {workspaceId}: {error}",
            { workspaceId: ws.id, error },
          );
          return undefined;
        },
      ).then((answer) => {
        end(answer);
        fleet.cap.release();
        reconcile(fleet, ws); // a paused one's next check
      }),
    );
  };
  // With a slot under the cap (or not wanted any more): run; `false` when
  // no longer wanted.
  const go = () => {
    const wanted = !fleet.stopped && !isFinal(ws);
    if (wanted) run();
    else end(undefined);
    return wanted;
  };
  const take = () => {
    if (fleet.stopped || isFinal(ws) || fleet.cap.tryTake()) go();
    else fleet.cap.wait(go);
  };
  // The org's window: an org-keyed question waits for its turn on the
  // pacer (a stop clears the timer and ends every wait on this answer).
  const at = ws.orgId === undefined ? -Infinity : fleet.orgReserve();
  if (at <= fleet.clock.now()) take();
  else fleet.queue.at(at, take);
  return current;
}

/** The question itself; `undefined` when stopped meanwhile. */
async function question(
  fleet: Fleet,
  ws: Runtime,
  why: AskWhy,
): Promise<Answer | undefined> {
  const deadline = fleet.deadlines.join(fleet.clock.now());
  const signal = deadline.controller.signal;
  const lookupOnly = LOOKUP_ONLY.has(why);
  const asked: NonNullable<Answer["asked"]> = {
    token: ws.token.current,
    registered: ws.reg.accepted,
  };
  try {
    const token = await tokenFor(fleet, ws, signal);
    // No token, no register: its lookup would be for nothing (the token
    // keeper says once why there is none).
    if (why === "register" && token.kind !== "ok") {
      return {
        kind: "unknown",
        reason: token.reason,
        noToken: true,
      };
    }
    let kind: WorkspaceStateKind = "unknown";
    let platformStatus: string | undefined;
    let status: number | undefined;
    if (!lookupOnly) {
      if (token.kind !== "ok") return { kind: "unknown", reason: token.reason };
      const state = await fetchWorkspaceState({
        ...fleet.wire(ws),
        workspaceId: ws.id,
        token: token.token,
        orgId: ws.orgId,
        signal,
      });
      if (ws.orgId !== undefined) fleet.orgLimitSeen(state.rateLimit);
      if (state.status === 429) fleet.noteRateLimited(ws, undefined);
      kind = state.kind;
      platformStatus = state.platformStatus;
      status = state.status;
      asked.sent = token.token;
      if (kind !== "auth") {
        return { kind, platformStatus, reason: state.reason, cors: state.cors };
      }
      // The lookup is an org-keyed request too: it takes its own turn.
      if (ws.orgId !== undefined) fleet.orgReserve();
    }
    const found = await lookupWorkspace({
      ...fleet.wire(ws),
      workspaceId: ws.id,
      // Not needed, but without the org header it keys the rate limiter's
      // bucket on this workspace rather than on the address of the fleet.
      token: token.kind === "ok" ? token.token : undefined,
      orgId: ws.orgId,
      signal,
    });
    if (ws.orgId !== undefined) fleet.orgLimitSeen(found.rateLimit);
    if (found.status === 429) fleet.noteRateLimited(ws, undefined);
    platformStatus = found.platformStatus;
    switch (found.kind) {
      case "deleted":
        return {
          kind: "deleted",
          platformStatus,
          notFound: found.status === 404,
        };
      case "invalid":
        return { kind: "unknown", invalid: true };
      case "exists":
        if (why === "register" || why === "minted") {
          return {
            kind: ASLEEP.has(platformStatus ?? "") ? "paused" : "online",
            platformStatus,
            exists: true,
          };
        }
        return { kind: "auth", platformStatus, exists: true, asked, status };
    }
    // The lookup proves nothing: a refused /state stays a refusal.
    return {
      kind: lookupOnly ? "unknown" : kind,
      platformStatus,
      reason: found.reason ?? `HTTP ${found.status}`,
      status: found.status,
      cors: found.cors,
      tenantGuard: found.tenantGuard,
    };
  } catch (error) {
    if (fleet.stopped) return undefined;
    throw error;
  } finally {
    fleet.deadlines.leave(deadline);
  }
}

/** Acts on an answer, then emits the `state` event. */
function apply(
  fleet: Fleet,
  ws: Runtime,
  answer: Answer,
  why: AskWhy,
): void {
  if (isFinal(ws)) return;
  const book = ws.ask;
  const platformStatus = answer.platformStatus;
  if (answer.invalid) return invalidId(fleet, ws);
  // A refusal of a token replaced meanwhile (a register minted one, a
  // refused beat switched to the stored one), or from before a register
  // was accepted, is out of date: dropped, as a refused beat is then.
  const asked = answer.asked;
  if (
    asked &&
    (asked.token !== ws.token.current || (!asked.registered && ws.reg.accepted))
  ) {
    logger.debug(
      "a refusal of {workspaceId}'s token from before its token changed or a register was accepted: dropped, asked again",
      { workspaceId: ws.id },
    );
    // Asked again with the token in use now (`--once` waits for an
    // answer), once this question has ended.
    fleet.queue.at(fleet.clock.now(), () => void ask(fleet, ws, why));
    return;
  }
  book.lastState = answer.kind;
  if (
    !LOOKUP_ONLY.has(why) &&
    (answer.kind === "paused" || answer.kind === "online")
  ) {
    book.tokenAccepted = true;
    book.authConfirmed = false;
    book.refusalRegister = undefined;
  }
  switch (answer.kind) {
    case "deleted": {
      // The platform says `ws` was deleted (or, never accepted in this run,
      // that it has no workspace of that id): it is no longer served.
      if (!moveTo(fleet, ws, "deleted")) break;
      // (A heartbeat of an id the platform does not have is let through: its
      // 200 proves nothing.)
      const never = !ws.reg.accepted && !ws.ask.tokenAccepted;
      const source = ws.config.idSource ?? "the workspace id";
      if (answer.notFound && never) {
        noteAnswer(
          ws,
          undefined,
          "not found on the platform (deleted, or a wrong id)",
        );
        logger.error(
          "workspace {workspaceId} is not on the platform (GET /workspaces/:id: workspace not found): it was deleted, or the id is wrong (check {source}). " +
            "Nothing was registered; it is no longer served. A deleted workspace cannot come back: create a new one in the canvas and use its id and token.",
          { workspaceId: ws.id, source },
        );
      } else {
        noteAnswer(ws, undefined, "deleted on the platform");
        logger.error(
          "workspace {workspaceId} was deleted on the platform: it is no longer served. " +
            "Create a new workspace in the canvas and use its id and token.",
          { workspaceId: ws.id },
        );
      }
      fleet.emit("deleted", {
        workspaceId: ws.id,
        ...(platformStatus ? { platformStatus } : {}),
        ...(answer.notFound && never ? { notFound: true } : {}),
      });
      break;
    }
    case "paused":
      if (ws.life.state !== "paused" && moveTo(fleet, ws, "paused")) {
        logger.warn(
          "workspace {workspaceId} is paused on the platform: heartbeats stop until it is resumed (its state is checked every {seconds} s)",
          {
            workspaceId: ws.id,
            seconds: Math.round(fleet.pausedCheckMs / 1000),
          },
        );
        fleet.emit("paused", { workspaceId: ws.id });
      }
      break;
    case "online":
      // Resumed: its beats go on.
      if (ws.life.state !== "paused") break;
      if (!moveTo(fleet, ws, servedState(ws))) break;
      // Never registered (it was paused when looked up): now it may be.
      if (!ws.reg.accepted && !ws.reg.gaveUp) fleet.parts.register(ws);
      logger.warn("workspace {workspaceId} was resumed: heartbeats go on", {
        workspaceId: ws.id,
      });
      fleet.emit("resumed", { workspaceId: ws.id });
      break;
    case "auth":
      if (answer.exists) {
        book.authConfirmed = true;
        if (why !== "refused" && ws.beats.consecutiveFailures === 0) {
          refusedWhileBeating(fleet, ws, answer);
        }
      }
      break;
  }
  fleet.emit("state", {
    workspaceId: ws.id,
    kind: answer.kind,
    ...(platformStatus ? { platformStatus } : {}),
  });
}

/**
 * `/state` refused the token while the beats are accepted: the workspace
 * may have no live token at all (its tokens were revoked in a cleanup, and
 * the registry calls are let through), and a register gets it a new one.
 * A register has side effects (it forces a degraded workspace `online` and
 * broadcasts it), so one is sent per token: refused again with the same
 * token once that register is over (it minted nothing), it is said once,
 * and the beats go on without further registers.
 */
function refusedWhileBeating(fleet: Fleet, ws: Runtime, answer: Answer): void {
  const token = answer.asked?.sent;
  const last = ws.ask.refusalRegister;
  if (!last || last.token !== token) {
    ws.ask.refusalRegister = { token, said: false };
    return fleet.parts.register(ws);
  }
  if (last.said || ws.reg.wanted || ws.reg.timer) return;
  last.said = true;
  const status = answer.status;
  logger.warn(
    "workspace {workspaceId}: GET /workspaces/:id/state keeps refusing its token (HTTP {status}{what}) while its heartbeats are accepted, and a register minted no new token: " +
      "a pause on the platform goes unseen (a deletion is still noticed). {check}. Heartbeats go on; no further register is sent for this token (said once)",
    {
      workspaceId: ws.id,
      status: status ?? "(none)",
      what: status === 403
        ? ", the platform's answer to an org token of another org"
        : "",
      check: status === 403
        ? "Use this workspace's own token (canvas → Tokens tab), or an org token of its org"
        : `Check that the token (from ${
          ws.config.tokenSource ?? "MOLECULE_WORKSPACE_TOKEN or the token file"
        }) is this workspace's; if it goes on, regenerate it from the canvas → Tokens tab`,
    },
  );
}

/**
 * The platform refuses `ws`'s id as malformed (its ids are UUIDs; any
 * other id is answered 500 by every register and heartbeat, forever): a
 * configuration error; it is no longer served.
 */
function invalidId(fleet: Fleet, ws: Runtime): void {
  if (!moveTo(fleet, ws, "rejected")) return;
  ws.life.rejectedFor = "id";
  const reason = "the platform refuses the id: workspace ids are UUIDs";
  noteAnswer(ws, 400, reason);
  logger.error(
    "workspace id {workspaceId} is refused by the platform (GET /workspaces/:id: 400 invalid workspace ID): " +
      "workspace ids are UUIDs, such as 3f9c2a4e-8b1d-4c6e-9a7f-1e2d3c4b5a60. Check {source}; this workspace is no longer served.",
    { workspaceId: ws.id, source: ws.config.idSource ?? "the workspace id" },
  );
  fleet.emit("rejected", { workspaceId: ws.id, status: 400, reason: "id" });
}
