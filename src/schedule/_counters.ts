/**
 * The fleet's counters since start (internal): what `metrics()` reports.
 * Every count only grows; one owner (the fleet) holds them.
 *
 * @module
 */
import type { BeatFailureReason, HeartbeatMetrics } from "./types.ts";

/** Upper bounds of the beat-duration histogram's buckets, in seconds (5 ms to 10 s). */
export const BEAT_DURATION_BOUNDS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** The counters a fleet keeps: `metrics()`'s counts, in its shape. */
export type Counters = ReturnType<typeof newCounters>;

/** Counters at zero. */
export function newCounters() {
  return {
    beats: { accepted: 0, refused: 0, failed: 0, skipped: 0 },
    beatFailures: {
      timeout: 0,
      network: 0,
      http_4xx: 0,
      http_5xx: 0,
      rate_limited: 0,
      auth: 0,
      redirect: 0,
      cors: 0,
      not_platform: 0,
    },
    beatDuration: {
      bounds: BEAT_DURATION_BOUNDS,
      /** Per bucket (not cumulative); one more than the bounds, for +Inf. */
      counts: new Array<number>(BEAT_DURATION_BOUNDS.length + 1).fill(0),
      sum: 0,
      count: 0,
    },
    registers: { accepted: 0, refused: 0, failed: 0 },
    authEscalations: 0,
  };
}

/** The figures `metrics()` reports: a copy of the counters, and the gauges (what it reports of now). */
export function metricsOf(
  c: Counters,
  gauges: Omit<HeartbeatMetrics, keyof Counters>,
): HeartbeatMetrics {
  return { ...structuredClone(c), ...gauges };
}

/**
 * The figures before a heartbeat exists (the command's health port is
 * bound first): nothing counted, every workspace still registering.
 */
export function startingMetrics(workspaces: number): HeartbeatMetrics {
  return metricsOf(newCounters(), {
    requestsInFlight: 0,
    workspaces: byPhase(workspaces),
    oldestAcceptedBeatAgeSeconds: 0,
    retryBudgetTokens: 0,
    unarmed: 0,
    stopped: false,
  });
}

/** `metrics()`'s workspaces by phase, at zero but for `registering`. */
export function byPhase(registering = 0): HeartbeatMetrics["workspaces"] {
  return {
    beating: 0,
    registering,
    paused: 0,
    deleted: 0,
    rejected: 0,
  };
}

/** Counts one beat request's duration, in ms. */
export function observeBeatDuration(counters: Counters, ms: number): void {
  const seconds = Math.max(0, ms) / 1000;
  const i = BEAT_DURATION_BOUNDS.findIndex((bound) => seconds <= bound);
  const d = counters.beatDuration;
  d.counts[i === -1 ? BEAT_DURATION_BOUNDS.length : i]++;
  d.sum += seconds;
  d.count++;
}

/**
 * The reason label of a failed request: what `beatFailures` counts it under.
 *
 * @param kind The outcome's kind.
 * @param status The HTTP status, when there was an answer.
 * @param reason The outcome's reason (a timeout says so).
 */
export function failureReason(
  kind: string,
  status: number | undefined,
  reason: string,
): BeatFailureReason {
  if (kind === "auth") return "auth";
  if (kind === "cors") return "cors";
  if (kind === "not-platform") return "not_platform";
  if (kind === "redirect") return "redirect";
  if (status === 429) return "rate_limited";
  if (status !== undefined && status >= 500) return "http_5xx";
  if (status !== undefined) return "http_4xx";
  return /timed out/i.test(reason) ? "timeout" : "network";
}
