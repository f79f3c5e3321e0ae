/**
 * Sleep and wake (internal). Timers and `performance.now()` run on the
 * monotonic clock, which stops while the machine is suspended: after a
 * two-hour sleep the next beat would wait whatever was left of its
 * interval, on a pooled connection that died meanwhile, while the
 * workspace had long gone OFFLINE. So a watchdog compares the wall clock
 * with the monotonic one every {@link WATCHDOG_MS}: when the wall clock ran
 * ahead by more than {@link SLEEP_JUMP_MS}, the machine slept. Then the
 * time slept counts into every "since" (the stale window, `status()`), new
 * connections are used from now on, and every workspace beats at once
 * (spread over up to {@link WAKE_SPREAD_MS} for a fleet); a beat whose
 * last acceptance is older than the stale window registers beside it.
 *
 * @module
 */
import type { Fleet } from "./_fleet.ts";
import { beatSoon, isServed } from "./_life.ts";
import { logger } from "../shared/_logger.ts";

/** How often the clocks are compared, in ms. */
export const WATCHDOG_MS = 2_000;
/** The wall clock running ahead of the monotonic one by more than this means a sleep, in ms. */
export const SLEEP_JUMP_MS = 5_000;
/** A fleet's beats after a wake are spread over at most this, in ms. */
export const WAKE_SPREAD_MS = 2_000;

/** Starts the watchdog on the fleet's timer queue (cleared on stop). */
export function startWatchdog(fleet: Fleet): void {
  if (!fleet.wallIndependent) return; // the wall follows the clock: no sleep is ever seen
  let wall = fleet.wall();
  let mono = fleet.clock.now();
  const check = () => {
    if (fleet.stopped) return;
    const nowWall = fleet.wall();
    const nowMono = fleet.clock.now();
    const slept = (nowWall - wall) - (nowMono - mono);
    wall = nowWall;
    mono = nowMono;
    if (slept > SLEEP_JUMP_MS) woke(fleet, slept);
    fleet.queue.at(fleet.clock.now() + WATCHDOG_MS, check);
  };
  fleet.queue.at(mono + WATCHDOG_MS, check);
}

/** The machine slept for `slept` ms: see the module doc. */
export function woke(fleet: Fleet, slept: number): void {
  fleet.sleptMs += slept;
  const renewed = fleet.pool.renew(fleet.timeout * 2);
  const served = fleet.workspaces.filter(isServed);
  logger.warn(
    "the machine slept for {seconds} s: {count} workspace(s) beat now{fresh}, and register again where the gap passed the {window} s stale window",
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
