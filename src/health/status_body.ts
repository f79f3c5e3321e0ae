/**
 * `/status` for a fleet of any size: one snapshot a second at most, shared
 * by every request in that second (and by `/readyz`), and its JSON written
 * in parts, a slice of workspaces per turn of the event loop, so that no
 * request holds the loop for long.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import type { HeartbeatStatus } from "../schedule/types.ts";

/** Options of {@link createStatusCache}. */
export interface StatusCacheOptions {
  /** Workspaces written per turn of the event loop. @default {500} */
  sliceSize?: number;
  /** Milliseconds on a monotonic clock. @default {performance.now} */
  now?: () => number;
  /**
   * The shard of a sharded workspaces list served, written after the
   * fleet's fields as `"shard": {"index": N, "total": M}`.
   * @default {not sharded: no "shard" field}
   */
  shard?: { index: number; total: number } | undefined;
}

/** The body of `/status`: its parts in order, and their total length. */
export interface StatusBody {
  /** UTF-8 parts, in order. */
  parts: Uint8Array[];
  /** Bytes in all. */
  length: number;
}

/** A status snapshot and its JSON, each made at most once a second. */
export interface StatusCache {
  /** The snapshot, taken again once it is a second old. */
  snapshot(): HeartbeatStatus;
  /** The snapshot's JSON, one workspace per line, written in parts. */
  body(): Promise<StatusBody>;
}

const encoder = new TextEncoder();

/**
 * A cache of `status()` for the health server.
 *
 * @example
 * ```ts
 * import { createStatusCache } from "./status_body.ts";
 * const cache = createStatusCache(() => ({
 *   stopped: false, intervalMs: 20_000, uptimeSeconds: 1, inFlight: 0,
 *   maxInFlight: 256, beatsSkipped: 0, retriesDeferred: 0, workspaces: [],
 * }));
 * const { parts } = await cache.body();
 * const text = parts.map((p) => new TextDecoder().decode(p)).join("");
 * console.log(JSON.parse(text).intervalMs); // 20000
 * ```
 *
 * @param status Takes a snapshot (`HeartbeatHandle.status`).
 * @param options Slice size, clock and shard.
 * @returns The cache.
 */
export function createStatusCache(
  status: () => HeartbeatStatus,
  options: StatusCacheOptions = {},
): StatusCache {
  const sliceSize = Math.max(1, options.sliceSize ?? 500);
  const now = options.now ?? (() => performance.now());
  let entry:
    | { at: number; snapshot: HeartbeatStatus; body?: Promise<StatusBody> }
    | undefined;

  const current = () => {
    const t = now();
    if (!entry || t - entry.at >= 1_000) {
      entry = { at: t, snapshot: status() };
    }
    return entry;
  };

  return {
    snapshot: () => current().snapshot,
    body() {
      const e = current();
      e.body ??= writeInParts(e.snapshot, sliceSize, options.shard);
      return e.body;
    },
  };
}

/**
 * The snapshot as JSON: the fleet's fields first, then `workspaces` with one
 * workspace per line, a slice of them per turn of the event loop.
 */
async function writeInParts(
  snapshot: HeartbeatStatus,
  sliceSize: number,
  shard: StatusCacheOptions["shard"],
): Promise<StatusBody> {
  const { workspaces, ...fleet } = snapshot;
  // Not sharded: `shard` undefined, left out.
  const head = JSON.stringify({
    ...fleet,
    shard: shard && { index: shard.index, total: shard.total },
  });
  const parts = [
    encoder.encode(
      `${head.slice(0, -1)}${head.length > 2 ? "," : ""}"workspaces":[\n`,
    ),
  ];
  for (let i = 0; i < workspaces.length; i += sliceSize) {
    if (i > 0) await new Promise((resolve) => setImmediate(resolve));
    const slice = workspaces.slice(i, i + sliceSize);
    const text = slice.map((w) => JSON.stringify(w)).join(",\n");
    parts.push(encoder.encode((i > 0 ? ",\n" : "") + text));
  }
  parts.push(encoder.encode("\n]}\n"));
  return { parts, length: parts.reduce((n, p) => n + p.length, 0) };
}
