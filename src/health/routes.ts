/**
 * What the health port answers, whatever the runtime's server: `/healthz`
 * (liveness), `/readyz` (readiness), `/metrics` (Prometheus) and `/status`
 * (the JSON snapshot), with the rules off loopback.
 *
 * @module
 */
import process from "node:process";
import type { McpTracker } from "../mcp/tracker.ts";
import type { HeartbeatMetrics, HeartbeatStatus } from "../schedule/types.ts";
import type { ConnectionFigures } from "./connections.ts";
import { bearerMatches } from "./exposure.ts";
import { renderMetrics } from "./metrics.ts";
import { liveness, readiness } from "./probes.ts";
import { processFigures } from "./process_metrics.ts";
import { EXPOSITION_CONTENT_TYPE } from "./prometheus.ts";
import type { StatusCache } from "./status_body.ts";

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

/** A request, as the server read it. */
export interface HealthRequest {
  /** The method, such as `GET`. */
  method: string;
  /** The request target: a path and maybe a `?query`. */
  target: string;
  /** The `Authorization` header, if any. */
  authorization?: string;
}

/** An answer: status, headers (without `content-length`), body parts. */
export interface HealthAnswer {
  /** The HTTP status code. */
  status: number;
  /** Header names (lower case) to values. */
  headers: Record<string, string>;
  /** The body, in parts (the server writes none of it for HEAD). */
  parts: Uint8Array[];
  /** The body's length in bytes: `content-length`, for GET and HEAD. */
  length: number;
  /** Called once the answer is written or abandoned. */
  done?(): void;
}

/** What the routes need besides the source. */
export interface RoutesOptions {
  /** The heartbeat and friends. */
  source: HealthSource;
  /** The snapshot cache `/status` and `/readyz` share. */
  statusCache: StatusCache;
  /** Whether the port is reachable from other machines (bound off loopback). */
  exposed: boolean;
  /** `MOLECULE_HEALTH_TOKEN`, if set. */
  token?: string;
  /** The readiness window, in ms. */
  staleWindowMs: number;
  /** The event loop's lag above which liveness fails, in ms. */
  maxLoopLagMs: number;
  /** The event loop's lag now, in ms. */
  loopLagMs(): number;
  /** The health port's connections. */
  connections(): ConnectionFigures;
  /** `/status` answers written at once at most; past it, 503. @default {8} */
  maxStatusWriters?: number;
}

const encoder = new TextEncoder();
const COMMON = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
};
const PATHS = "/healthz, /readyz, /metrics or /status";

/**
 * The health port's routes: a function from a request to its answer.
 * Methods other than GET and HEAD are 405 with `Allow`; HEAD is answered as
 * GET (the server leaves the body out).
 *
 * - `/healthz`: 200 `{"status":"ok"}` while the process works (see
 *   `liveness`), else 503 with the reasons.
 * - `/readyz`: 200 while every served workspace had a beat accepted within
 *   the stale window, else 503 with the reasons; `?verbose` lists them.
 *   Ids are named only on loopback or with the token.
 * - `/metrics`: the Prometheus text exposition.
 * - `/status`: the snapshot, cached for a second. With a token set it needs
 *   `Authorization: Bearer <token>` (401 otherwise); off loopback without
 *   a token it is 404.
 *
 * @example
 * ```ts
 * import { startHeartbeat } from "../schedule/start_heartbeat.ts";
 * import { createRoutes } from "./routes.ts";
 * import { createStatusCache } from "./status_body.ts";
 * const hb = startHeartbeat({
 *   platformUrl: "http://127.0.0.1:9",
 *   workspaces: [{ id: "ws-1", token: "tok-0123456789" }],
 *   signal: AbortSignal.abort(),
 * });
 * const answer = createRoutes({
 *   source: hb,
 *   statusCache: createStatusCache(() => hb.status()),
 *   exposed: false,
 *   staleWindowMs: 180_000,
 *   maxLoopLagMs: 5_000,
 *   loopLagMs: () => 0,
 *   connections: () => ({ open: 1, closed: {} }),
 * });
 * const healthz = await answer({ method: "GET", target: "/healthz" });
 * console.log(healthz.status); // 503: the heartbeat is stopped
 * ```
 *
 * @param options The source and the rules.
 * @returns The routes.
 */
export function createRoutes(
  options: RoutesOptions,
): (request: HealthRequest) => Promise<HealthAnswer> {
  const maxStatusWriters = options.maxStatusWriters ?? 8;
  let statusWriters = 0;
  const runtime = runtimeName();

  const route = async (request: HealthRequest): Promise<HealthAnswer> => {
    const method = request.method;
    const at = request.target.indexOf("?");
    const path = at === -1 ? request.target : request.target.slice(0, at);
    const query = new URLSearchParams(
      at === -1 ? "" : request.target.slice(at + 1),
    );
    const known = path === "/healthz" || path === "/readyz" ||
      path === "/metrics" || path === "/status";
    if (!known) return json(404, { error: `not found: try ${PATHS}` });
    if (method !== "GET" && method !== "HEAD") {
      return json(405, { error: "use GET or HEAD" }, { allow: "GET, HEAD" });
    }
    const verbose = query.has("verbose") &&
      !/^(0|false|no)$/i.test(query.get("verbose") ?? "");
    const authorized = bearerMatches(request.authorization, options.token);

    if (path === "/healthz") {
      const m = options.source.metrics();
      const lag = options.loopLagMs();
      const r = liveness(m, {
        loopLagMs: lag,
        maxLoopLagMs: options.maxLoopLagMs,
      });
      const checks = verbose
        ? {
          checks: {
            stopping: m.stopped,
            unarmedWorkspaces: m.unarmed,
            eventLoopLagMs: Math.round(lag),
            maxEventLoopLagMs: options.maxLoopLagMs,
          },
        }
        : {};
      return r.ok
        ? json(200, { status: "ok", ...checks })
        : json(503, { status: "unhealthy", reasons: r.reasons, ...checks });
    }

    if (path === "/readyz") {
      const r = readiness(options.statusCache.snapshot(), {
        staleWindowMs: options.staleWindowMs,
        nameIds: !options.exposed || authorized,
        verbose,
      });
      return r.ok
        ? json(200, { status: "ready", served: r.served })
        : json(503, {
          status: "not ready",
          served: r.served,
          reasons: r.reasons,
          ...(r.notReady ? { notReady: r.notReady } : {}),
        });
    }

    if (path === "/metrics") {
      const tracker = options.source.mcp;
      const text = renderMetrics({
        metrics: options.source.metrics(),
        ...(tracker
          ? { mcp: { ...tracker.totals(), active: tracker.active } }
          : {}),
        logLinesDropped: options.source.logLinesDropped?.() ?? 0,
        loopLagSeconds: options.loopLagMs() / 1000,
        connections: options.connections(),
        process: await processFigures(),
        runtime,
        ...(options.source.shard ? { shard: options.source.shard } : {}),
      });
      const body = encoder.encode(text);
      return {
        status: 200,
        headers: { "content-type": EXPOSITION_CONTENT_TYPE, ...COMMON },
        parts: [body],
        length: body.length,
      };
    }

    // /status: every workspace id, tool names and error texts.
    if (options.token !== undefined && !authorized) {
      return json(401, {
        error: "/status needs Authorization: Bearer $MOLECULE_HEALTH_TOKEN",
      }, { "www-authenticate": 'Bearer realm="molecule-heartbeat"' });
    }
    if (options.exposed && options.token === undefined) {
      return json(404, {
        error:
          "not found: off loopback, /status is served only with MOLECULE_HEALTH_TOKEN set",
      });
    }
    if (statusWriters >= maxStatusWriters) {
      return json(503, { error: "busy: too many /status answers at once" }, {
        "retry-after": "1",
      });
    }
    statusWriters++;
    let released = false;
    const done = () => {
      if (!released) statusWriters--;
      released = true;
    };
    try {
      const body = await options.statusCache.body();
      return {
        status: 200,
        headers: { "content-type": "application/json", ...COMMON },
        parts: body.parts,
        length: body.length,
        done,
      };
    } catch (error) {
      done();
      throw error;
    }
  };

  return async (request) => {
    try {
      return await route(request);
    } catch {
      return json(500, { error: "internal error" });
    }
  };
}

function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): HealthAnswer {
  const bytes = encoder.encode(JSON.stringify(body, null, 2) + "\n");
  return {
    status,
    headers: { "content-type": "application/json", ...COMMON, ...headers },
    parts: [bytes],
    length: bytes.length,
  };
}

/** The runtime's name and version, for `build_info`. */
function runtimeName(): { name: string; version: string } {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.deno) return { name: "deno", version: versions.deno };
  if (versions.bun) return { name: "bun", version: versions.bun };
  return { name: "node", version: versions.node ?? "unknown" };
}
