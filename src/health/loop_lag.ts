/**
 * How late the event loop runs a timer: the liveness probe's measure of a
 * process that still answers but no longer keeps time.
 *
 * @module
 */
import { clearTimeout, setTimeout } from "node:timers";

/** Options of {@link startLoopLagMonitor}. */
export interface LoopLagOptions {
  /** Time between two measurements, in ms. @default {500} */
  intervalMs?: number;
  /** How far back {@link LoopLagMonitor.lagMs} looks, in ms. @default {10000} */
  windowMs?: number;
  /** Milliseconds on a monotonic clock. @default {performance.now} */
  now?: () => number;
}

/** A running monitor; see {@link startLoopLagMonitor}. */
export interface LoopLagMonitor {
  /**
   * The largest lateness seen in the window, in ms, counting a measurement
   * that is overdue right now.
   */
  lagMs(): number;
  /** Stops measuring. */
  stop(): void;
}

/**
 * Measures the event loop's lag: a timer is armed every `intervalMs` and
 * how late it fires is kept for `windowMs`. The timer does not keep the
 * process alive.
 *
 * @example
 * ```ts
 * import { startLoopLagMonitor } from "./loop_lag.ts";
 * const monitor = startLoopLagMonitor({ intervalMs: 10 });
 * await new Promise((r) => setTimeout(r, 50));
 * console.log(monitor.lagMs() < 1000); // true
 * monitor.stop();
 * ```
 *
 * @param options Interval, window and clock.
 * @returns The monitor.
 */
export function startLoopLagMonitor(
  options: LoopLagOptions = {},
): LoopLagMonitor {
  const intervalMs = options.intervalMs ?? 500;
  const windowMs = options.windowMs ?? 10_000;
  const now = options.now ?? (() => performance.now());
  // The measurements in the window: when each was taken and its lateness.
  let seen: { at: number; late: number }[] = [];
  let due = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    due = now() + intervalMs;
    timer = setTimeout(() => {
      const t = now();
      seen = seen.filter((s) => t - s.at <= windowMs);
      seen.push({ at: t, late: Math.max(0, t - due) });
      arm();
    }, intervalMs);
    timer.unref();
  };
  arm();

  return {
    lagMs() {
      const t = now();
      return seen.reduce(
        (max, s) => t - s.at <= windowMs && s.late > max ? s.late : max,
        Math.max(0, t - due),
      );
    },
    stop: () => clearTimeout(timer),
  };
}
