/**
 * The health port's HTTP/1.1, one for both runtimes (each only hands it its
 * TCP connections; see `server.ts`). Every connection is bounded: a cap on
 * how many are open, a deadline for the request head and one for the whole
 * exchange, a head of at most 8 KiB, scanned once; pipelined requests are
 * answered in order.
 *
 * Past the cap, one connection is closed at once: the one that has waited
 * longest for its request head (idle, or a slow client), so that slow and
 * idle clients cannot hold the port against a prober, whose head comes at
 * once; when every connection is being answered, the new one.
 *
 * Request heads: where one ends, found by scanning each byte once as it
 * arrives, and what it says, decoded once it is whole.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { concatBytes } from "../shared/_bytes.ts";

/** A request, as the server read it: its method, target and headers. */
export type HealthRequest = Pick<RequestHead, "method" | "target" | "headers">;

/** An answer: status, headers (without `content-length`), body parts. */
export interface HealthAnswer {
  /** The HTTP status code. */
  status: number;
  /** Header names (lower case) to values. */
  headers: Record<string, string>;
  /** The body, in parts (the server writes none of it for HEAD). */
  parts: Uint8Array[];
  /** Called once the answer is written or abandoned. */
  done?(): void;
}

/** A TCP connection, as a runtime hands it over (a `Deno.Conn` is one). */
export interface Conn {
  /** Reads into `p`; `null` at the end. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p`; resolves with how much. */
  write(p: Uint8Array): Promise<number>;
  /** Closes it. */
  close(): void;
}

/** Why the server closes a connection before answering it, each a label value of `/metrics`. */
export const CLOSED_REASONS = [
  "over_cap",
  "evicted",
  "head_timeout",
  "head_too_large",
  "exchange_timeout",
] as const;

/** Why the server closed a connection before answering it. */
export type ClosedReason = typeof CLOSED_REASONS[number];

/** The health port's connections, for `/metrics`. */
export interface ConnectionFigures {
  /** Open now. */
  open: number;
  /** Closed by the server before an answer, by reason. */
  closed: Partial<Record<ClosedReason, number>>;
}

/** How a health server bounds its connections. */
export interface ConnectionLimits {
  /** Health connections open at once at most. @default {64} */
  maxConnections?: number;
  /** Time for a whole exchange, head read and answer written, in ms. @default {10000} */
  exchangeTimeoutMs?: number;
}

/** Requests answered on one connection at most. */
const MAX_REQUESTS_PER_CONNECTION = 100;
/** Time a client has to send its request head, in ms. */
const HEAD_TIMEOUT_MS = 2_000;
/** Time a kept-alive connection may idle between requests, in ms. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** A runtime's TCP listener, handing its connections to an {@link HttpServer}. */
export interface Listener {
  /** The port bound. */
  port: number;
  /** Stops listening; resolves once every connection is closed too. */
  close(): Promise<void>;
}

/** The HTTP side of a health server; see {@link createHttpServer}. */
export interface HttpServer {
  /** Takes a new connection in (at the cap, in the place of another, or not at all) and serves it. */
  take(conn: Conn): Promise<void>;
  /** Counts a connection the runtime closed before an answer. */
  count(reason: ClosedReason): void;
  /** The connections, for `/metrics`. */
  figures(): ConnectionFigures;
  /** Closes every connection, and waits until each is done with. */
  close(): Promise<void>;
  /** Connections open at once at most. */
  maxConnections: number;
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

const encoder = new TextEncoder();
/** Headers of every answer of the health port. */
export const COMMON = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
};

/** Parts up to this size go out with the head in one write. */
const ONE_WRITE_BYTES = 64 * 1024;

/**
 * Serves `route` on the connections it is given.
 *
 * @example
 * ```ts
 * import { createHttpServer } from "./http_server.ts";
 * const body = new TextEncoder().encode("hi\n");
 * const http = createHttpServer(
 *   () => Promise.resolve({ status: 200, headers: {}, parts: [body] }),
 * );
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * void listener.accept().then(http.take);
 * const answer = await fetch(`http://127.0.0.1:${listener.addr.port}/`);
 * console.log(await answer.text()); // "hi\n"
 * listener.close();
 * await http.close();
 * ```
 *
 * @param route The answers.
 * @param limits The bounds of the connections.
 * @returns The server.
 */
export function createHttpServer(
  route: (request: HealthRequest) => Promise<HealthAnswer>,
  limits: ConnectionLimits = {},
): HttpServer {
  const maxConnections = limits.maxConnections ?? 64;
  // Each open connection, and whether it waits for a request head (else it
  // is being answered, not evicted). One that waits anew goes last: the
  // first waiting one has waited longest.
  const open = new Map<Conn, boolean>();
  const closedBy: ConnectionFigures["closed"] = {};
  const tasks = new Set<Promise<void>>();
  let closed = false;
  const count = (reason: ClosedReason) => {
    closedBy[reason] = (closedBy[reason] ?? 0) + 1;
  };
  const shut = (conn: Conn) => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const admit = (conn: Conn): boolean => {
    if (open.size >= maxConnections) {
      const oldest = [...open].find(([, waiting]) => waiting)?.[0];
      if (oldest === undefined) {
        count("over_cap");
        return false;
      }
      open.delete(oldest);
      count("evicted");
      shut(oldest);
    }
    open.set(conn, true);
    return true;
  };
  const mark = (conn: Conn, waiting: boolean) => {
    if (open.delete(conn)) open.set(conn, waiting);
  };

  const serve = async (conn: Conn) => {
    const buffer = new Uint8Array(MAX_HEAD_BYTES);
    let filled = 0;
    let served = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = (ms: number, reason?: ClosedReason) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (reason) count(reason);
        shut(conn);
      }, ms);
    };
    try {
      while (!closed && served < MAX_REQUESTS_PER_CONNECTION) {
        if (served > 0) mark(conn, true);
        // A request starts at the connection's start, or at the first byte
        // after the last answer; a kept-alive connection idles until then.
        let started = performance.now();
        if (served === 0 || filled > 0) {
          deadline(HEAD_TIMEOUT_MS, "head_timeout");
        } else deadline(KEEP_ALIVE_TIMEOUT_MS);
        // Pipelined bytes left from the last request are scanned once more;
        // every byte read after is scanned once.
        let end = findHeadEnd(buffer, 0, filled);
        while (end < 0) {
          if (filled === buffer.length) {
            count("head_too_large");
            const error = "request head over 8 KiB";
            return await writeAnswer(conn, json(431, { error }));
          }
          const n = await conn.read(buffer.subarray(filled));
          if (n === null) return;
          if (filled === 0 && served > 0) {
            started = performance.now();
            deadline(HEAD_TIMEOUT_MS, "head_timeout");
          }
          const from = filled;
          filled += n;
          end = findHeadEnd(buffer, from, filled);
        }
        mark(conn, false);
        const left = started + (limits.exchangeTimeoutMs ?? 10_000) -
          performance.now();
        deadline(Math.max(0, left), "exchange_timeout");
        const head = parseHead(buffer.subarray(0, end));
        buffer.copyWithin(0, end, filled);
        filled -= end;
        if ("error" in head) {
          return await writeAnswer(
            conn,
            json(head.error, { error: "bad request" }),
          );
        }
        // Request bodies are not read: answer, then close (nothing of the
        // body can be taken for a next request).
        const length = head.headers.get("content-length");
        const keepAlive = head.minor === 1 &&
          !head.headers.has("transfer-encoding") && !(Number(length) > 0) &&
          !/(^|,)\s*close\s*(,|$)/i.test(
            head.headers.get("connection") ?? "",
          ) &&
          served + 1 < MAX_REQUESTS_PER_CONNECTION;
        const answer = await route(head).catch(() =>
          json(500, { error: "internal error" })
        );
        try {
          await writeAnswer(conn, answer, head.method === "HEAD", keepAlive);
        } finally {
          answer.done?.();
        }
        served++;
        if (!keepAlive) return;
      }
    } catch {
      // the client went away, or a deadline closed it
    } finally {
      clearTimeout(timer);
      open.delete(conn);
      shut(conn);
    }
  };

  return {
    async take(conn) {
      // At the cap, the heads of the connections just taken in are read
      // first: one of them may be a prober's, which must not be evicted.
      if (open.size >= maxConnections) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (closed || !admit(conn)) return shut(conn);
      const task = serve(conn);
      tasks.add(task);
      void task.finally(() => tasks.delete(task));
    },
    count,
    maxConnections,
    figures: () => ({ open: open.size, closed: { ...closedBy } }),
    async close() {
      closed = true;
      for (const conn of [...open.keys()]) shut(conn);
      await Promise.all([...tasks]);
    },
  };
}

/**
 * A JSON answer, pretty-printed, never cached.
 *
 * @example
 * ```ts
 * import { json } from "./http_server.ts";
 * console.log(json(404, { error: "not found" }).status); // 404
 * ```
 *
 * @param status The HTTP status code.
 * @param body What to write, as JSON.
 * @param headers More headers.
 * @returns The answer.
 */
export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): HealthAnswer {
  return {
    status,
    headers: { "content-type": "application/json", ...COMMON, ...headers },
    parts: [encoder.encode(JSON.stringify(body, null, 2) + "\n")],
  };
}

/** Writes an answer: the head, then the body unless for HEAD. */
async function writeAnswer(
  conn: Conn,
  answer: HealthAnswer,
  head = false,
  keepAlive = false,
): Promise<void> {
  let text = `HTTP/1.1 ${answer.status} ${
    REASONS[answer.status] ?? "Unknown"
  }\r\n`;
  for (const [name, value] of Object.entries(answer.headers)) {
    text += `${name}: ${value}\r\n`;
  }
  const length = answer.parts.reduce((n, p) => n + p.length, 0);
  text += `content-length: ${length}\r\nconnection: ${
    keepAlive ? "keep-alive" : "close"
  }\r\n\r\n`;
  const start = encoder.encode(text);
  if (head) return await writeAll(conn, start);
  if (length <= ONE_WRITE_BYTES) {
    return await writeAll(conn, concatBytes([start, ...answer.parts]));
  }
  await writeAll(conn, start);
  for (const part of answer.parts) await writeAll(conn, part);
}

async function writeAll(conn: Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/** Most bytes of a request head (request line, headers, blank line). */
const MAX_HEAD_BYTES = 8 * 1024;

const LF = 10;
const CR = 13;

/**
 * Where the head in `bytes[0, length)` ends (the index after its blank
 * line), or -1 while it is incomplete. Only bytes from `from` on are
 * scanned: pass the previous `length` to go on where the last call stopped,
 * so a head that arrives a byte at a time is still scanned once. A bare LF
 * ends a line as CRLF does (RFC 9112 §2.2).
 *
 * @example
 * ```ts
 * import { findHeadEnd } from "./http_server.ts";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\n\r\nGET");
 * console.log(findHeadEnd(bytes, 0, bytes.length)); // 18
 * ```
 *
 * @param bytes The buffer.
 * @param from Where to start scanning.
 * @param length How many bytes of the buffer are filled.
 * @returns The end of the head, or -1.
 */
export function findHeadEnd(
  bytes: Uint8Array,
  from: number,
  length: number,
): number {
  for (let i = Math.max(1, from); i < length; i++) {
    if (bytes[i] !== LF) continue;
    if (bytes[i - 1] === LF) return i + 1;
    if (bytes[i - 1] === CR && i >= 2 && bytes[i - 2] === LF) return i + 1;
  }
  return -1;
}

/** A parsed request head. */
export interface RequestHead {
  /** The method, such as `GET`. */
  method: string;
  /** The request target, such as `/readyz?verbose`. */
  target: string;
  /** The minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0. */
  minor: number;
  /** Header names (lower case) to values; repeated names joined with `, `. */
  headers: Map<string, string>;
}

/** A head that cannot be answered: the status to answer with. */
export interface BadHead {
  /** 400, or 505 for a version other than HTTP/1.x. */
  error: 400 | 505;
}

const decoder = new TextDecoder();
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\/\S*) HTTP\/(\d)\.(\d)$/;
const HEADER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;

/**
 * Parses a whole head (what {@link findHeadEnd} delimited), decoding it
 * once. Empty lines before the request line are skipped (RFC 9112 §2.2);
 * a folded header line, a header without a colon, a target that is not a
 * path, or a `Content-Length` that is not a number is 400.
 *
 * @example
 * ```ts
 * import { parseHead } from "./http_server.ts";
 * const head = parseHead(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
 * console.log("error" in head ? head.error : head.target); // "/healthz"
 * ```
 *
 * @param bytes The head, blank line included.
 * @returns The head, or the error status.
 */
export function parseHead(bytes: Uint8Array): RequestHead | BadHead {
  const lines = decoder.decode(bytes).split(/\r?\n/);
  let i = 0;
  while (i < lines.length && lines[i] === "") i++;
  const start = REQUEST_LINE.exec(lines[i++] ?? "");
  if (!start) return { error: 400 };
  if (start[3] !== "1") return { error: 505 };
  const headers = new Map<string, string>();
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (line === "") break;
    const header = HEADER.exec(line);
    if (!header) return { error: 400 };
    const name = header[1].toLowerCase();
    const before = headers.get(name);
    headers.set(
      name,
      before === undefined ? header[2] : `${before}, ${header[2]}`,
    );
  }
  // Request bodies are not read; a length that is not one is 400.
  const length = headers.get("content-length");
  if (length !== undefined && !/^\d+$/.test(length)) return { error: 400 };
  return {
    method: start[1],
    target: start[2],
    minor: Number(start[4]),
    headers,
  };
}
