/**
 * Fixed-rate schedule arithmetic: beat k of a workspace is due at
 * `anchor + k × interval`, whatever each request took.
 *
 * @module
 */

/**
 * Offset of workspace `index` among `count`, so that their beats spread
 * evenly over one interval instead of firing in one burst. With a
 * `groupSize` above 1 the workspaces share `ceil(count / groupSize)` evenly
 * spaced offsets, at most `groupSize` (and as evenly as possible) on each,
 * so that one timer wake-up sends a group of beats: fewer wake-ups, less CPU
 * per beat. A lone workspace has offset 0.
 *
 * @example
 * ```ts
 * import { phaseOffset } from "./_slots.ts";
 * phaseOffset(1, 4, 20_000); // 5000
 * phaseOffset(1, 4, 20_000, 2); // 10000: two groups of two, 10 s apart
 * phaseOffset(2, 4, 20_000, 2); // 0: in the first group with workspace 0
 * ```
 *
 * @param index The workspace's position, 0-based.
 * @param count How many workspaces share the interval.
 * @param intervalMs The interval in ms.
 * @param groupSize How many beats may share one offset. @default {1}
 * @returns The offset in whole ms, in [0, intervalMs).
 */
export function phaseOffset(
  index: number,
  count: number,
  intervalMs: number,
  groupSize = 1,
): number {
  const slots = Math.ceil(count / Math.max(1, Math.floor(groupSize)));
  return slots <= 1 ? 0 : Math.floor(((index % slots) * intervalMs) / slots);
}

/**
 * The next beat's due time after a beat sent at `sentAt` that finished at
 * `now`: the first slot of the grid `anchor + k × interval` that is after
 * `now` and at least half an interval after `sentAt`. Slots missed while the
 * machine slept are skipped, not made up in a burst, and a late beat is not
 * followed by another a moment later.
 *
 * @example
 * ```ts
 * import { nextSlot } from "./_slots.ts";
 * nextSlot(0, 20_000, 0, 35); // 20000: the request time does not add up
 * nextSlot(0, 20_000, 119_000, 119_040); // 140000: a late beat, then back on the grid
 * ```
 *
 * @param anchor Due time of beat 0.
 * @param intervalMs The interval in ms.
 * @param sentAt When the last beat was sent.
 * @param now When it finished.
 * @returns The next due time, on the same clock.
 */
export function nextSlot(
  anchor: number,
  intervalMs: number,
  sentAt: number,
  now: number,
): number {
  const after = Math.max(now, sentAt + intervalMs / 2);
  const k = Math.max(0, Math.floor((after - anchor) / intervalMs) + 1);
  return anchor + k * intervalMs;
}

/**
 * Offset of the `k`-th of workspaces added together, so that a burst of
 * them spreads over one interval instead of beating in one instant every
 * interval: the first at once, then halves, quarters, eighths… of the
 * interval (the van der Corput sequence), rounded down to one of
 * `positions` evenly spaced offsets (so that beats still share wake-ups).
 *
 * @example
 * ```ts
 * import { burstOffset } from "./_slots.ts";
 * [0, 1, 2, 3].map((k) => burstOffset(k, 20_000, 640)); // [0, 10000, 5000, 15000]
 * ```
 *
 * @param k The workspace's place in the burst, 0-based.
 * @param intervalMs The interval in ms.
 * @param positions Distinct offsets at most. @default {intervalMs}
 * @returns The offset in whole ms, in [0, intervalMs).
 */
export function burstOffset(
  k: number,
  intervalMs: number,
  positions: number = intervalMs,
): number {
  let fraction = 0;
  let weight = 0.5;
  for (let n = k; n > 0; n >>>= 1, weight /= 2) {
    if (n & 1) fraction += weight;
  }
  const p = Math.max(1, Math.floor(positions));
  return Math.floor((Math.floor(fraction * p) * intervalMs) / p);
}
