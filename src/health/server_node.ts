/**
 * The health server on Node: `node:http` with its limits set to match the
 * Deno server's: `maxHeaderSize` 8 KiB (431), `headersTimeout` (the head
 * deadline, checked every 250 ms), `requestTimeout` and a timer per answer
 * (the exchange deadline), `keepAliveTimeout`, `maxRequestsPerSocket`, and
 * the connection cap (the shared {@link ConnectionPool}; `maxConnections`
 * is a backstop at twice the cap, because Node counts a socket the pool
 * closed until its `close` event, a turn of the loop later, while its
 * descriptor is freed at once).
 *
 * @module
 */
import {
  createServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import { setImmediate } from "node:timers";
import { ConnectionPool } from "./connections.ts";
import { MAX_HEAD_BYTES } from "./http_head.ts";
import type { HealthAnswer, HealthRequest } from "./routes.ts";
import type { ConnectionLimits, RuntimeServer } from "./server_deno.ts";

/**
 * Serves `route` with `node:http`.
 *
 * @example
 * ```ts
 * import { serveNode } from "./server_node.ts";
 * const body = new TextEncoder().encode("hi\n");
 * const server = await serveNode(
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
 * @param route The answers.
 * @param options Where to listen, and the limits.
 * @returns The running server.
 * @throws {Error} When the port cannot be bound.
 */
export async function serveNode(
  route: (request: HealthRequest) => Promise<HealthAnswer>,
  options: { port: number; host: string } & ConnectionLimits,
): Promise<RuntimeServer> {
  const pool = new ConnectionPool<Socket>({
    max: options.maxConnections,
    close: (socket) => socket.destroy(),
  });
  // Requests being answered per socket (pipelining may overlap them).
  const answering = new WeakMap<Socket, number>();

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    answering.set(socket, (answering.get(socket) ?? 0) + 1);
    pool.busy(socket);
    const timer = setTimeout(() => {
      pool.count("exchange_timeout");
      socket.destroy();
    }, options.exchangeTimeoutMs);
    let answer: HealthAnswer | undefined;
    let closed = false;
    res.once("close", () => {
      closed = true;
      clearTimeout(timer);
      answer?.done?.();
      const left = (answering.get(socket) ?? 1) - 1;
      answering.set(socket, left);
      if (left === 0) pool.waiting(socket);
    });
    // Request bodies are not read: answer, then close.
    const length = req.headers["content-length"];
    const closeAfter = req.headers["transfer-encoding"] !== undefined ||
      (length !== undefined && length !== "0");
    void route({
      method: req.method ?? "",
      target: req.url ?? "/",
      authorization: req.headers.authorization,
    }).then(async (a) => {
      answer = a;
      // The client left while the answer was made: release it now.
      if (closed || res.destroyed) return void a.done?.();
      res.writeHead(a.status, {
        ...a.headers,
        "content-length": String(a.length),
        ...(closeAfter ? { connection: "close" } : {}),
      });
      if (req.method === "HEAD") return void res.end();
      for (const part of a.parts) {
        if (res.destroyed) return;
        if (!res.write(part)) await drained(res);
      }
      res.end();
    }).catch(() => socket.destroy());
  };

  const server = createServer({
    headersTimeout: options.headTimeoutMs,
    requestTimeout: Math.max(options.headTimeoutMs, options.exchangeTimeoutMs),
    keepAliveTimeout: options.keepAliveTimeoutMs,
    // Node checks the two deadlines above this often (30 s by default).
    connectionsCheckingInterval: Math.min(250, options.headTimeoutMs),
    maxHeaderSize: MAX_HEAD_BYTES,
    requireHostHeader: false,
  }, handle);
  server.maxConnections = options.maxConnections * 2;
  server.maxRequestsPerSocket = options.maxRequestsPerConnection;
  const admit = (socket: Socket) => {
    if (socket.destroyed) return;
    if (!pool.admit(socket, (answering.get(socket) ?? 0) > 0)) {
      socket.destroy();
      return;
    }
    socket.once("close", () => pool.release(socket));
  };
  // At the cap, connections are taken in after this turn of the event loop,
  // once the heads of those accepted with them are read: a burst of accepts
  // must not evict a prober whose head is already there.
  let pending: Socket[] = [];
  server.on("connection", (socket: Socket) => {
    if (!pool.full && pending.length === 0) return admit(socket);
    if (pending.push(socket) > 1) return;
    setImmediate(() => {
      const batch = pending;
      pending = [];
      for (const s of batch) admit(s);
    });
  });
  server.on("drop", () => pool.count("over_cap"));
  server.on("clientError", (error: Error & { code?: string }, socket) => {
    if (error.code === "HPE_HEADER_OVERFLOW") {
      pool.count("head_too_large");
      answerRaw(socket, "431 Request Header Fields Too Large");
    } else if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      pool.count("head_timeout");
    } else if (error.code !== "ECONNRESET") {
      answerRaw(socket, "400 Bad Request");
    }
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : options.port,
    pool,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Writes a bodiless answer straight to a socket no answer has started on. */
function answerRaw(socket: import("node:stream").Duplex, status: string): void {
  const started = (socket as { _httpMessage?: unknown })._httpMessage;
  if (!socket.writable || started) return;
  socket.write(
    `HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
  );
}

/** Resolves when the response can take more, or is gone. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
