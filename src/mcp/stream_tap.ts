/**
 * Feeds an {@link McpTracker} from the raw bytes of MCP's stdio transport
 * (one JSON-RPC message a line), as they pass through a relay, without
 * holding or parsing more than needed.
 *
 * @module
 */
import type { McpTracker } from "./tracker.ts";
import { concatBytes } from "../shared/_bytes.ts";

/** Options of {@link createMcpStreamTap}. */
export interface McpStreamTapOptions {
  /**
   * Lines longer than this are not parsed and never held whole: only their
   * first and last bytes are read, for the members that come before the
   * payload or after it (`jsonrpc`, `id`, `method`, the tool's `name`), so
   * that a huge request is still a call under way and a huge answer still
   * ends one.
   * @default {1048576}
   */
  maxLineBytes?: number;
}

/** The two directions of a stdio relay; see {@link createMcpStreamTap}. */
export interface McpStreamTap {
  /** Bytes the client wrote to the server's stdin. */
  client(chunk: Uint8Array): void;
  /** Bytes the server wrote to its stdout. */
  server(chunk: Uint8Array): void;
  /** The client's stream ended; a last line without a newline is read. */
  clientEnd(): void;
  /** The server's stream ended. */
  serverEnd(): void;
}

const NEWLINE = 10;
const HEAD_BYTES = 512;
const TAIL_BYTES = 256;

/**
 * Splits a byte stream into lines, keeping at most `max` bytes of a line
 * (then only its first {@link HEAD_BYTES} and last {@link TAIL_BYTES}). A
 * line that is not `wanted` as it begins is skipped, not held.
 */
function lineSplitter(
  max: number,
  onLine: (line: Uint8Array) => void,
  onHuge: (head: Uint8Array, tail: Uint8Array) => void,
  wanted: () => boolean = () => true,
): { push(chunk: Uint8Array): void; end(): void } {
  let parts: Uint8Array[] = [];
  let size = 0;
  // Set once the line is over `max`: its first and last bytes.
  let huge: { head: Uint8Array; tail: Uint8Array } | undefined;
  // Whether the line under way is skipped, decided as it begins
  // (`undefined` between lines).
  let skipping: boolean | undefined;
  const add = (part: Uint8Array) => {
    if (!huge && size + part.length <= max) {
      // A copy: the relay may hand the chunk on and its owner reuse it.
      parts.push(part.slice());
      size += part.length;
      return;
    }
    if (!huge) {
      huge = {
        head: firstBytes([...parts, part], HEAD_BYTES),
        tail: lastBytes(parts, TAIL_BYTES),
      };
      parts = [];
      size = 0;
    }
    huge.tail = lastBytes([huge.tail, part], TAIL_BYTES);
  };
  /** A line ended: handed on. */
  const lineEnd = () => {
    const line = huge ??
      (parts.length === 1 ? parts[0] : concatBytes(parts, size));
    parts = [];
    size = 0;
    huge = undefined;
    skipping = undefined; // a skipped line holds nothing
    if ("head" in line) onHuge(line.head, line.tail);
    else if (line.length > 0) onLine(line);
  };
  return {
    push(chunk) {
      let start = 0;
      while (start < chunk.length) {
        skipping ??= !wanted();
        const nl = chunk.indexOf(NEWLINE, start);
        const end = nl === -1 ? chunk.length : nl;
        if (end > start && !skipping) add(chunk.subarray(start, end));
        if (nl === -1) return;
        lineEnd();
        start = nl + 1;
      }
    },
    end: lineEnd,
  };
}

/** The first `n` bytes of parts in a row. */
function firstBytes(parts: Uint8Array[], n: number): Uint8Array {
  return concatBytes(parts.map((p) => p.subarray(0, n))).slice(0, n);
}

/** The last `n` bytes of parts in a row. */
function lastBytes(parts: Uint8Array[], n: number): Uint8Array {
  return concatBytes(parts.map((p) => p.subarray(-n))).slice(-n);
}

/** A JSON text's value; `undefined` when it is not JSON. */
function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A JSON string. */
const STRING = String.raw`"(?:[^"\\]|\\.)*"`;
/** A JSON string or an integer, as an id or a name is written. */
const SCALAR = String.raw`(-?\d+|${STRING})`;
/** The top-level `"id"` when it is the last member of a JSON object: `…,"id":5}`. */
const TRAILING_ID = new RegExp(
  String.raw`[,{]\s*"id"\s*:\s*${SCALAR}\s*\}\s*$`,
);
/**
 * The members of a message written before its payload: the object's start,
 * then simple members only (`"jsonrpc":"2.0"`, `"id":5`, `"method":"…"`),
 * up to the first member whose value is an object or array, or a long one.
 */
const LEADING = new RegExp(
  String.raw`^\s*\{(\s*"[a-z]+"\s*:\s*${SCALAR}\s*,)*`,
);
const MEMBER = new RegExp(String.raw`"([a-z]+)"\s*:\s*${SCALAR}`, "g");
/** A tools/call's name written first in its params: `"params":{"name":"…"`. */
const PARAMS_NAME = new RegExp(
  String.raw`"params"\s*:\s*\{\s*"name"\s*:\s*(${STRING})`,
);

/** The `"key": scalar` members of a run of them, by key. */
function scalarMembers(run: string): Map<string, unknown> {
  const members = new Map<string, unknown>();
  for (const m of run.matchAll(MEMBER)) {
    // Not a scalar after all: ignored.
    const value = parse(m[2]);
    if (value !== undefined) members.set(m[1], value);
  }
  return members;
}

/** Scalar members that end a JSON object: `…},"id":2,"method":"x"}`. */
const TRAILING = new RegExp(
  String.raw`((?:,\s*"[a-z]+"\s*:\s*${SCALAR}\s*)+)\}\s*$`,
);
/** A tools/call's name written last in its params, at the message's end. */
const LAST_NAME = new RegExp(
  String
    .raw`"name"\s*:\s*(${STRING})\s*\}\s*(?:,\s*"[a-z]+"\s*:\s*${SCALAR}\s*)*\}\s*$`,
);

/**
 * The top-level scalar members a huge line's last bytes show (those after
 * its last object or array), and a tools/call's name when `params` ends
 * with it and is the last object.
 */
function trailingMembers(
  tail: string,
): { members: Map<string, unknown>; name?: string } {
  const members = scalarMembers(TRAILING.exec(tail)?.[1] ?? "");
  const named = LAST_NAME.exec(tail);
  const name = named ? parse(named[1]) : undefined;
  return {
    members,
    name: typeof name === "string" ? name : undefined,
  };
}

/**
 * The top-level scalar members a huge line's first bytes show (those before
 * its first object or array), and a tools/call's name when `params` begins
 * with it.
 */
function leadingMembers(
  head: string,
): { members: Map<string, unknown>; name?: string } {
  const lead = LEADING.exec(head)?.[0] ?? "";
  const members = scalarMembers(lead);
  // A name cut off by the head's end: none.
  const named = PARAMS_NAME.exec(head.slice(lead.length));
  const name = named && named.index < 16 ? parse(named[1]) : undefined;
  return { members, name: name as string | undefined };
}

const decoder = new TextDecoder();

/**
 * Taps both directions of an MCP stdio relay into a tracker. A client line
 * is decoded and parsed only when it names `tools/call` or
 * `notifications/cancelled`; a server line only when calls were under way as
 * it began (an answer comes after its request), else it is not even held.
 * A line that is not JSON, not JSON-RPC, or longer than `maxLineBytes`
 * changes nothing, except that a huge `tools/call` whose `id` and `method`
 * (and the tool's `name`, first or last in `params`) come before or after
 * its arguments is a call under way, and a huge answer whose `id` comes
 * before its result or is its last member ends that call (uncounted: its
 * result is not read). The tap never throws.
 *
 * @example
 * ```ts
 * import { createMcpStreamTap, createMcpTracker } from "@molecule/heartbeat";
 * const tracker = createMcpTracker();
 * const tap = createMcpStreamTap(tracker);
 * const bytes = new TextEncoder().encode(
 *   '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}\n',
 * );
 * tap.client(bytes.subarray(0, 20)); // lines may arrive in pieces
 * tap.client(bytes.subarray(20));
 * console.log(tracker.stats().active_tasks); // 1
 * ```
 *
 * @param tracker Where the messages go.
 * @param options The longest line parsed.
 * @returns The tap.
 */
export function createMcpStreamTap(
  tracker: McpTracker,
  options: McpStreamTapOptions = {},
): McpStreamTap {
  const max = options.maxLineBytes ?? 1024 * 1024;
  const client = lineSplitter(max, (line) => {
    const text = decoder.decode(line);
    if (
      !text.includes("tools/call") && !text.includes("notifications/cancelled")
    ) return;
    const message = parse(text);
    if (message !== undefined) tracker.fromClient(message);
  }, (head, tail) => {
    // A huge request: its arguments are not read, its call is still
    // counted, its members read before or after them.
    const lead = leadingMembers(decoder.decode(head));
    const end = trailingMembers(decoder.decode(tail));
    const member = (key: string) =>
      lead.members.has(key) ? lead.members.get(key) : end.members.get(key);
    const id = member("id");
    if (member("method") !== "tools/call" || id == null) return;
    tracker.fromClient({
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { name: lead.name ?? end.name ?? "" },
    });
  });
  const server = lineSplitter(max, (line) => {
    if (tracker.active === 0) return;
    const message = parse(decoder.decode(line));
    if (message !== undefined) tracker.fromServer(message);
  }, (head, tail) => {
    if (tracker.active === 0) return;
    // The id: among its leading members, or its last member.
    const { members } = leadingMembers(decoder.decode(head));
    const trailing = TRAILING_ID.exec(decoder.decode(tail));
    const id = members.has("id")
      ? members.get("id")
      : trailing && parse(trailing[1]);
    if (id != null && tracker.isActive(id)) tracker.forget(id);
  }, () => tracker.active > 0);
  const guard = (fn: () => void) => {
    try {
      fn();
    } catch {
      // A tap must never break the relay it watches.
    }
  };
  return {
    client: (chunk) => guard(() => client.push(chunk)),
    server: (chunk) =>
      guard(() => {
        tracker.serverOutput(); // any output: the server is not silent
        server.push(chunk);
      }),
    clientEnd: () => guard(() => client.end()),
    serverEnd: () => guard(() => server.end()),
  };
}
