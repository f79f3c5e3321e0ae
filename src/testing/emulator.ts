/**
 * A Molecule platform emulator: today's registry endpoints (PLATFORM.md)
 * on a real HTTP server, with the platform's auth, tenant guard, rate
 * limiter and liveness rules, and fault injection, for testing agents.
 *
 * @module
 */
import {
  createServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { once } from "node:events";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Socket } from "node:net";
import { Buffer } from "node:buffer";
import { isRecord } from "../shared/_json.ts";
import { type Answer, error, fold, Model, type Row } from "./_model.ts";
import type {
  Fault,
  FaultScope,
  PlatformEmulator,
  PlatformEmulatorOptions,
  RequestRecord,
} from "./types.ts";

export type { Fault, PlatformEmulator } from "./types.ts";

/** An injected fault, and how many more requests it applies to. */
type ActiveFault = FaultScope & { fault: Fault; remaining: number };

/**
 * The largest request body the emulator keeps; larger is 413. The
 * emulator's own bound, set far above any agent's request: the platform
 * has none.
 */
const MAX_REQUEST_BYTES = 64 * 1024 * 1024;

/** The content type of the platform's JSON answers (gin's `c.JSON`). */
const JSON_TYPE = "application/json; charset=utf-8";

/** The platform's `CORS_ORIGINS` default. */
const DEFAULT_CORS_ORIGINS = ["http://localhost:3000", "http://localhost:3001"];

/** Paths the tenant guard lets through without the org header (exact matches). */
const TENANT_ALLOWLIST: ReadonlySet<string> = new Set([
  "/health",
  "/buildinfo",
  "/metrics",
  "/registry/register",
  "/registry/heartbeat",
]);

/** Windows the rate limiter keeps at most; the least recently used go first. */
const MAX_WINDOWS = 100_000;

/** The rate limiter's window, in ms (the platform's `interval`). */
const WINDOW_MS = 60_000;

/**
 * The platform's rate limiter (`middleware/ratelimit.go`): `perMinute`
 * requests a minute per key, in a fixed window that opens with the first
 * request of a key and is refilled whole by the first request a minute or
 * more after it opened. A refused request takes nothing and opens nothing,
 * but it is counted against the window like any other (nothing is exempt).
 * Answers carry `X-RateLimit-Limit`, `X-RateLimit-Remaining` (what is left
 * after this request) and `X-RateLimit-Reset` (whole seconds from now until
 * the window resets, truncated: 0 while the window is still full for less
 * than a second; also the `Retry-After` of a refusal).
 */
function rateLimiter(perMinute: number, now: () => number) {
  const rate = Math.max(1, Math.floor(perMinute));
  const windows = new Map<string, { tokens: number; openedAt: number }>();
  return (key: string) => {
    const t = now();
    let window = windows.get(key);
    if (window) {
      windows.delete(key); // re-inserted below: most recently used last
    } else {
      window = { tokens: rate, openedAt: t };
      if (windows.size >= MAX_WINDOWS) {
        windows.delete(windows.keys().next().value!);
      }
    }
    windows.set(key, window);
    if (t - window.openedAt >= WINDOW_MS) {
      window.tokens = rate;
      window.openedAt = t;
    }
    const remaining = Math.max(0, window.tokens - 1);
    const resetSeconds = Math.max(
      0,
      Math.trunc((window.openedAt + WINDOW_MS - t) / 1000),
    );
    const headers = {
      "X-RateLimit-Limit": String(rate),
      "X-RateLimit-Remaining": String(remaining),
      "X-RateLimit-Reset": String(resetSeconds),
    };
    const allowed = window.tokens > 0;
    if (allowed) window.tokens--;
    return { allowed, headers, retryAfterSeconds: resetSeconds };
  };
}

/**
 * Which endpoint a request names (the path as sent when none), and the
 * workspace: the register's `id`, the heartbeat's `workspace_id`, or the
 * id in the path.
 */
function route(pathname: string, body: Record<string, unknown> | undefined) {
  const m =
    /^\/(?:registry\/(register|heartbeat)|workspaces\/([^/]+)(\/state)?)$/
      .exec(pathname);
  let id: unknown;
  try {
    id = m?.[1] === "register"
      ? body?.id
      : m?.[1]
      ? body?.workspace_id
      : m && decodeURIComponent(m[2]);
  } catch {
    // a malformed escape: no id
  }
  return {
    path: !m ? pathname : m[1] ?? (m[3] ? "state" : "workspace"),
    workspaceId: typeof id === "string" && id !== "" ? id : undefined,
  };
}

/**
 * Starts a platform emulator on loopback that answers as today's platform
 * does (PLATFORM.md):
 *
 * - the CORS layer first on every route: an `Origin` that is neither
 *   `http://` or `https://` + the `Host` it sees (`hostSeenAs`, to play a
 *   proxy that rewrites it) nor in `corsOrigins` is 403 with an empty body;
 * - `POST /registry/register` and `/registry/heartbeat` with the let-through
 *   auth (a workspace with no live token is let through whatever the
 *   bearer), an `auth_token` minted by a register when no token is live
 *   (only that one works afterwards; the one minted for a removed workspace
 *   never works), the upsert that creates an unknown id's workspace
 *   (`created`), UUID ids (`uuidIds`), the register-failure marker and its
 *   `degraded` banner, inbound secrets, strict integer fields,
 *   `generation`, and the Redis liveness key (set by register, extended by
 *   heartbeats, re-created only by a register);
 * - `GET /workspaces/:id/state` behind strict auth (a deleted workspace's
 *   tokens are refused: 401), and the open `GET /workspaces/:id` (410 for a
 *   soft-deleted workspace, 404 for a purged or unknown one, 400 for a
 *   non-UUID id);
 * - the tenant guard (`orgId`) and the fixed-window rate limiter
 *   (`rateLimit`), in the platform's order: CORS, rate limiter, tenant
 *   guard, auth;
 *
 * and faults on demand: status codes, delays, hangs, dropped connections,
 * huge or non-JSON bodies, redirects, 401 blips of the token check. Runs on
 * Node and on Deno.
 *
 * @example Test an agent against a failing platform
 * ```ts
 * import { startPlatformEmulator } from "@molecule/heartbeat/testing";
 * const id = "6f1c0a4e-2b7d-4c1e-9a55-3d2f8e7b9c01";
 * const platform = await startPlatformEmulator({ workspaces: { [id]: "t" } });
 * platform.fail({ kind: "status", status: 503 }, { path: "heartbeat", times: 2 });
 * // ... run the agent against platform.url ...
 * await platform.close();
 * ```
 *
 * @example A workspace deleted on the platform
 * ```ts
 * import { startPlatformEmulator } from "@molecule/heartbeat/testing";
 * const id = "6f1c0a4e-2b7d-4c1e-9a55-3d2f8e7b9c01";
 * const platform = await startPlatformEmulator({ workspaces: { [id]: "tok-1" } });
 * platform.remove(id, "soft");
 * const lookup = await fetch(`${platform.url}/workspaces/${id}`);
 * console.log(lookup.status); // 410
 * await lookup.body?.cancel();
 * await platform.close();
 * ```
 *
 * @example Short ids, and an agent that must not create a ghost workspace
 * ```ts
 * import { startPlatformEmulator } from "@molecule/heartbeat/testing";
 * const platform = await startPlatformEmulator({
 *   workspaces: { "ws-1": "tok-1" },
 *   uuidIds: false,
 * });
 * // ... run the agent, configured with a mistyped id, against platform.url ...
 * console.log(platform.created); // [] unless it registered the typo
 * await platform.close();
 * ```
 *
 * @param options Where to listen, which workspaces exist, which of the
 * platform's middleware is on.
 * @returns The running emulator.
 */
export async function startPlatformEmulator(
  options: PlatformEmulatorOptions = {},
): Promise<PlatformEmulator> {
  const model = new Model(options);
  const now = model.now;
  const record = options.record ?? true;
  // gin-contrib/cors: "*" lets every origin through; the others are
  // compared trimmed and in lower case.
  const allowAll = options.corsOrigins?.includes("*") ?? false;
  const corsOrigins = new Set(
    (options.corsOrigins ?? DEFAULT_CORS_ORIGINS).map((o) =>
      o.trim().toLowerCase()
    ),
  );
  const limiter = options.rateLimit === undefined
    ? undefined
    : rateLimiter(options.rateLimit, now);
  const requests: RequestRecord[] = [];
  let faults: ActiveFault[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;

  /** The first fault (an `auth-blip` when `blip`) whose scope matches, used once. */
  const takeFault = (
    path: string,
    workspaceId: string | undefined,
    blip = false,
  ): Fault | undefined => {
    const f = faults.find((f) =>
      (f.fault.kind === "auth-blip") === blip &&
      [undefined, "any", path].includes(f.path) &&
      (f.workspaceId ?? workspaceId) === workspaceId
    );
    if (f && --f.remaining <= 0) faults = faults.filter((x) => x !== f);
    return f?.fault;
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": JSON_TYPE });
        res.end('{"error":"emulator error"}');
      }
    });
  });
  server.keepAliveTimeout = 120_000;
  server.on("connection", (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const at = now();
    const [pathname, query = ""] = (req.url ?? "/").split(/\?(.*)/s);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      if ((size += chunk.length) <= MAX_REQUEST_BYTES) chunks.push(chunk);
    }
    const raw = size > MAX_REQUEST_BYTES
      ? undefined // answered 413
      : Buffer.concat(chunks).toString("utf8");
    let json: unknown;
    try {
      json = raw ? JSON.parse(raw) : undefined;
    } catch {
      // not JSON
    }
    const obj = isRecord(json) ? fold(json) : undefined;
    const { path, workspaceId } = route(pathname, obj);
    const auth = req.headers.authorization ?? "";
    const bearer = auth.startsWith("Bearer ")
      ? auth.slice(7).trim() || undefined
      : undefined;
    const orgHeader = typeof req.headers["x-molecule-org-id"] === "string"
      ? req.headers["x-molecule-org-id"]
      : undefined;
    const rec: RequestRecord = {
      path,
      workspaceId,
      at,
      status: 0,
      origin: req.headers.origin,
      contentType: req.headers["content-type"],
      authorized: false,
      body: json,
      orgId: orgHeader,
      method: req.method ?? "",
      rateLimited: false,
      corsRefused: false,
      authBlip: false,
    };
    const finish = (status: number) => {
      rec.status = status;
      if (record) requests.push(rec);
      options.onRequest?.(rec);
    };
    let extraHeaders: Record<string, string> = {};
    const send = (answer: Answer) => {
      const text = typeof answer.body === "string"
        ? answer.body
        : JSON.stringify(answer.body);
      res.writeHead(answer.status, {
        // An empty body (the CORS layer's 403, the tenant guard's 404) has no type.
        ...(text === "" ? {} : { "content-type": JSON_TYPE }),
        "content-length": String(Buffer.byteLength(text)),
        ...extraHeaders,
        ...answer.headers,
      });
      res.end(text);
      finish(answer.status);
    };

    // Faults stand in front of everything, as a proxy or a broken platform would.
    let fault = takeFault(path, workspaceId);
    if (fault?.kind === "delay") {
      const ms = fault.ms;
      await new Promise((r) => setTimeout(r, ms));
      if (res.destroyed) return finish(0);
      fault = undefined;
    }
    let secretOverride: { value: unknown } | undefined;
    switch (fault?.kind) {
      case "status": {
        if (path === "register" && fault.status !== 200) {
          model.injectedRegisterFailure(workspaceId, bearer);
        }
        return send({
          status: fault.status,
          body: fault.body ?? JSON.stringify({ error: "injected fault" }),
          headers: fault.headers,
        });
      }
      case "reset":
        req.socket.destroy();
        // falls through
      case "hang": // never answer; close() drops the connection
        return finish(0);
      case "reset-mid-body": {
        res.writeHead(200, {
          "content-type": JSON_TYPE,
          "content-length": "1000",
        });
        res.write('{"status":"ok","platform_inbound_secret":"');
        finish(0);
        setTimeout(() => req.socket.destroy(), 5);
        return;
      }
      case "huge-body": {
        res.writeHead(200, { "content-type": JSON_TYPE });
        const chunk = "x".repeat(64 * 1024);
        let left = fault.bytes;
        await pipeline(
          Readable.from(function* () {
            for (; left > 0; left -= chunk.length) yield chunk.slice(0, left);
          }()),
          res,
        ).catch(() => {}); // the client hung up
        return finish(200);
      }
      case "non-json":
        return send({
          status: 200,
          body: "<html><body>Bad gateway, maybe</body></html>",
          headers: { "content-type": "text/html" },
        });
      case "redirect":
        return send({
          status: fault.status ?? 307,
          body: "",
          headers: { location: fault.location },
        });
      case "secret":
        secretOverride = { value: fault.value };
        break;
    }

    // The platform's middleware, in its order: CORS, rate limit, tenant guard.
    const origin = req.headers.origin;
    const hostSeen = options.hostSeenAs ?? req.headers.host ?? "";
    const own = [`http://${hostSeen}`, `https://${hostSeen}`];
    if (origin && !own.includes(origin)) {
      if (!allowAll && !corsOrigins.has(origin)) {
        rec.corsRefused = true;
        return send({ status: 403, body: "" });
      }
      extraHeaders = {
        "Access-Control-Allow-Credentials": "true",
        ...(allowAll
          ? { "Access-Control-Allow-Origin": "*" }
          : { "Access-Control-Allow-Origin": origin, "Vary": "Origin" }),
      };
      if (req.method === "OPTIONS") return send({ status: 204, body: "" });
    }
    if (limiter) {
      // Its own reading of the bearer: "Bearer " in any case, nothing trimmed.
      const token = /^bearer (.+)/is.exec(auth)?.[1];
      const key = orgHeader?.trim()
        ? `org:${orgHeader.trim()}`
        : token !== undefined
        ? `tok:${token}`
        : `ip:${req.socket.remoteAddress ?? ""}`;
      const decision = limiter(key);
      extraHeaders = { ...extraHeaders, ...decision.headers };
      if (!decision.allowed) {
        rec.rateLimited = true;
        return send({
          status: 429,
          body: {
            error: "rate limit exceeded",
            retry_after: decision.retryAfterSeconds,
          },
          headers: { "Retry-After": String(decision.retryAfterSeconds) },
        });
      }
    }
    // The tenant guard (`middleware/tenant_guard.go`); a SaaS tenant image
    // lets its same-origin canvas through (a Referer or Origin of its own).
    const referer = req.headers.referer ?? "";
    const sameOrigin = options.canvasProxy && hostSeen !== "" &&
      (own.some((o) => referer === o || referer.startsWith(`${o}/`)) ||
        own.includes(origin ?? ""));
    if (
      options.orgId && !TENANT_ALLOWLIST.has(pathname) &&
      orgHeader !== options.orgId && !sameOrigin
    ) {
      if (orgHeader) return send({ status: 404, body: "" });
      return send({
        status: 400,
        body: {
          error: "missing tenant routing header",
          code: "TENANT_ORG_HEADER_REQUIRED",
          required_header: "X-Molecule-Org-Id",
          detail:
            "SaaS tenant API requests must include X-Molecule-Org-Id matching the organization UUID.",
        },
      });
    }

    if (raw === undefined) {
      return send(error(413, "request body too large"));
    }
    const request = {
      workspaceId,
      bearer,
      body: obj,
      search: new URLSearchParams(query),
      secretOverride,
      blip: () => {
        if (!takeFault(path, workspaceId, true)) return false;
        rec.authBlip = true;
        return true;
      },
      authorized: false,
    };
    const answer = model.answer(path, req.method ?? "", request);
    rec.authorized = request.authorized;
    return send(answer);
  }

  server.listen(options.port ?? 0, options.hostname ?? "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const host = options.hostname ?? "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
    return closing;
  };
  const find = (id: string) => model.rows.get(model.key(id));
  const withRow = (id: string, fn: (row: Row) => void) => {
    const row = find(id);
    if (row) fn(row);
  };

  const fail = (fault: Fault, scope: FaultScope = {}) => {
    const active = { ...scope, fault, remaining: scope.times ?? Infinity };
    faults.push(active);
    return () => {
      faults = faults.filter((f) => f !== active);
    };
  };

  return {
    url,
    port,
    requests,
    created: model.created,
    get connections() {
      return connections;
    },
    get openConnections() {
      return sockets.size;
    },
    fail,
    blip: (workspaceId, times = 1, path = "any") =>
      fail({ kind: "auth-blip" }, { workspaceId, times, path }),
    heal() {
      faults = [];
    },
    revoke: (id) => withRow(id, (row) => model.revoke(row)),
    restore: (id) => withRow(id, (row) => model.restore(row)),
    revokeAll: (id) => withRow(id, (row) => model.revokeAll(row)),
    pause: (id) => withRow(id, (row) => row.paused = true),
    resume: (id) => withRow(id, (row) => model.resume(row)),
    remove: (id, how = "hard", removedAt) =>
      withRow(id, (row) => model.remove(row, how, removedAt)),
    setWorkspace: (id, token) => void model.set(id, token),
    setSecret: (id, secret) => withRow(id, (row) => row.secret = secret),
    liveTokens(id) {
      const row = find(id);
      return row && !row.deleted ? [...row.live] : [];
    },
    workspace(id) {
      const row = find(id);
      return row ? model.view(row) : undefined;
    },
    requestsTo(path, workspaceId) {
      return requests.filter((r) =>
        r.path === path &&
        (workspaceId === undefined || r.workspaceId === workspaceId)
      );
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
