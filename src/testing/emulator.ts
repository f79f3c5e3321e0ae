/**
 * A Molecule platform emulator: the registry endpoints of PLATFORM.md on a
 * real HTTP server, with fault injection, for testing agents.
 *
 * @module
 */
import {
  createServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import { Buffer } from "node:buffer";
import { STALE_AFTER_MS } from "../shared/constants.ts";

/** A fault the emulator injects instead of (or before) a normal answer. */
export type Fault =
  | {
    kind: "status";
    status: number;
    body?: string;
    headers?: Record<string, string>;
  }
  | { kind: "delay"; ms: number }
  | { kind: "hang" }
  | { kind: "reset" }
  | { kind: "reset-mid-body" }
  | { kind: "huge-body"; bytes: number }
  | { kind: "non-json" }
  | { kind: "redirect"; location: string; status?: number }
  | { kind: "secret"; value: unknown };

/** Which requests a fault applies to. */
export interface FaultScope {
  /** `register`, `heartbeat`, or both. @default {"any"} */
  path?: "register" | "heartbeat" | "state" | "any";
  /** Only this workspace's requests. @default {every workspace} */
  workspaceId?: string;
  /** How many requests it applies to; then it is gone. @default {Infinity} */
  times?: number;
}

/** One request the emulator received. */
export interface RequestRecord {
  /** `register`, `heartbeat`, or another path. */
  path: string;
  /** The workspace it named, when the body named one. */
  workspaceId: string | undefined;
  /** `performance.now()` when it arrived. */
  at: number;
  /** The status answered (0 for a dropped connection or a hang). */
  status: number;
  /** The `Origin` header. */
  origin: string | undefined;
  /** The `Content-Type` header. */
  contentType: string | undefined;
  /** Whether the bearer token was the workspace's. */
  authorized: boolean;
  /** The parsed JSON body, when it parsed. */
  body: unknown;
  /** The `X-Molecule-Org-Id` header. */
  orgId: string | undefined;
  /** The HTTP method. */
  method: string;
}

/** What the emulator knows of a workspace. */
export interface EmulatedWorkspace {
  /** The workspace id. */
  id: string;
  /** Its valid token. */
  token: string;
  /** `online`, `degraded`, `awaiting_agent` (offline) or `registered-never`. */
  status: "online" | "degraded" | "awaiting_agent" | "never-seen";
  /** Whether its token has been revoked. */
  revoked: boolean;
  /** Accepted registers. */
  registers: number;
  /** Accepted heartbeats. */
  heartbeats: number;
  /** The last agent card registered. */
  agentCard: unknown;
  /** The last delivery mode registered. */
  deliveryMode: string | undefined;
  /** The body of the last accepted heartbeat. */
  lastHeartbeat: Record<string, unknown> | undefined;
  /** `performance.now()` of the last accepted heartbeat. */
  lastHeartbeatAt: number | undefined;
  /** The inbound secret it hands out, if any. */
  secret: string | undefined;
  /** Whether an operator paused it. */
  paused: boolean;
  /** How it was deleted: hard (gone) or soft (`status: "removed"`). */
  deleted: "hard" | "soft" | undefined;
}

/** Options of {@link startPlatformEmulator}. */
export interface PlatformEmulatorOptions {
  /** Address to listen on; keep it on loopback. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port; 0 picks a free one. @default {0} */
  port?: number;
  /** Known workspaces: id → token. */
  workspaces?: Record<string, string>;
  /**
   * Whether an unknown workspace is created on its first request, with the
   * token it presents. @default {true when `workspaces` is not given}
   */
  acceptUnknown?: boolean;
  /** The inbound secret of a workspace. @default {(id) => `secret-${id}`} */
  secretFor?: (workspaceId: string) => string | undefined;
  /** Issue an `auth_token` on a workspace's first register. @default {false} */
  issueAuthToken?: boolean;
  /** Silence after which a workspace shows offline, in ms. @default {90000} */
  staleAfterMs?: number;
  /** Keep a {@link RequestRecord} of every request. @default {true} */
  record?: boolean;
  /** Called with every request's record, recorded or not. */
  onRequest?: (record: RequestRecord) => void;
}

/** A running emulator; see {@link startPlatformEmulator}. */
export interface PlatformEmulator extends AsyncDisposable {
  /** The base URL, such as `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The port. */
  readonly port: number;
  /** Every request, when recording. */
  readonly requests: RequestRecord[];
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** TCP connections open now. */
  readonly openConnections: number;
  /** Injects a fault; returns a function that removes it. */
  fail(fault: Fault, scope?: FaultScope): () => void;
  /** Removes every fault. */
  heal(): void;
  /** Revokes a workspace's token: its requests get 401 until {@link restore}. */
  revoke(workspaceId: string): void;
  /** Restores a revoked token. */
  restore(workspaceId: string): void;
  /** Pauses a workspace: `/state` says `paused` until {@link resume}. */
  pause(workspaceId: string): void;
  /** Resumes a paused workspace. */
  resume(workspaceId: string): void;
  /**
   * Deletes a workspace, hard (`/state` 404 `{"deleted": true}`) or soft
   * (`{"status": "removed", "deleted": true}`); its token stops working on
   * the registry endpoints.
   */
  remove(workspaceId: string, how?: "hard" | "soft"): void;
  /** Adds or replaces a workspace and its token. */
  setWorkspace(workspaceId: string, token: string): void;
  /** Sets the secret handed to a workspace (`undefined` for none). */
  setSecret(workspaceId: string, secret: string | undefined): void;
  /** What the emulator knows of a workspace. */
  workspace(workspaceId: string): EmulatedWorkspace | undefined;
  /** Records of one path (and workspace). */
  requestsTo(
    path: "register" | "heartbeat" | "state",
    workspaceId?: string,
  ): RequestRecord[];
  /** Stops the server and drops every connection. */
  close(): Promise<void>;
}

interface ActiveFault {
  fault: Fault;
  path: "register" | "heartbeat" | "state" | "any";
  workspaceId: string | undefined;
  remaining: number;
}

const MAX_REQUEST_BYTES = 1024 * 1024;

/**
 * Starts a platform emulator on loopback: POST /registry/register and
 * /registry/heartbeat as PLATFORM.md describes them (tokens, 400s, 401s,
 * inbound secrets, workspace status), with faults on demand: status codes,
 * delays, hangs, dropped connections, huge or non-JSON bodies, redirects.
 * Runs on Node and on Deno.
 *
 * @example Test an agent against a failing platform
 * ```ts
 * import { startPlatformEmulator } from "@molecule/heartbeat/testing";
 * const platform = await startPlatformEmulator({ workspaces: { "ws-1": "t" } });
 * platform.fail({ kind: "status", status: 503 }, { path: "heartbeat", times: 2 });
 * // ... run the agent against platform.url ...
 * await platform.close();
 * ```
 *
 * @param options Where to listen and which workspaces exist.
 * @returns The running emulator.
 */
export async function startPlatformEmulator(
  options: PlatformEmulatorOptions = {},
): Promise<PlatformEmulator> {
  const acceptUnknown = options.acceptUnknown ?? !options.workspaces;
  const secretFor = options.secretFor ?? ((id: string) => `secret-${id}`);
  const staleAfterMs = options.staleAfterMs ?? STALE_AFTER_MS;
  const record = options.record ?? true;
  const known = new Map<string, EmulatedWorkspace>();
  const requests: RequestRecord[] = [];
  let faults: ActiveFault[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;

  const addWorkspace = (id: string, token: string): EmulatedWorkspace => {
    const existing = known.get(id);
    if (existing) {
      existing.token = token;
      return existing;
    }
    const ws: EmulatedWorkspace = {
      id,
      token,
      status: "never-seen",
      revoked: false,
      registers: 0,
      heartbeats: 0,
      agentCard: undefined,
      deliveryMode: undefined,
      lastHeartbeat: undefined,
      lastHeartbeatAt: undefined,
      secret: secretFor(id),
      paused: false,
      deleted: undefined,
    };
    known.set(id, ws);
    return ws;
  };
  for (const [id, token] of Object.entries(options.workspaces ?? {})) {
    addWorkspace(id, token);
  }

  const takeFault = (
    path: string,
    workspaceId: string | undefined,
  ): Fault | undefined => {
    for (const f of faults) {
      if (f.path !== "any" && f.path !== path) continue;
      if (f.workspaceId !== undefined && f.workspaceId !== workspaceId) {
        continue;
      }
      if (--f.remaining <= 0) faults = faults.filter((x) => x !== f);
      return f.fault;
    }
    return undefined;
  };

  const currentStatus = (
    ws: EmulatedWorkspace,
  ): EmulatedWorkspace["status"] => {
    if (ws.lastHeartbeatAt === undefined) {
      return ws.registers > 0 ? "online" : "never-seen";
    }
    if (performance.now() - ws.lastHeartbeatAt > staleAfterMs) {
      return "awaiting_agent";
    }
    return ws.status;
  };

  const server = createServer(
    { keepAliveTimeout: 120_000 } as Parameters<typeof createServer>[0],
    (req, res) => {
      handle(req, res).catch(() => {
        if (!res.headersSent) {
          res.writeHead(500, { "content-type": "application/json" });
          res.end('{"error":"emulator error"}');
        }
      });
    },
  );
  server.keepAliveTimeout = 120_000;
  server.on("connection", (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const at = performance.now();
    const url = req.url ?? "/";
    const stateMatch = /^\/workspaces\/([^/?]+)\/state$/.exec(url);
    const path = url === "/registry/register"
      ? "register"
      : url === "/registry/heartbeat"
      ? "heartbeat"
      : stateMatch
      ? "state"
      : url;
    const raw = await readBody(req);
    let body: unknown = undefined;
    if (raw !== undefined) {
      try {
        body = JSON.parse(raw);
      } catch {
        body = undefined;
      }
    }
    const obj =
      typeof body === "object" && body !== null && !Array.isArray(body)
        ? body as Record<string, unknown>
        : undefined;
    let stateId: string | undefined;
    try {
      stateId = stateMatch ? decodeURIComponent(stateMatch[1]) : undefined;
    } catch {
      stateId = undefined;
    }
    const idField = path === "register"
      ? obj?.id
      : path === "state"
      ? stateId
      : obj?.workspace_id;
    const workspaceId = typeof idField === "string" && idField !== ""
      ? idField
      : undefined;
    const auth = req.headers.authorization;
    const bearer = auth?.startsWith("Bearer ") ? auth.slice(7) : undefined;
    let ws = workspaceId ? known.get(workspaceId) : undefined;
    if (!ws && workspaceId && acceptUnknown && bearer) {
      ws = addWorkspace(workspaceId, bearer);
    }
    const authorized = !!ws && !ws.revoked && !ws.deleted &&
      bearer === ws.token;
    const rec: RequestRecord = {
      path,
      workspaceId,
      at,
      status: 0,
      origin: req.headers.origin,
      contentType: req.headers["content-type"],
      authorized,
      body,
      orgId: typeof req.headers["x-molecule-org-id"] === "string"
        ? req.headers["x-molecule-org-id"]
        : undefined,
      method: req.method ?? "",
    };
    const finish = (status: number) => {
      rec.status = status;
      if (record) requests.push(rec);
      options.onRequest?.(rec);
    };
    const send = (
      status: number,
      payload: unknown,
      headers: Record<string, string> = {},
    ) => {
      const text = typeof payload === "string"
        ? payload
        : JSON.stringify(payload);
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(text)),
        ...headers,
      });
      res.end(text);
      finish(status);
    };

    if (path === "state") {
      if (req.method !== "GET") {
        return send(405, { error: "method not allowed" });
      }
      const fault = takeFault(path, workspaceId);
      if (fault?.kind === "status") {
        return send(fault.status, fault.body ?? { error: "query failed" });
      }
      if (fault?.kind === "hang") return finish(0);
      // A deleted workspace has no live token on file: the request is let through.
      if (!ws || ws.deleted) {
        return send(
          404,
          ws?.deleted === "soft"
            ? { workspace_id: workspaceId, status: "removed", deleted: true }
            : { workspace_id: workspaceId, deleted: true },
        );
      }
      if (!bearer) return send(401, { error: "missing workspace auth token" });
      if (!authorized) {
        return send(401, { error: "invalid workspace auth token" });
      }
      const status = ws.paused ? "paused" : currentStatus(ws);
      return send(200, {
        workspace_id: ws.id,
        status: status === "never-seen" ? "awaiting_agent" : status,
        paused: ws.paused,
        deleted: false,
      });
    }
    if (path !== "register" && path !== "heartbeat") {
      return send(404, { error: "not found" });
    }
    if (req.method !== "POST") {
      return send(405, { error: "method not allowed" });
    }
    if (raw === undefined) {
      return send(413, { error: "request body too large" });
    }

    let fault = takeFault(path, workspaceId);
    if (fault?.kind === "delay") {
      await new Promise((r) =>
        setTimeout(r, fault!.kind === "delay" ? fault!.ms : 0)
      );
      if (res.destroyed) return finish(0);
      fault = undefined;
    }
    let secretOverride: { value: unknown } | undefined;
    switch (fault?.kind) {
      case "status":
        return send(
          fault.status,
          fault.body ?? JSON.stringify({ error: "injected fault" }),
          fault.headers,
        );
      case "hang":
        finish(0);
        return; // never answer; close() drops the connection
      case "reset":
        finish(0);
        req.socket.destroy();
        return;
      case "reset-mid-body": {
        res.writeHead(200, {
          "content-type": "application/json",
          "content-length": "1000",
        });
        res.write('{"status":"ok","platform_inbound_secret":"');
        finish(0);
        setTimeout(() => req.socket.destroy(), 5);
        return;
      }
      case "huge-body": {
        const chunk = "x".repeat(64 * 1024);
        res.writeHead(200, { "content-type": "application/json" });
        let left = fault.bytes;
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          if (!res.write(n === chunk.length ? chunk : chunk.slice(0, n))) {
            await new Promise<void>((r) => {
              const done = () => {
                res.off("drain", done);
                res.off("close", done);
                r();
              };
              res.on("drain", done);
              res.on("close", done);
            });
            if (res.destroyed) break;
          }
          left -= n;
        }
        res.end();
        finish(200);
        return;
      }
      case "non-json":
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<html><body>Bad gateway, maybe</body></html>");
        finish(200);
        return;
      case "redirect":
        return send(fault.status ?? 307, "", { location: fault.location });
      case "secret":
        secretOverride = { value: fault.value };
        break;
    }

    if (!obj) return send(400, { error: "invalid request body" });
    if (path === "register") {
      if (
        !workspaceId || typeof obj.agent_card !== "object" ||
        obj.agent_card === null
      ) {
        return send(400, { error: "invalid request body" });
      }
      if (
        obj.delivery_mode !== undefined && obj.delivery_mode !== "push" &&
        obj.delivery_mode !== "poll"
      ) {
        return send(400, { error: "invalid delivery_mode" });
      }
    } else if (!workspaceId) {
      return send(400, { error: "invalid request body" });
    }
    if (!bearer) return send(401, { error: "missing workspace auth token" });
    if (!authorized || !ws) {
      return send(401, { error: "invalid workspace auth token" });
    }
    const secret = secretOverride ? secretOverride.value : ws.secret;
    const withSecret = (answer: Record<string, unknown>) =>
      secret === undefined
        ? answer
        : { ...answer, platform_inbound_secret: secret };
    if (path === "register") {
      const first = ws.registers === 0;
      ws.registers++;
      ws.agentCard = obj.agent_card;
      ws.deliveryMode = typeof obj.delivery_mode === "string"
        ? obj.delivery_mode
        : "push";
      if (ws.status === "never-seen" || ws.status === "awaiting_agent") {
        ws.status = "online";
      }
      const answer: Record<string, unknown> = {
        status: "registered",
        delivery_mode: ws.deliveryMode,
      };
      if (first && options.issueAuthToken) {
        answer.auth_token = `issued-${ws.id}`;
      }
      return send(200, withSecret(answer));
    }
    ws.heartbeats++;
    ws.lastHeartbeat = obj;
    ws.lastHeartbeatAt = at;
    const errorRate = typeof obj.error_rate === "number" ? obj.error_rate : 0;
    if (ws.status !== "degraded" && errorRate >= 0.5) ws.status = "degraded";
    else if (ws.status === "degraded" && errorRate < 0.1) ws.status = "online";
    else if (ws.status !== "degraded") ws.status = "online";
    return send(200, withSecret({ status: "ok" }));
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.hostname ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
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

  return {
    url,
    port,
    requests,
    get connections() {
      return connections;
    },
    get openConnections() {
      return sockets.size;
    },
    fail(fault, scope = {}) {
      const active: ActiveFault = {
        fault,
        path: scope.path ?? "any",
        workspaceId: scope.workspaceId,
        remaining: scope.times ?? Infinity,
      };
      faults.push(active);
      return () => {
        faults = faults.filter((f) => f !== active);
      };
    },
    heal() {
      faults = [];
    },
    revoke(id) {
      const ws = known.get(id);
      if (ws) ws.revoked = true;
    },
    restore(id) {
      const ws = known.get(id);
      if (ws) ws.revoked = false;
    },
    pause(id) {
      const ws = known.get(id);
      if (ws) ws.paused = true;
    },
    resume(id) {
      const ws = known.get(id);
      if (ws) ws.paused = false;
    },
    remove(id, how = "hard") {
      const ws = known.get(id);
      if (ws) ws.deleted = how;
    },
    setWorkspace(id, token) {
      addWorkspace(id, token);
    },
    setSecret(id, secret) {
      const ws = known.get(id);
      if (ws) ws.secret = secret;
    },
    workspace(id) {
      const ws = known.get(id);
      return ws ? { ...ws, status: currentStatus(ws) } : undefined;
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

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on(
      "end",
      () =>
        resolve(tooLarge ? undefined : Buffer.concat(chunks).toString("utf8")),
    );
    req.on("error", reject);
  });
}
