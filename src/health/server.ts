/**
 * The health server: `/healthz`, `/readyz`, `/metrics` and `/status` on a
 * port of its own, on either runtime, hardened against hostile clients.
 *
 * @module
 */
import { STALE_AFTER_MS } from "../shared/constants.ts";
import { rememberSecret } from "../shared/mask.ts";
import { isLoopbackHost } from "./exposure.ts";
import { startLoopLagMonitor } from "./loop_lag.ts";
import { createRoutes, type HealthSource } from "./routes.ts";
import { type DenoNet, type RuntimeServer, serveDeno } from "./server_deno.ts";
import { createStatusCache } from "./status_body.ts";

export type { HealthSource } from "./routes.ts";
export { offLoopbackWarning } from "./exposure.ts";

/** Options of {@link startHealthServer}. */
export interface HealthServerOptions {
  /** The port; 0 picks a free one. */
  port: number;
  /** The address to bind, such as `127.0.0.1` or `0.0.0.0`. */
  host: string;
  /**
   * `MOLECULE_HEALTH_TOKEN`: when set, `/status` needs `Authorization:
   * Bearer <token>`, and off loopback it lets `/readyz` name ids.
   * @default {none: /status open on loopback, 404 off it}
   */
  token?: string;
  /**
   * Whether the port counts as reachable from other machines (the rules off
   * loopback); a proxy beside the process on loopback may want them too.
   * @default {whether host is not a loopback address}
   */
  exposed?: boolean;
  /** How long a workspace stays ready after an accepted beat, in ms. @default {STALE_AFTER_MS} */
  staleWindowMs?: number;
  /** Health connections open at once at most. @default {64} */
  maxConnections?: number;
  /** Time a client has to send its request head, in ms. @default {2000} */
  headTimeoutMs?: number;
  /** Time for a whole exchange, head read and answer written, in ms. @default {10000} */
  exchangeTimeoutMs?: number;
  /** Time a kept-alive connection may idle between requests, in ms. @default {5000} */
  keepAliveTimeoutMs?: number;
  /** The event loop's lag above which `/healthz` fails, in ms. @default {5000} */
  maxLoopLagMs?: number;
}

/** A running health server. */
export interface HealthServer {
  /** The base URL, such as `http://127.0.0.1:8081`. */
  url: string;
  /** Whether it is reachable from other machines (bound off loopback, or `exposed`). */
  exposed: boolean;
  /** Stops it: no more connections, the open ones closed. */
  close(): Promise<void>;
}

/**
 * Serves the health endpoints of a heartbeat:
 *
 * - `GET /healthz`, liveness: 200 while the process works (not stopping,
 *   every served workspace has a beat armed or in flight, the event loop
 *   on time); never 503 because of the platform or a workspace.
 * - `GET /readyz`, readiness: 200 while every served workspace had a beat
 *   accepted within the stale window, else 503 with the reasons
 *   (`?verbose` lists the workspaces).
 * - `GET /metrics`: Prometheus text exposition 0.0.4.
 * - `GET /status`: the JSON snapshot, one workspace per line, cached for a
 *   second.
 *
 * Off loopback, `/status` needs the token (404 without one) and `/readyz`
 * names no ids without it. Connections are capped (64), a head must come
 * within 2 s and fit 8 KiB (else 431), an exchange ends within 10 s.
 * Accept errors (descriptors run out, EMFILE) never stop it. On Deno it is
 * a small HTTP/1.1 server over `Deno.listen`; on Node, `node:http`.
 *
 * @example
 * ```ts
 * import { startHeartbeat } from "../schedule/start_heartbeat.ts";
 * import { startHealthServer } from "./server.ts";
 * const hb = startHeartbeat({
 *   platformUrl: "http://127.0.0.1:9",
 *   workspaces: [{ id: "ws-1", token: "tok-0123456789" }],
 *   signal: AbortSignal.abort(),
 * });
 * const server = await startHealthServer(hb, { host: "127.0.0.1", port: 0 });
 * const answer = await fetch(`${server.url}/metrics`);
 * console.log((await answer.text()).includes("molecule_heartbeat_beats_total")); // true
 * await server.close();
 * ```
 *
 * @param source The heartbeat (and in wrapper mode its tracker, the log writer's drops).
 * @param options Where to listen and the limits.
 * @returns The running server.
 * @throws {Error} When the port cannot be bound.
 */
export async function startHealthServer(
  source: HealthSource,
  options: HealthServerOptions,
): Promise<HealthServer> {
  const limits = {
    maxConnections: options.maxConnections ?? 64,
    headTimeoutMs: options.headTimeoutMs ?? 2_000,
    exchangeTimeoutMs: options.exchangeTimeoutMs ?? 10_000,
    keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? 5_000,
    maxRequestsPerConnection: 100,
  };
  const exposed = options.exposed ?? !isLoopbackHost(options.host);
  // Masked wherever it would be echoed, as every token is.
  if (options.token !== undefined) rememberSecret(options.token);
  const lag = startLoopLagMonitor();
  let server: RuntimeServer | undefined;
  const route = createRoutes({
    source,
    statusCache: createStatusCache(
      () => source.status(),
      source.shard ? { shard: source.shard } : {},
    ),
    exposed,
    ...(options.token !== undefined ? { token: options.token } : {}),
    staleWindowMs: options.staleWindowMs ?? STALE_AFTER_MS,
    maxLoopLagMs: options.maxLoopLagMs ?? 5_000,
    loopLagMs: () => lag.lagMs(),
    connections: () => server?.pool.figures() ?? { open: 0, closed: {} },
  });
  const at = { port: options.port, host: options.host, ...limits };
  try {
    const deno = (globalThis as { Deno?: DenoNet }).Deno;
    if (deno?.listen) {
      server = serveDeno(deno, route, at);
    } else {
      const { serveNode } = await import("./server_node.ts");
      server = await serveNode(route, at);
    }
  } catch (error) {
    lag.stop();
    throw error;
  }
  const running = server;
  return {
    url: baseUrl(options.host, running.port),
    exposed,
    async close() {
      lag.stop();
      await running.close();
    },
  };
}

function baseUrl(host: string, port: number): string {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}
