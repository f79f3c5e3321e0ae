/**
 * The health server: `/healthz`, `/readyz`, `/metrics` and `/status` on a
 * port of its own, on either runtime, hardened against hostile clients.
 *
 * @module
 */
import type { Socket } from "node:net";
import process from "node:process";
import type { McpTracker } from "../mcp/tracker.ts";
import type { HeartbeatMetrics, HeartbeatStatus } from "../schedule/types.ts";
import { STALE_AFTER_MS } from "../shared/constants.ts";
import { rememberSecret } from "../shared/mask.ts";
import { bearerMatches, isLoopbackHost } from "./exposure.ts";
import {
  COMMON,
  type Conn,
  type ConnectionLimits,
  createHttpServer,
  type HealthAnswer,
  type HealthRequest,
  type HttpServer,
  json,
  type Listener,
} from "./http_server.ts";
import { startLoopLagMonitor } from "./loop_lag.ts";
import { EXPOSITION_CONTENT_TYPE, renderMetrics } from "./metrics.ts";
import { liveness, readiness } from "./probes.ts";
import { processFigures } from "./process_metrics.ts";
import { createStatusCache } from "./status_body.ts";
export { offLoopbackWarning } from "./exposure.ts";

/** What the health server reads: the heartbeat, and in the command the wrapper's tracker and log writer. */
export interface HealthSource {
  /** A status snapshot (`HeartbeatHandle.status`). */
  status(): HeartbeatStatus;
  /** The fleet's figures (`HeartbeatHandle.metrics`). */
  metrics(): HeartbeatMetrics;
  /** The MCP tracker, in wrapper mode: its tool calls go to `/metrics`. */
  mcp?: Pick<McpTracker, "totals" | "active">;
  /** Log lines dropped so far (the log writer's `dropped`). @default {0} */
  logLinesDropped?(): number;
  /**
   * The shard of a sharded workspaces list served (`--shard` of
   * `--total-shards`): in `/metrics` as `shard_info`, in `/status` as
   * `shard`. @default {not sharded}
   */
  shard?: { index: number; total: number };
}

/** Options of {@link startHealthServer}. */
export interface HealthServerOptions extends ConnectionLimits {
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
  /** The event loop's lag above which `/healthz` fails, in ms. @default {5000} */
  maxLoopLagMs?: number;
}

const encoder = new TextEncoder();
const PATHS = "/healthz, /readyz, /metrics or /status";
/** `/status` answers written at once at most; past it, 503. */
const MAX_STATUS_WRITERS = 8;

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
 * Serves the health endpoints of a heartbeat (GET, and HEAD answered as
 * GET without the body; other methods are 405 with `Allow`):
 *
 * - `/healthz`, liveness: 200 `{"status":"ok"}` while the process works
 *   (not stopping, every served workspace has a beat armed or in flight,
 *   the event loop on time); never 503 because of the platform or a
 *   workspace. Else 503 with the reasons.
 * - `/readyz`, readiness: 200 while every served workspace had a beat
 *   accepted within the stale window, else 503 with the reasons
 *   (`?verbose` lists the workspaces).
 * - `/metrics`: Prometheus text exposition 0.0.4.
 * - `/status`: the JSON snapshot, one workspace per line, cached for a
 *   second (and shared with `/readyz`), at most 8 answers written at once
 *   (else 503). With a token set it needs `Authorization: Bearer <token>`
 *   (401 otherwise).
 *
 * Off loopback, `/status` needs the token (404 without one) and `/readyz`
 * names no ids without it. Connections are capped (64), a head must come
 * within 2 s and fit 8 KiB (else 431), an exchange ends within 10 s.
 * Accept errors (descriptors run out, EMFILE) never stop it. It is a small
 * HTTP/1.1 server of its own (`http_server.ts`), over `Deno.listen` on
 * Deno and `node:net` on Node.
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
  const exposed = options.exposed ?? !isLoopbackHost(options.host);
  const staleWindowMs = options.staleWindowMs ?? STALE_AFTER_MS;
  const maxLoopLagMs = options.maxLoopLagMs ?? 5_000;
  // Masked wherever it would be echoed, as every token is.
  if (options.token !== undefined) rememberSecret(options.token);
  const lag = startLoopLagMonitor();
  const statusCache = createStatusCache(() => source.status(), {
    shard: source.shard,
  });
  let statusWriters = 0;
  const runtime = runtimeName();

  const answer = async (request: HealthRequest): Promise<HealthAnswer> => {
    const [path, ...query] = request.target.split("?");
    const params = new URLSearchParams(query.join("?"));
    const known = ["/healthz", "/readyz", "/metrics", "/status"];
    if (!known.includes(path)) {
      return json(404, { error: `not found: try ${PATHS}` });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return json(405, { error: "use GET or HEAD" }, { allow: "GET, HEAD" });
    }
    const verbose = params.has("verbose") &&
      !/^(0|false|no)$/i.test(params.get("verbose") ?? "");
    const authorized = bearerMatches(
      request.headers.get("authorization"),
      options.token,
    );

    if (path === "/healthz") {
      const m = source.metrics();
      const loopLagMs = lag.lagMs();
      const r = liveness(m, { loopLagMs, maxLoopLagMs });
      const checks = verbose
        ? {
          stopping: m.stopped,
          unarmedWorkspaces: m.unarmed,
          eventLoopLagMs: Math.round(loopLagMs),
          maxEventLoopLagMs: maxLoopLagMs,
        }
        : undefined; // left out
      return r.ok
        ? json(200, { status: "ok", checks })
        : json(503, { status: "unhealthy", reasons: r.reasons, checks });
    }

    if (path === "/readyz") {
      const r = readiness(statusCache.snapshot(), {
        staleWindowMs,
        nameIds: !exposed || authorized,
        verbose,
      });
      return r.ok
        ? json(200, { status: "ready", served: r.served })
        : json(503, {
          status: "not ready",
          served: r.served,
          reasons: r.reasons,
          notReady: r.notReady, // left out when undefined
        });
    }

    if (path === "/metrics") {
      const tracker = source.mcp;
      const text = renderMetrics({
        metrics: source.metrics(),
        mcp: tracker && { ...tracker.totals(), active: tracker.active },
        logLinesDropped: source.logLinesDropped?.() ?? 0,
        loopLagSeconds: lag.lagMs() / 1000,
        connections: http.figures(),
        process: await processFigures(),
        runtime,
        shard: source.shard,
      });
      return {
        status: 200,
        headers: { "content-type": EXPOSITION_CONTENT_TYPE, ...COMMON },
        parts: [encoder.encode(text)],
      };
    }

    // /status: every workspace id, tool names and error texts.
    if (options.token !== undefined && !authorized) {
      return json(401, {
        error: "/status needs Authorization: Bearer $MOLECULE_HEALTH_TOKEN",
      }, { "www-authenticate": 'Bearer realm="molecule-heartbeat"' });
    }
    if (exposed && options.token === undefined) {
      return json(404, {
        error:
          "not found: off loopback, /status is served only with MOLECULE_HEALTH_TOKEN set",
      });
    }
    const { parts } = await statusCache.body();
    if (statusWriters >= MAX_STATUS_WRITERS) {
      return json(503, { error: "busy: too many /status answers at once" }, {
        "retry-after": "1",
      });
    }
    statusWriters++;
    return {
      status: 200,
      headers: { "content-type": "application/json", ...COMMON },
      parts,
      done: () => void statusWriters--,
    };
  };

  const http = createHttpServer(answer, options);
  let listener: Listener;
  try {
    const deno = (globalThis as { Deno?: DenoNet }).Deno;
    listener = deno?.listen
      ? listenDeno(deno, http, options)
      : await listenNode(http, options);
  } catch (error) {
    lag.stop();
    throw error;
  }
  return {
    url: `http://${
      options.host.includes(":") ? `[${options.host}]` : options.host
    }:${listener.port}`,
    exposed,
    async close() {
      lag.stop();
      const stopped = listener.close();
      await http.close();
      await stopped;
    },
  };
}

/** The part of `Deno` the server uses. */
interface DenoNet {
  /** Binds a TCP listener. */
  listen(options: { port: number; hostname: string }): {
    addr: { port: number };
    accept(): Promise<Conn>;
    close(): void;
  };
}

/**
 * Listens with `Deno.listen` (Deno's `node:http` stops accepting for good
 * after EMFILE, and `Deno.serve` throws it at the top level): an accept
 * error never stops it.
 */
function listenDeno(
  deno: DenoNet,
  http: HttpServer,
  at: { port: number; host: string },
): Listener {
  const listener = deno.listen({ port: at.port, hostname: at.host });
  let closed = false;
  const loop = (async () => {
    let backoff = 10;
    while (!closed) {
      try {
        const conn = await listener.accept();
        backoff = 10;
        await http.take(conn);
      } catch {
        if (closed) return;
        // Out of descriptors (EMFILE) or the like: wait for some to be freed.
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(1_000, backoff * 2);
      }
    }
  })();
  return {
    port: listener.addr.port,
    close() {
      if (!closed) listener.close();
      closed = true;
      return loop;
    },
  };
}

/** The runtime's name and version, for `build_info`. */
function runtimeName(): { name: string; version: string } {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.deno) return { name: "deno", version: versions.deno };
  if (versions.bun) return { name: "bun", version: versions.bun };
  return { name: "node", version: versions.node ?? "unknown" };
}

/**
 * Listens with `node:net`, on Node. `maxConnections` is a backstop at twice
 * the cap, because Node counts a socket the cap closed until its `close`
 * event, a turn of the loop later, while its descriptor is freed at once.
 */
async function listenNode(
  http: HttpServer,
  at: { port: number; host: string },
): Promise<Listener> {
  // Loaded here: Deno listens with `Deno.listen`, and never needs it.
  const { createServer } = await import("node:net");
  const server = createServer({ noDelay: true }, (socket) => {
    void http.take(socketConn(socket));
  });
  server.maxConnections = http.maxConnections * 2;
  server.on("drop", () => http.count("over_cap"));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : at.port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A socket as a {@link Conn}: read as it comes, written as it drains. */
function socketConn(socket: Socket): Conn {
  socket.on("error", () => {}); // a read or a write fails with it
  const chunks = socket[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  let rest: Uint8Array = new Uint8Array(0);
  return {
    async read(p) {
      if (rest.length === 0) {
        const next = await chunks.next();
        if (next.done) return null;
        rest = next.value;
      }
      const n = Math.min(p.length, rest.length);
      p.set(rest.subarray(0, n));
      rest = rest.subarray(n);
      return n;
    },
    write: (p) =>
      new Promise((resolve, reject) =>
        socket.write(p, (error) => error ? reject(error) : resolve(p.length))
      ),
    close: () => socket.destroy(),
  };
}
