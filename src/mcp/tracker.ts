/**
 * Live work of an MCP server, read from its JSON-RPC traffic: the tool calls
 * under way, the longest-running one, how many recent calls failed, and
 * whether the server looks wedged. The figures are the heartbeat's
 * `active_tasks`, `current_task`, `error_rate`, `sample_error` and
 * `runtime_state`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { HeartbeatStats } from "../platform/heartbeat.ts";
import { isRecord as isObject } from "../shared/_json.ts";
import { LOG_CATEGORY } from "../shared/constants.ts";

const log = getLogger([...LOG_CATEGORY, "mcp"]);

/** Options of {@link createMcpTracker}. */
export interface McpTrackerOptions {
  /** Milliseconds on a monotonic clock. @default {performance.now} */
  now?: () => number;
  /** How far back `error_rate` looks, in ms (counted in tenths of it). @default {300000} */
  windowMs?: number;
  /**
   * Makes an error text safe to send: removes tokens and secrets. Applied
   * before the text is cut to 200 characters. Control characters are always
   * replaced by spaces. @default {no masking beyond control characters}
   */
  mask?: (text: string) => string;
  /** Calls tracked at most; a call beyond is not counted. @default {10000} */
  maxActive?: number;
  /**
   * The server is *wedged* when the oldest unanswered `tools/call` has
   * waited longer than this, or when it has written nothing for this long
   * while calls are pending: `runtime_state` is then `"wedged"` and
   * `sample_error` says which tool and for how long. 0 turns it off.
   * @default {300000}
   */
  wedgedAfterMs?: number;
  /**
   * `error_rate` is reported once at least this many calls ended in the
   * window (0 before), so that one failed call does not mark a workspace
   * degraded for five minutes.
   * @default {5}
   */
  minCallsForErrorRate?: number;
}

/** The figures a tracker reports; each a field of {@link HeartbeatStats}. */
export interface McpWorkStats {
  /** `tools/call` requests not yet answered. */
  active_tasks: number;
  /** The tool name of the longest-running call under way; `""` when none. */
  current_task: string;
  /**
   * Share of calls that ended in an error, among those ended in the window;
   * 0 while fewer than `minCallsForErrorRate` ended there.
   */
  error_rate: number;
  /**
   * Why the server looks wedged when it does; else the text of the latest
   * failed call in the window; at most 200 characters, masked; `""` when
   * none.
   */
  sample_error: string;
  /** `"wedged"` while the server looks wedged (see `wedgedAfterMs`), else `""`. */
  runtime_state: string;
}

/** Reads MCP traffic into heartbeat figures; see {@link createMcpTracker}. */
export interface McpTracker {
  /** A JSON-RPC message (or batch) the client sent to the server. */
  fromClient(message: unknown): void;
  /** A JSON-RPC message (or batch) the server sent to the client. */
  fromServer(message: unknown): void;
  /**
   * The server wrote something (any bytes, parsed or not): it is not
   * silent. {@link createMcpStreamTap} calls it for every chunk.
   */
  serverOutput(): void;
  /** Whether a `tools/call` with this JSON-RPC id is under way. */
  isActive(id: unknown): boolean;
  /** Tool calls under way. */
  readonly active: number;
  /**
   * Ends a call whose answer could not be read (too large to parse); it is
   * not counted in `error_rate`.
   */
  forget(id: unknown): void;
  /** The figures now. */
  stats(): McpWorkStats & HeartbeatStats;
  /**
   * Tool calls ended since the tracker was made: `ok` answered, `error`
   * answered with a JSON-RPC error or `isError: true` (cancelled and
   * forgotten calls are in neither).
   */
  totals(): { ok: number; error: number };
}

/** Longest `sample_error` and `current_task` sent. */
const MAX_TEXT = 200;
const BUCKETS = 10;

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * A tracker of an MCP server's tool calls, fed the JSON-RPC messages that
 * pass in both directions (MCP's stdio transport, or an SDK transport; see
 * {@link trackTransport}):
 *
 * - `active_tasks`: `tools/call` requests from the client not yet answered;
 *   an answer, or a `notifications/cancelled` naming the request, ends one;
 * - `current_task`: the tool name of the longest-running call under way
 *   (never its arguments, which may hold secrets);
 * - `error_rate`: the share of calls that ended in a JSON-RPC error or a
 *   result with `isError: true`, among those ended in the last five minutes,
 *   once at least five ended there (0 before);
 * - `runtime_state`: `"wedged"` while the oldest unanswered call has waited
 *   longer than `wedgedAfterMs` (five minutes), or the server has written
 *   nothing for that long while calls are pending; `""` again as soon as
 *   the call ends or is cancelled (or the server writes). The platform shows
 *   a wedged workspace degraded, with `sample_error` as its banner. One
 *   warning is logged when it starts and one when it clears;
 * - `sample_error`: while wedged, why (`tool "search" has not answered for
 *   312 s`); else the error message, or the first text of an `isError`
 *   result, of the latest failed call in the window; masked, at most 200
 *   characters.
 *
 * Anything that is not a JSON-RPC message is ignored. Memory is bounded:
 * at most `maxActive` calls and ten time buckets.
 *
 * @example
 * ```ts
 * import { createMcpTracker } from "@molecule/heartbeat";
 * const tracker = createMcpTracker({ minCallsForErrorRate: 1 });
 * tracker.fromClient({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "search" } });
 * console.log(tracker.stats().active_tasks, tracker.stats().current_task); // 1 "search"
 * tracker.fromServer({ jsonrpc: "2.0", id: 1, error: { code: -32000, message: "boom" } });
 * console.log(tracker.stats().error_rate, tracker.stats().sample_error); // 1 "boom"
 * ```
 *
 * @example A call that never answers
 * ```ts
 * import { createMcpTracker } from "@molecule/heartbeat";
 * let now = 0;
 * const tracker = createMcpTracker({ now: () => now, wedgedAfterMs: 60_000 });
 * tracker.fromClient({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "search" } });
 * now = 61_000;
 * const stats = tracker.stats();
 * console.log(stats.runtime_state, stats.sample_error); // "wedged" 'tool "search" has not answered for 61 s'
 * ```
 *
 * @param options Clock, window, masking, bounds and the wedge threshold.
 * @returns The tracker.
 */
export function createMcpTracker(options: McpTrackerOptions = {}): McpTracker {
  const now = options.now ?? (() => performance.now());
  const windowMs = options.windowMs ?? 300_000;
  const bucketMs = Math.max(1, windowMs / BUCKETS);
  const mask = options.mask ?? ((text: string) => text);
  const maxActive = options.maxActive ?? 10_000;
  const wedgedAfterMs = Math.max(0, options.wedgedAfterMs ?? 300_000);
  const minCalls = Math.max(1, options.minCallsForErrorRate ?? 5);
  // By JSON-RPC id (`5` and `"5"` differ, as they do there); insertion
  // order is start order: the first entry is the longest-running.
  const active = new Map<unknown, { name: string; since: number }>();
  // One slot more than the window, so the current bucket never evicts one still inside it.
  const buckets = Array.from(
    { length: BUCKETS + 1 },
    () => ({ index: -1, total: 0, errors: 0 }),
  );
  let sample: { text: string; index: number } | undefined;
  const totals = { ok: 0, error: 0 };
  // Since when calls have been waiting with nothing from the server: the
  // first call after its last output, kept while the client cancels and
  // retries (a pause with nothing pending shorter than the threshold does
  // not start it afresh); and when the server last wrote anything.
  let busySince: number | undefined;
  let idleSince: number | undefined;
  let lastOutput = -Infinity;
  // Set while wedged: since when, for the line that says it cleared.
  let wedgedSince: number | undefined;

  const inWindow = (index: number, current: number) =>
    index > current - BUCKETS && index <= current;
  const clean = (text: string) =>
    mask(text).replace(CONTROL, " ").slice(0, MAX_TEXT);

  /** Why the server looks wedged at `t`, or `undefined` when it does not. */
  const wedgeReason = (t: number): string | undefined => {
    if (wedgedAfterMs === 0 || active.size === 0) return undefined;
    const oldest = active.values().next().value!;
    const waited = t - oldest.since;
    if (waited > wedgedAfterMs) {
      const what = oldest.name ? `tool "${oldest.name}"` : "a tool call";
      return `${what} has not answered for ${Math.floor(waited / 1000)} s`;
    }
    const silent = t - Math.max(lastOutput, busySince ?? -Infinity);
    if (silent > wedgedAfterMs) {
      const [s, waits] = active.size === 1 ? ["", "waits"] : ["s", "wait"];
      return `the MCP server has written nothing for ${
        Math.floor(silent / 1000)
      } s while ${active.size} tool call${s} ${waits}`;
    }
    return undefined;
  };

  /** Notes a change of the wedge, one line each way; returns the reason. */
  const checkWedge = (t: number): string | undefined => {
    const reason = wedgeReason(t);
    if (reason !== undefined && wedgedSince === undefined) {
      wedgedSince = t;
      log.warn(
        'the MCP server looks wedged: {reason}; heartbeats say runtime_state "wedged" until it answers',
        { reason: clean(reason) },
      );
    } else if (reason === undefined && wedgedSince !== undefined) {
      // Tenths under 10 s: a wedge of 0.7 s is not "after 0 s".
      const ms = t - wedgedSince;
      const seconds = ms < 10_000
        ? Math.round(ms / 100) / 10
        : Math.round(ms / 1000);
      wedgedSince = undefined;
      log.warn(
        'the MCP server is no longer wedged (after {seconds} s): runtime_state is "" again',
        { seconds },
      );
    }
    return reason;
  };
  /** After a call ended or the server wrote: a wedge may have cleared. */
  const recheck = () => {
    if (wedgedSince !== undefined) checkWedge(now());
  };

  /** Removes a call; notes when nothing is pending any more. */
  const drop = (id: unknown): boolean => {
    if (!active.delete(id)) return false;
    if (active.size === 0) idleSince = now();
    return true;
  };

  /** A call under way answered. */
  const ended = (id: unknown, answer: Record<string, unknown>) => {
    if (!drop(id)) return;
    const error = failure(answer);
    const index = Math.floor(now() / bucketMs);
    const bucket = buckets[index % buckets.length];
    if (bucket.index !== index) {
      Object.assign(bucket, { index, total: 0, errors: 0 });
    }
    bucket.total++;
    totals[error === undefined ? "ok" : "error"]++;
    if (error !== undefined) {
      bucket.errors++;
      sample = { text: clean(error), index };
    }
  };

  const one = (message: unknown, fromClient: boolean) => {
    if (!isObject(message)) return;
    if (fromClient) {
      if (message.method === "tools/call") {
        const id = message.id;
        if (typeof id !== "string" && !Number.isFinite(id)) return;
        const params = message.params;
        const name = isObject(params) && typeof params.name === "string"
          ? params.name.replace(CONTROL, " ").slice(0, MAX_TEXT)
          : "";
        active.delete(id); // a reused id starts afresh
        if (active.size < maxActive) {
          const t = now();
          if (
            active.size === 0 &&
            (busySince === undefined ||
              (idleSince !== undefined && t - idleSince > wedgedAfterMs))
          ) busySince = t;
          active.set(id, { name, since: t });
        }
      } else if (message.method === "notifications/cancelled") {
        const params = message.params;
        if (isObject(params)) drop(params.requestId);
      }
      // Not the server's own requests and notifications:
    } else if (!("method" in message)) ended(message.id, message);
  };

  /** The server wrote: silence is measured from now on. */
  const output = () => {
    lastOutput = now();
    busySince = undefined;
  };

  const feed = (message: unknown, fromClient: boolean) => {
    if (!fromClient) output();
    // A batch, or one message.
    for (const m of [message].flat()) one(m, fromClient);
    recheck();
  };

  return {
    fromClient: (message) => feed(message, true),
    fromServer: (message) => feed(message, false),
    serverOutput: () => {
      output();
      recheck();
    },
    isActive: (id) => active.has(id),
    get active() {
      return active.size;
    },
    forget: (id) => {
      drop(id);
      recheck();
    },
    totals: () => ({ ...totals }),
    stats() {
      const t = now();
      const current = Math.floor(t / bucketMs);
      let total = 0;
      let errors = 0;
      for (const b of buckets) {
        if (!inWindow(b.index, current)) continue;
        total += b.total;
        errors += b.errors;
      }
      const first = active.values().next();
      const wedged = checkWedge(t);
      return {
        active_tasks: active.size,
        // Masked as it is sent: a tool's name may hold a token learned later.
        current_task: first.done ? "" : clean(first.value.name),
        error_rate: total < minCalls ? 0 : errors / total,
        sample_error: wedged !== undefined
          ? clean(wedged)
          : sample && inWindow(sample.index, current)
          ? sample.text
          : "",
        runtime_state: wedged === undefined ? "" : "wedged",
      };
    },
  };
}

/** The error text of a failed answer, or `undefined` for a success. */
function failure(answer: Record<string, unknown>): string | undefined {
  if ("error" in answer) {
    const error = answer.error;
    const message = isObject(error) ? error.message : undefined;
    return typeof message === "string" && message || "JSON-RPC error";
  }
  const result = answer.result;
  if (!isObject(result) || result.isError !== true) return undefined;
  const parts: unknown[] = Array.isArray(result.content) ? result.content : [];
  const text =
    (parts.find((part) =>
      isObject(part) && part.type === "text" && typeof part.text === "string"
    ) as { text: string } | undefined)?.text;
  return text || "tool error";
}
