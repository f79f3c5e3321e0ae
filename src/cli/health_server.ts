/**
 * Health endpoints for probes and supervisors: `GET /healthz` and `GET /status`.
 *
 * @module
 */
import { createServer, type Server } from "node:http";
import { STALE_AFTER_MS } from "../constants.ts";
import type { HeartbeatStatus } from "../start_heartbeat.ts";

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

/**
 * Serves `GET /healthz` (200 while every workspace had an accepted beat in
 * the last 90 s, else 503 with the reasons) and `GET /status` (the JSON
 * snapshot).
 *
 * @throws {Error} When the port cannot be bound.
 */
export async function startHealthServer(
  status: () => HeartbeatStatus,
  options: { port: number; host: string },
): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (code: number, body: unknown) => {
      const text = JSON.stringify(body, null, 2) + "\n";
      res.writeHead(code, {
        "content-type": "application/json",
        "cache-control": "no-store",
      });
      res.end(req.method === "HEAD" ? undefined : text);
    };
    if (req.method !== "GET" && req.method !== "HEAD") {
      return send(405, { error: "use GET" });
    }
    if (path === "/healthz") {
      const reasons = unhealthyReasons(status());
      return reasons.length === 0
        ? send(200, { status: "ok" })
        : send(503, { status: "unhealthy", reasons });
    }
    if (path === "/status") return send(200, status());
    return send(404, { error: "not found: try /healthz or /status" });
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
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as Server & { closeAllConnections?: () => void })
          .closeAllConnections?.();
      }),
  };
}
