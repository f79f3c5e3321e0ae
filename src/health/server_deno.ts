/**
 * The health server on Deno: a small HTTP/1.1 server of its own over
 * `Deno.listen` (Deno's `node:http` stops accepting for good after EMFILE,
 * and `Deno.serve` throws it at the top level). Every connection is bounded:
 * a cap on how many are open, a deadline for the request head and one for
 * the whole exchange, a head of at most 8 KiB, scanned once; pipelined
 * requests are answered in order.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { concatBytes } from "../shared/_bytes.ts";
import { type ClosedReason, ConnectionPool } from "./connections.ts";
import { findHeadEnd, MAX_HEAD_BYTES, parseHead } from "./http_head.ts";
import type { HealthAnswer, HealthRequest } from "./routes.ts";

/** The part of a Deno TCP connection the server uses. */
export interface DenoConn {
  /** Reads into `p`; `null` at the end. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p`; resolves with how much. */
  write(p: Uint8Array): Promise<number>;
  /** Closes it. */
  close(): void;
}

/** The part of `Deno` the server uses. */
export interface DenoNet {
  /** Binds a TCP listener. */
  listen(options: { port: number; hostname: string }): {
    addr: { port: number };
    accept(): Promise<DenoConn>;
    close(): void;
  };
}

/** How a health server bounds its connections (both runtimes). */
export interface ConnectionLimits {
  /** Connections open at once at most. */
  maxConnections: number;
  /** Time from a request's start to the end of its head, in ms. */
  headTimeoutMs: number;
  /** Time from a request's start to the end of its answer, in ms. */
  exchangeTimeoutMs: number;
  /** Time a kept-alive connection may wait for its next request, in ms. */
  keepAliveTimeoutMs: number;
  /** Requests answered on one connection at most. */
  maxRequestsPerConnection: number;
}

/** A running server of either runtime. */
export interface RuntimeServer {
  /** The port bound. */
  port: number;
  /** The connections, for `/metrics`. */
  pool: Pick<ConnectionPool<unknown>, "figures">;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
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

/** Parts up to this size go out with the head in one write. */
const ONE_WRITE_BYTES = 64 * 1024;

/**
 * Serves `route` on Deno.
 *
 * @example
 * ```ts
 * import { serveDeno } from "./server_deno.ts";
 * const body = new TextEncoder().encode("hi\n");
 * const server = serveDeno(
 *   Deno,
 *   () => Promise.resolve({ status: 200, headers: {}, parts: [body], length: body.length }),
 *   {
 *     host: "127.0.0.1", port: 0, maxConnections: 64, headTimeoutMs: 2_000,
 *     exchangeTimeoutMs: 10_000, keepAliveTimeoutMs: 5_000, maxRequestsPerConnection: 100,
 *   },
 * );
 * const answer = await fetch(`http://127.0.0.1:${server.port}/`);
 * console.log(await answer.text()); // "hi\n"
 * await server.close();
 * ```
 *
 * @param deno `Deno`, or what stands for it.
 * @param route The answers.
 * @param options Where to listen, and the limits.
 * @returns The running server.
 * @throws {Error} When the port cannot be bound.
 */
export function serveDeno(
  deno: DenoNet,
  route: (request: HealthRequest) => Promise<HealthAnswer>,
  options: { port: number; host: string } & ConnectionLimits,
): RuntimeServer {
  const listener = deno.listen({ port: options.port, hostname: options.host });
  const close = (conn: DenoConn) => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const pool = new ConnectionPool<DenoConn>({
    max: options.maxConnections,
    close,
  });
  const tasks = new Set<Promise<void>>();
  let closed = false;

  const serve = async (conn: DenoConn) => {
    const buffer = new Uint8Array(MAX_HEAD_BYTES);
    let filled = 0;
    let served = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = (ms: number, reason: ClosedReason | undefined) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (reason) pool.count(reason);
        close(conn);
      }, ms);
    };
    try {
      while (!closed && served < options.maxRequestsPerConnection) {
        pool.waiting(conn);
        // A request starts at the connection's start, or at the first byte
        // after the last answer; a kept-alive connection idles until then.
        let started = performance.now();
        if (served === 0 || filled > 0) {
          deadline(options.headTimeoutMs, "head_timeout");
        } else deadline(options.keepAliveTimeoutMs, undefined);
        // Pipelined bytes left from the last request are scanned once more;
        // every byte read after is scanned once.
        let end = findHeadEnd(buffer, 0, filled);
        while (end < 0) {
          if (filled === buffer.length) {
            pool.count("head_too_large");
            await writeAnswer(
              conn,
              errorAnswer(431, "request head over 8 KiB"),
              false,
              false,
            );
            return;
          }
          const n = await conn.read(buffer.subarray(filled));
          if (n === null) return;
          if (filled === 0 && served > 0) {
            started = performance.now();
            deadline(options.headTimeoutMs, "head_timeout");
          }
          const from = filled;
          filled += n;
          end = findHeadEnd(buffer, from, filled);
        }
        pool.busy(conn);
        deadline(
          Math.max(
            0,
            started + options.exchangeTimeoutMs - performance.now(),
          ),
          "exchange_timeout",
        );
        const head = parseHead(buffer.subarray(0, end));
        buffer.copyWithin(0, end, filled);
        filled -= end;
        if ("error" in head) {
          await writeAnswer(
            conn,
            errorAnswer(head.error, "bad request"),
            false,
            false,
          );
          return;
        }
        // Request bodies are not read: answer, then close (nothing of the
        // body can be taken for a next request).
        const length = head.headers.get("content-length");
        if (length !== undefined && !/^\d+$/.test(length)) {
          await writeAnswer(
            conn,
            errorAnswer(400, "bad content-length"),
            false,
            false,
          );
          return;
        }
        const hasBody = head.headers.has("transfer-encoding") ||
          (length !== undefined && Number(length) > 0);
        const keepAlive = !hasBody && head.minor === 1 &&
          !/(^|,)\s*close\s*(,|$)/i.test(
            head.headers.get("connection") ?? "",
          ) &&
          served + 1 < options.maxRequestsPerConnection;
        const answer = await route({
          method: head.method,
          target: head.target,
          authorization: head.headers.get("authorization"),
        });
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
      pool.release(conn);
      close(conn);
    }
  };

  const acceptLoop = async () => {
    let backoff = 10;
    while (!closed) {
      let conn: DenoConn;
      try {
        conn = await listener.accept();
        backoff = 10;
      } catch {
        if (closed) return;
        // Out of descriptors (EMFILE) or the like: wait for some to be freed.
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(1_000, backoff * 2);
        continue;
      }
      // At the cap, the heads of the connections just taken in are read
      // first: one of them may be a prober's, which must not be evicted.
      if (pool.full) await new Promise((resolve) => setImmediate(resolve));
      if (closed || !pool.admit(conn)) {
        close(conn);
        continue;
      }
      const task = serve(conn);
      tasks.add(task);
      void task.finally(() => tasks.delete(task));
    }
  };
  const loop = acceptLoop();

  return {
    port: listener.addr.port,
    pool,
    async close() {
      if (closed) return;
      closed = true;
      listener.close();
      for (const conn of [...pool.connections()]) close(conn);
      await loop;
      await Promise.all([...tasks]);
    },
  };
}

function errorAnswer(status: number, error: string): HealthAnswer {
  const body = encoder.encode(JSON.stringify({ error }) + "\n");
  return {
    status,
    headers: {
      "content-type": "application/json",
      "cache-control": "no-store",
    },
    parts: [body],
    length: body.length,
  };
}

/** Writes an answer: the head, then the body unless for HEAD. */
async function writeAnswer(
  conn: DenoConn,
  answer: HealthAnswer,
  head: boolean,
  keepAlive: boolean,
): Promise<void> {
  let text = `HTTP/1.1 ${answer.status} ${
    REASONS[answer.status] ?? "Unknown"
  }\r\n`;
  for (const [name, value] of Object.entries(answer.headers)) {
    text += `${name}: ${value}\r\n`;
  }
  text += `content-length: ${answer.length}\r\nconnection: ${
    keepAlive ? "keep-alive" : "close"
  }\r\n\r\n`;
  const start = encoder.encode(text);
  if (head) return await writeAll(conn, start);
  if (answer.length <= ONE_WRITE_BYTES) {
    return await writeAll(conn, concatBytes([start, ...answer.parts]));
  }
  await writeAll(conn, start);
  for (const part of answer.parts) await writeAll(conn, part);
}

async function writeAll(conn: DenoConn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await conn.write(bytes.subarray(offset));
  }
}
