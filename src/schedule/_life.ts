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
import type { Fleet } from "./_fleet.ts";
import { logger } from "../shared/_logger.ts";
import { nextSlot } from "./_slots.ts";
import type { Runtime } from "./_workspace_runtime.ts";
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
          fleet.parts.ask(ws, "paused");
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

/** Arms `ws`'s first beat, at its anchor. */
export function armFirstBeat(fleet: Fleet, ws: Runtime): void {
  if (isServed(ws) && !fleet.stopped) armBeat(fleet, ws, ws.anchor, false);
}

/**
 * Brings `ws`'s next beat forward to `due` (after a wake); one under way
 * is followed by another at once.
 */
function beatSoon(fleet: Fleet, ws: Runtime, due: number): void {
  const s = ws.sched;
  if (fleet.stopped || !isServed(ws) || s.waiting) return;
  if (s.inFlight) {
    s.woke = true;
    return;
  }
  if (!s.timer || s.timer.due > due) armBeat(fleet, ws, due, false);
}

/** Whether `ws` is served with nothing armed: 0 of these while the scheduler works. */
export function isUnarmed(fleet: Fleet, ws: Runtime): boolean {
  const s = ws.sched;
  return !fleet.stopped && isServed(ws) && !s.timer && !s.inFlight &&
    !s.waiting;
}

/** The one place a beat is armed. */
function armBeat(fleet: Fleet, ws: Runtime, due: number, retry: boolean) {
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
  const now = fleet.clock.now();
  if (s.waiting) {
    // Still in the queue since an earlier slot: this one is skipped too.
    skip(fleet, ws);
    armBeat(fleet, ws, nextSlot(ws.anchor, fleet.interval, now, now), false);
    return;
  }
  if (fleet.cap.tryTake()) return startBeat(fleet, ws);
  // The cap is full: first in line for a free slot (before any beat due
  // later), and the grid slot after this one armed, which counts another
  // skip if the wait lasts that long.
  skip(fleet, ws);
  s.waiting = true;
  armBeat(
    fleet,
    ws,
    nextSlot(ws.anchor, fleet.interval, now, now),
    s.retrying,
  );
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
  served.forEach((ws, i) =>
    beatSoon(fleet, ws, now + Math.floor((i * spread) / n))
  );
}
