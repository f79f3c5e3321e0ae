/**
 * Live work of an MCP server, read from its JSON-RPC traffic: the tool calls
 * under way, the longest-running one, and how many recent calls failed. The
 * figures are the heartbeat's `active_tasks`, `current_task`, `error_rate`
 * and `sample_error`.
 *
 * @module
 */
import type { HeartbeatStats } from "../platform/heartbeat.ts";
import { isRecord as isObject } from "../shared/_json.ts";

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
}

/** The figures a tracker reports; each a field of {@link HeartbeatStats}. */
export interface McpWorkStats {
  /** `tools/call` requests not yet answered. */
  active_tasks: number;
  /** The tool name of the longest-running call under way; `""` when none. */
  current_task: string;
  /** Share of calls that ended in an error, among those ended in the window; 0 with none. */
  error_rate: number;
  /** The text of the latest failed call in the window, at most 200 characters; `""` when none. */
  sample_error: string;
}

/** Reads MCP traffic into heartbeat figures; see {@link createMcpTracker}. */
export interface McpTracker {
  /** A JSON-RPC message (or batch) the client sent to the server. */
  fromClient(message: unknown): void;
  /** A JSON-RPC message (or batch) the server sent to the client. */
  fromServer(message: unknown): void;
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

interface Bucket {
  index: number;
  total: number;
  errors: number;
}

function idKey(id: unknown): string | undefined {
  if (typeof id === "number" && Number.isFinite(id)) return `n${id}`;
  if (typeof id === "string") return `s${id}`;
  return undefined;
}

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
 *   result with `isError: true`, among those ended in the last five minutes;
 * - `sample_error`: the error message, or the first text of an `isError`
 *   result, of the latest failed call in that window, masked, at most 200
 *   characters.
 *
 * Anything that is not a JSON-RPC message is ignored. Memory is bounded:
 * at most `maxActive` calls and ten time buckets.
 *
 * @example
 * ```ts
 * import { createMcpTracker } from "@molecule/heartbeat";
 * const tracker = createMcpTracker();
 * tracker.fromClient({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "search" } });
 * console.log(tracker.stats().active_tasks, tracker.stats().current_task); // 1 "search"
 * tracker.fromServer({ jsonrpc: "2.0", id: 1, error: { code: -32000, message: "boom" } });
 * console.log(tracker.stats().error_rate, tracker.stats().sample_error); // 1 "boom"
 * ```
 *
 * @param options Clock, window, masking and bounds.
 * @returns The tracker.
 */
export function createMcpTracker(options: McpTrackerOptions = {}): McpTracker {
  const now = options.now ?? (() => performance.now());
  const windowMs = options.windowMs ?? 300_000;
  const bucketMs = Math.max(1, windowMs / BUCKETS);
  const mask = options.mask ?? ((text: string) => text);
  const maxActive = options.maxActive ?? 10_000;
  // Insertion order is start order: the first entry is the longest-running.
  const active = new Map<string, string>();
  // One slot more than the window, so the current bucket never evicts one still inside it.
  const buckets: Bucket[] = Array.from(
    { length: BUCKETS + 1 },
    () => ({ index: -1, total: 0, errors: 0 }),
  );
  let sample: { text: string; index: number } | undefined;
  const totals = { ok: 0, error: 0 };

  const bucketIndex = () => Math.floor(now() / bucketMs);
  const inWindow = (index: number, current: number) =>
    index > current - BUCKETS && index <= current;

  const ended = (key: string, error: string | undefined) => {
    if (!active.delete(key)) return;
    const index = bucketIndex();
    const bucket = buckets[index % buckets.length];
    if (bucket.index !== index) {
      bucket.index = index;
      bucket.total = 0;
      bucket.errors = 0;
    }
    bucket.total++;
    totals[error === undefined ? "ok" : "error"]++;
    if (error !== undefined) {
      bucket.errors++;
      sample = {
        text: mask(error).replace(CONTROL, " ").slice(0, MAX_TEXT),
        index,
      };
    }
  };

  const one = (message: unknown, fromClient: boolean) => {
    if (!isObject(message)) return;
    if (fromClient) {
      if (message.method === "tools/call") {
        const key = idKey(message.id);
        if (key === undefined) return;
        const params = message.params;
        const name = isObject(params) && typeof params.name === "string"
          ? params.name.replace(CONTROL, " ").slice(0, MAX_TEXT)
          : "";
        active.delete(key); // a reused id starts afresh
        if (active.size < maxActive) active.set(key, name);
      } else if (message.method === "notifications/cancelled") {
        const params = message.params;
        const key = isObject(params) ? idKey(params.requestId) : undefined;
        if (key !== undefined) active.delete(key);
      }
      return;
    }
    if ("method" in message) return; // the server's own requests and notifications
    const key = idKey(message.id);
    if (key === undefined || !active.has(key)) return;
    ended(key, failure(message));
  };

  const feed = (message: unknown, fromClient: boolean) => {
    if (Array.isArray(message)) {
      for (const m of message) one(m, fromClient);
    } else one(message, fromClient);
  };

  return {
    fromClient: (message) => feed(message, true),
    fromServer: (message) => feed(message, false),
    isActive: (id) => {
      const key = idKey(id);
      return key !== undefined && active.has(key);
    },
    get active() {
      return active.size;
    },
    forget: (id) => {
      const key = idKey(id);
      if (key !== undefined) active.delete(key);
    },
    totals: () => ({ ...totals }),
    stats() {
      const current = bucketIndex();
      let total = 0;
      let errors = 0;
      for (const b of buckets) {
        if (!inWindow(b.index, current)) continue;
        total += b.total;
        errors += b.errors;
      }
      const first = active.values().next();
      return {
        active_tasks: active.size,
        current_task: first.done ? "" : first.value,
        error_rate: total === 0 ? 0 : errors / total,
        sample_error: sample && inWindow(sample.index, current)
          ? sample.text
          : "",
      };
    },
  };
}

/** The error text of a failed answer, or `undefined` for a success. */
function failure(answer: Record<string, unknown>): string | undefined {
  if ("error" in answer) {
    const error = answer.error;
    const message = isObject(error) && typeof error.message === "string"
      ? error.message
      : "";
    return message || "JSON-RPC error";
  }
  const result = answer.result;
  if (!isObject(result) || result.isError !== true) return undefined;
  if (Array.isArray(result.content)) {
    for (const part of result.content) {
      if (
        isObject(part) && part.type === "text" && typeof part.text === "string"
      ) {
        return part.text || "tool error";
      }
    }
  }
  return "tool error";
}
