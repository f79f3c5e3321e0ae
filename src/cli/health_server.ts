/**
 * Health endpoints for probes and supervisors: `GET /healthz` and `GET /status`.
 *
 * @module
 */
import { createServer, type Server } from "node:http";
import { STALE_AFTER_MS } from "../shared/constants.ts";
import type { HeartbeatStatus } from "../schedule/start_heartbeat.ts";

/** Why the process is not healthy; empty when it is. */
export function unhealthyReasons(
  status: HeartbeatStatus,
  staleAfterMs = STALE_AFTER_MS,
): string[] {
  const reasons: string[] = [];
  if (status.stopped) reasons.push("stopping");
  for (const ws of status.workspaces) {
    if (ws.deleted) {
      reasons.push(`${ws.workspaceId}: deleted on the platform`);
    } else if (ws.paused) {
      // Paused by an operator: its beats stop on purpose; not a fault here.
    } else if (ws.rejected) {
      reasons.push(
        `${ws.workspaceId}: token rejected at register (HTTP ${ws.lastStatus})`,
      );
    } else if (ws.sinceLastSuccessMs === undefined) {
      reasons.push(
        `${ws.workspaceId}: no accepted heartbeat yet${
          ws.lastError ? ` (last error: ${ws.lastError})` : ""
        }`,
      );
    } else if (ws.sinceLastSuccessMs > staleAfterMs) {
      reasons.push(
        `${ws.workspaceId}: last accepted heartbeat ${
          Math.round(ws.sinceLastSuccessMs / 1000)
        } s ago` +
          (ws.lastError ? ` (last error: ${ws.lastError})` : ""),
      );
    }
  }
  return reasons;
}

/** A running health server. */
export interface HealthServer {
  /** The base URL. */
  url: string;
  /** Stops it. */
  close(): Promise<void>;
}

/** What the health server answers to a request: status code and JSON body. */
export function healthAnswer(
  method: string,
  target: string,
  status: () => HeartbeatStatus,
): { code: number; body: unknown } {
  const path = target.split("?")[0];
  if (method !== "GET" && method !== "HEAD") {
    return { code: 405, body: { error: "use GET" } };
  }
  if (path === "/healthz") {
    const reasons = unhealthyReasons(status());
    return reasons.length === 0
      ? { code: 200, body: { status: "ok" } }
      : { code: 503, body: { status: "unhealthy", reasons } };
  }
  if (path === "/status") return { code: 200, body: status() };
  return { code: 404, body: { error: "not found: try /healthz or /status" } };
}

/**
 * Serves `GET /healthz` (200 while every workspace had an accepted beat in
 * the last 90 s, else 503 with the reasons) and `GET /status` (the JSON
 * snapshot). Accept errors (descriptors run out, EMFILE) never stop it: it
 * answers again as soon as descriptors are free. On Deno it is a small
 * HTTP/1.1 server of its own over `Deno.listen`, whose accept loop retries
 * with a short backoff (Deno's `node:http` stops accepting for good after
 * EMFILE, and `Deno.serve` throws it at the top level); on Node, `node:http`.
 *
 * @throws {Error} When the port cannot be bound.
 */
export async function startHealthServer(
  status: () => HeartbeatStatus,
  options: { port: number; host: string },
): Promise<HealthServer> {
  const deno = (globalThis as { Deno?: DenoNet }).Deno;
  if (deno?.listen) return startDenoHealthServer(deno, status, options);
  const server: Server = createServer((req, res) => {
    const { code, body } = healthAnswer(
      req.method ?? "",
      req.url ?? "/",
      status,
    );
    res.writeHead(code, {
      "content-type": "application/json",
      "cache-control": "no-store",
    });
    res.end(
      req.method === "HEAD" ? undefined : JSON.stringify(body, null, 2) + "\n",
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address
    ? address.port
    : options.port;
  return {
    url: baseUrl(options.host, port),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as Server & { closeAllConnections?: () => void })
          .closeAllConnections?.();
      }),
  };
}

function baseUrl(host: string, port: number): string {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

interface DenoConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

interface DenoNet {
  listen(options: { port: number; hostname: string }): {
    addr: { port: number };
    accept(): Promise<DenoConn>;
    close(): void;
  };
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  503: "Service Unavailable",
};

/** Most bytes of a request head read, and how long a client may take to send it. */
const MAX_HEAD_BYTES = 8 * 1024;
const HEAD_TIMEOUT_MS = 2_000;

function startDenoHealthServer(
  deno: DenoNet,
  status: () => HeartbeatStatus,
  options: { port: number; host: string },
): Promise<HealthServer> {
  const listener = deno.listen({ port: options.port, hostname: options.host });
  const open = new Set<DenoConn>();
  let closed = false;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  const serve = async (conn: DenoConn) => {
    open.add(conn);
    const timer = setTimeout(() => conn.close(), HEAD_TIMEOUT_MS);
    try {
      const buffer = new Uint8Array(MAX_HEAD_BYTES);
      let size = 0;
      let head = "";
      while (size < buffer.length) {
        const n = await conn.read(buffer.subarray(size));
        if (n === null) break;
        size += n;
        head = decoder.decode(buffer.subarray(0, size));
        if (head.includes("\r\n\r\n") || head.includes("\n\n")) break;
      }
      const [method = "", target = ""] = head.split(/\r?\n/)[0].split(" ");
      const answer = target.startsWith("/")
        ? healthAnswer(method, target, status)
        : { code: 400, body: { error: "bad request" } };
      const body = method === "HEAD"
        ? new Uint8Array(0)
        : encoder.encode(JSON.stringify(answer.body, null, 2) + "\n");
      const bytes = new Uint8Array([
        ...encoder.encode(
          `HTTP/1.1 ${answer.code} ${REASONS[answer.code] ?? "OK"}\r\n` +
            "content-type: application/json\r\ncache-control: no-store\r\n" +
            `content-length: ${body.length}\r\nconnection: close\r\n\r\n`,
        ),
        ...body,
      ]);
      let offset = 0;
      while (offset < bytes.length) {
        offset += await conn.write(bytes.subarray(offset));
      }
    } catch {
      // a client that went away, or the deadline
    } finally {
      clearTimeout(timer);
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
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
      void serve(conn);
    }
  };
  const loop = acceptLoop();

  return Promise.resolve({
    url: baseUrl(options.host, listener.addr.port),
    async close() {
      closed = true;
      listener.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await loop;
    },
  });
}
