/**
 * The platform's answers, endpoint by endpoint (internal): what today's
 * platform answers to register, heartbeat, `/state` and `GET
 * /workspaces/:id` (see PLATFORM.md), given the workspace model.
 *
 * @module
 */
import type { Model, Row } from "./_model.ts";

/** An answer: status, JSON body (or a string), extra headers. */
export interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** What a route gets of a request. */
export interface RouteRequest {
  method: string;
  workspaceId: string | undefined;
  bearer: string | undefined;
  /** The parsed JSON object body, when it was one. */
  body: Record<string, unknown> | undefined;
  /** The workspace row, created for an unknown id when the emulator accepts unknowns. */
  row: Row | undefined;
  /** The inbound secret to hand out (a fault may override it). */
  secret: unknown;
}

/** Route settings. */
export interface RouteOptions {
  strictTypes: boolean;
  adminToken: string | undefined;
}

const INVALID = { error: "invalid request body" };
const MISSING_TOKEN = { error: "missing workspace auth token" };
const INVALID_TOKEN = { error: "invalid workspace auth token" };

function refusal(auth: "missing" | "invalid"): Answer {
  return {
    status: 401,
    body: auth === "missing" ? MISSING_TOKEN : INVALID_TOKEN,
  };
}

function withSecret(
  answer: Record<string, unknown>,
  secret: unknown,
): Record<string, unknown> {
  return secret === undefined
    ? answer
    : { ...answer, platform_inbound_secret: secret };
}

/** POST /registry/register. */
export function registerRoute(
  model: Model,
  r: RouteRequest,
): Answer {
  if (r.method !== "POST") {
    return { status: 405, body: { error: "method not allowed" } };
  }
  const body = r.body;
  if (
    !body || typeof body.id !== "string" || body.id === "" ||
    typeof body.agent_card !== "object" || body.agent_card === null ||
    Array.isArray(body.agent_card)
  ) return { status: 400, body: INVALID };
  if (
    body.delivery_mode !== undefined && body.delivery_mode !== "push" &&
    body.delivery_mode !== "poll"
  ) {
    return {
      status: 400,
      body: { error: "delivery_mode must be 'push' or 'poll'" },
    };
  }
  if (body.kind === "platform") {
    return { status: 403, body: { error: "kind platform is reserved" } };
  }
  const row = r.row;
  if (!row) return refusal(r.bearer === undefined ? "missing" : "invalid");
  const auth = model.registryAuth(row, r.bearer);
  if (auth !== "ok") return refusal(auth);
  const mode = body.delivery_mode ?? row.deliveryMode ?? "push";
  if (mode === "push" && (typeof body.url !== "string" || body.url === "")) {
    model.registerFailed(row);
    return {
      status: 400,
      body: { error: "url is required for push-mode workspaces" },
    };
  }
  const minted = model.register(row, body);
  const answer: Record<string, unknown> = {
    status: "registered",
    delivery_mode: row.deliveryMode ?? mode,
  };
  if (minted) answer.auth_token = minted;
  return { status: 200, body: withSecret(answer, r.secret) };
}

/** Whether a heartbeat body decodes into the platform's typed struct. */
function typedHeartbeat(body: Record<string, unknown>): boolean {
  const int = (v: unknown) =>
    v === undefined || v === null || Number.isInteger(v);
  const num = (v: unknown) =>
    v === undefined || v === null || typeof v === "number";
  const str = (v: unknown) =>
    v === undefined || v === null || typeof v === "string";
  return int(body.active_tasks) && int(body.uptime_seconds) &&
    int(body.monthly_spend) && num(body.error_rate) &&
    str(body.sample_error) && str(body.current_task) && str(body.runtime_state);
}

/** POST /registry/heartbeat. */
export function heartbeatRoute(
  model: Model,
  r: RouteRequest,
  options: RouteOptions,
): Answer {
  if (r.method !== "POST") {
    return { status: 405, body: { error: "method not allowed" } };
  }
  const body = r.body;
  if (
    !body || typeof body.workspace_id !== "string" || body.workspace_id === ""
  ) {
    return { status: 400, body: INVALID };
  }
  if (options.strictTypes && !typedHeartbeat(body)) {
    return { status: 400, body: INVALID };
  }
  const row = r.row;
  if (!row) return refusal(r.bearer === undefined ? "missing" : "invalid");
  const auth = model.registryAuth(row, r.bearer);
  if (auth !== "ok") return refusal(auth);
  model.heartbeat(row, body);
  return {
    status: 200,
    body: withSecret({ status: "ok", generation: row.generation }, r.secret),
  };
}

/** GET /workspaces/:id/state, behind strict workspace auth. */
export function stateRoute(
  model: Model,
  r: RouteRequest,
  options: RouteOptions,
): Answer {
  if (r.method !== "GET") {
    return { status: 405, body: { error: "method not allowed" } };
  }
  const row = r.row;
  const admin = options.adminToken !== undefined &&
    r.bearer === options.adminToken;
  if (admin) {
    if (!row) return { status: 404, body: { error: "workspace not found" } };
    if (row.deleted) {
      return {
        status: 404,
        body: row.deleted === "soft"
          ? { workspace_id: row.id, status: "removed", deleted: true }
          : { workspace_id: row.id, deleted: true },
      };
    }
  } else {
    const auth = model.strictAuth(row, r.bearer);
    if (auth !== "ok") return refusal(auth);
  }
  const status = model.status(row!);
  return {
    status: 200,
    body: {
      workspace_id: row!.id,
      status: row!.provisioning
        ? "provisioning"
        : status === "never-seen"
        ? "awaiting_agent"
        : status,
      paused: row!.paused,
      deleted: false,
    },
  };
}

/** GET /workspaces/:id: open; 410 when soft-deleted, 404 when purged or unknown. */
export function workspaceRoute(model: Model, r: RouteRequest): Answer {
  if (r.method !== "GET") {
    return { status: 405, body: { error: "method not allowed" } };
  }
  const row = r.workspaceId ? model.rows.get(r.workspaceId) : undefined;
  if (!row || row.deleted === "hard") {
    return { status: 404, body: { error: "workspace not found" } };
  }
  if (row.deleted === "soft") {
    return {
      status: 410,
      body: {
        error: "workspace removed",
        id: row.id,
        removed_at: row.deletedAt,
        hint: "this workspace was deleted; create a new one in the canvas",
      },
    };
  }
  const status = model.status(row);
  return {
    status: 200,
    body: {
      id: row.id,
      status: row.provisioning
        ? "provisioning"
        : status === "never-seen"
        ? "awaiting_agent"
        : status,
      delivery_mode: row.deliveryMode ?? "push",
      agent_card: row.agentCard ?? null,
    },
  };
}

/** Paths the tenant guard lets through without the org header (exact matches). */
export const TENANT_ALLOWLIST: ReadonlySet<string> = new Set([
  "/health",
  "/buildinfo",
  "/metrics",
  "/registry/register",
  "/registry/heartbeat",
]);

/** The tenant guard (`middleware/tenant_guard.go`): `undefined` lets the request on. */
export function tenantGuard(
  orgId: string | undefined,
  path: string,
  header: string | undefined,
): Answer | undefined {
  if (orgId === undefined || TENANT_ALLOWLIST.has(path)) return undefined;
  if (header === undefined || header === "") {
    return {
      status: 400,
      body: {
        error: "X-Molecule-Org-Id header required",
        code: "TENANT_ORG_HEADER_REQUIRED",
        required_header: "X-Molecule-Org-Id",
      },
    };
  }
  return header === orgId ? undefined : { status: 404, body: "" };
}
