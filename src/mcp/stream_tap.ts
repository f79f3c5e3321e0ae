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
 * (then only its first {@link HEAD_BYTES} and last {@link TAIL_BYTES}).
 */
class LineSplitter {
  #parts: Uint8Array[] = [];
  #size = 0;
  #huge = false;
  #head: Uint8Array = new Uint8Array(0);
  #tail: Uint8Array = new Uint8Array(0);
  #max: number;
  #onLine: (line: Uint8Array) => void;
  #onHuge: (head: Uint8Array, tail: Uint8Array) => void;
  #wanted: () => boolean;
  // Inside a line that was not wanted when it began: skipped, not held.
  #skipping = false;
  #atLineStart = true;

  constructor(
    max: number,
    onLine: (line: Uint8Array) => void,
    onHuge: (head: Uint8Array, tail: Uint8Array) => void,
    wanted: () => boolean = () => true,
  ) {
    this.#max = max;
    this.#onLine = onLine;
    this.#onHuge = onHuge;
    this.#wanted = wanted;
  }

  push(chunk: Uint8Array): void {
    let start = 0;
    while (start < chunk.length) {
      if (this.#atLineStart) {
        this.#atLineStart = false;
        this.#skipping = !this.#wanted();
      }
      const nl = chunk.indexOf(NEWLINE, start);
      const end = nl === -1 ? chunk.length : nl;
      if (end > start && !this.#skipping) {
        this.#add(chunk.subarray(start, end));
      }
      if (nl === -1) return;
      if (this.#skipping) this.#skipping = false;
      else this.#flush();
      this.#atLineStart = true;
      start = nl + 1;
    }
  }

  end(): void {
    if (!this.#skipping && (this.#size > 0 || this.#huge)) this.#flush();
    this.#skipping = false;
    this.#atLineStart = true;
  }

  #add(part: Uint8Array): void {
    if (!this.#huge && this.#size + part.length <= this.#max) {
      // A copy: the relay may hand the chunk on and its owner reuse it.
      this.#parts.push(part.slice());
      this.#size += part.length;
      return;
    }
    if (!this.#huge) {
      this.#huge = true;
      this.#head = firstBytes([...this.#parts, part], HEAD_BYTES);
      this.#tail = lastBytes(this.#parts, TAIL_BYTES);
      this.#parts = [];
      this.#size = 0;
    }
    this.#tail = lastBytes([this.#tail, part], TAIL_BYTES);
  }

  #flush(): void {
    if (this.#huge) {
      const head = this.#head;
      const tail = this.#tail;
      this.#huge = false;
      this.#head = new Uint8Array(0);
      this.#tail = new Uint8Array(0);
      this.#onHuge(head, tail);
      return;
    }
    const parts = this.#parts;
    const size = this.#size;
    this.#parts = [];
    this.#size = 0;
    if (size === 0) return;
    this.#onLine(parts.length === 1 ? parts[0] : concatBytes(parts, size));
  }
}

function firstBytes(parts: Uint8Array[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let size = 0;
  for (const p of parts) {
    if (size >= n) break;
    const take = p.subarray(0, n - size);
    out.set(take, size);
    size += take.length;
  }
  return out.slice(0, size);
}

function lastBytes(parts: Uint8Array[], n: number): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const all = concatBytes(parts, size);
  return all.slice(Math.max(0, all.length - n));
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

/**
 * The top-level scalar members a huge line's first bytes show (those before
 * its first object or array), and a tools/call's name when `params` begins
 * with it.
 */
function leadingMembers(
  head: string,
): { members: Map<string, unknown>; name?: string } {
  const members = new Map<string, unknown>();
  const lead = LEADING.exec(head)?.[0] ?? "";
  for (const m of lead.matchAll(MEMBER)) {
    try {
      members.set(m[1], JSON.parse(m[2]));
    } catch {
      // not a scalar after all: ignored
    }
  }
  const rest = head.slice(lead.length);
  let name: string | undefined;
  const named = PARAMS_NAME.exec(rest);
  if (named && named.index < 16) {
    try {
      name = JSON.parse(named[1]);
    } catch {
      // a name cut off by the head's end: none
    }
  }
  return { members, name };
}

/** The id of a huge line: among its leading members, or its last member. */
function hugeLineId(head: string, tail: string): unknown {
  const { members } = leadingMembers(head);
  if (members.has("id")) return members.get("id");
  const match = TRAILING_ID.exec(tail);
  if (!match) return undefined;
  try {
    return JSON.parse(match[1]);
  } catch {
    return undefined;
  }
}

const decoder = new TextDecoder();

/**
 * Taps both directions of an MCP stdio relay into a tracker. A client line
 * is decoded and parsed only when it names `tools/call` or
 * `notifications/cancelled`; a server line only when calls were under way as
 * it began (an answer comes after its request), else it is not even held.
 * A line that is not JSON, not JSON-RPC, or longer than `maxLineBytes`
 * changes nothing, except that a huge `tools/call` whose `id` and `method`
 * (and the tool's `name`, where `params` begins with it) come before its
 * arguments is a call under way, and a huge answer whose `id` comes before
 * its result or is its last member ends that call (uncounted: its result is
 * not read). The tap never throws.
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
  const parse = (line: Uint8Array): unknown => {
    try {
      return JSON.parse(decoder.decode(line));
    } catch {
      return undefined;
    }
  };
  const client = new LineSplitter(max, (line) => {
    const text = decoder.decode(line);
    if (
      !text.includes("tools/call") && !text.includes("notifications/cancelled")
    ) return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    tracker.fromClient(message);
  }, (head) => {
    // A huge request: its arguments are not read, its call is still counted.
    const { members, name } = leadingMembers(decoder.decode(head));
    if (members.get("method") !== "tools/call" || !members.has("id")) return;
    tracker.fromClient({
      jsonrpc: "2.0",
      id: members.get("id"),
      method: "tools/call",
      params: { name: name ?? "" },
    });
  });
  const server = new LineSplitter(max, (line) => {
    if (tracker.active === 0) return;
    const message = parse(line);
    if (message !== undefined) tracker.fromServer(message);
  }, (head, tail) => {
    if (tracker.active === 0) return;
    const id = hugeLineId(decoder.decode(head), decoder.decode(tail));
    if (id !== undefined && tracker.isActive(id)) tracker.forget(id);
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
