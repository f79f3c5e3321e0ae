/**
 * The platform's answers, endpoint by endpoint (internal): what today's
 * platform answers to register, heartbeat, `/state` and `GET
 * /workspaces/:id` (see PLATFORM.md), given the workspace model.
 *
 * @module
 */
import { isRecord } from "../shared/_json.ts";
import type { BlipCheck, Model, Row } from "./_model.ts";
import type { EmulatedPath, PlatformEmulatorOptions } from "./types.ts";

/** An answer: status, JSON body (or a string), extra headers. */
export interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** What a route gets of a request, and tells of its auth. */
export interface RouteRequest {
  workspaceId: string | undefined;
  bearer: string | undefined;
  /** The parsed JSON object body, when it was one. */
  body: Record<string, unknown> | undefined;
  /**
   * The workspace's row; none for an id the platform has no row for (never
   * made, or purged).
   */
  row: Row | undefined;
  /** The query string. */
  search: URLSearchParams;
  /** The inbound secret a fault hands out instead of the workspace's. */
  secretOverride: { value: unknown } | undefined;
  /** Asked at each token check: whether a database blip fails it. */
  blip: BlipCheck;
  /** Set by the route: whether the request passed the auth check. */
  authorized: boolean;
}

/** Route settings: the emulator's options, defaults applied. */
export type RouteOptions =
  & Required<
    Pick<PlatformEmulatorOptions, "strictTypes" | "uuidIds" | "acceptUnknown">
  >
  & Pick<PlatformEmulatorOptions, "adminToken">;

const UUID =
  /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** Whether Postgres takes `id` as a `uuid` (hyphens optional, braces allowed). */
export function isUuid(id: string): boolean {
  const bare = id.startsWith("{") && id.endsWith("}") ? id.slice(1, -1) : id;
  return UUID.test(bare);
}

/** The platform's JSON error answer, `{"error": message}`. */
export function error(status: number, message: string): Answer {
  return { status, body: { error: message } };
}

/** The token check's 401. */
function refusal(auth: "missing" | "invalid"): Answer {
  return error(401, `${auth} workspace auth token`);
}

function withSecret(
  answer: Record<string, unknown>,
  r: RouteRequest,
  row: Row,
): Record<string, unknown> {
  const secret = r.secretOverride ? r.secretOverride.value : row.secret;
  return secret === undefined
    ? answer
    : { ...answer, platform_inbound_secret: secret };
}

/**
 * The registry calls' checks after validation (`undefined` lets the
 * request on): a non-UUID id fails the token check open, then every query
 * of the handler fails (`failure`, a 500; the marker's UPDATE too); then
 * the token check: a workspace with no live token, or no row, is let
 * through, but in `acceptUnknown` mode an id the emulator never knew is a
 * workspace whose token the request did not present.
 */
function registryCheck(
  model: Model,
  r: RouteRequest,
  options: RouteOptions,
  id: string,
  failure: string,
): Answer | undefined {
  if (options.uuidIds && !isUuid(id)) {
    r.authorized = true;
    return error(500, failure);
  }
  const auth = r.row
    ? model.auth(r.row, r.bearer, r.blip)
    : !options.acceptUnknown || model.rows.has(id)
    ? "ok"
    : r.bearer === undefined
    ? "missing"
    : "invalid";
  r.authorized = auth === "ok";
  if (auth !== "ok") return refusal(auth);
}

/**
 * POST /registry/register: validation, then the token check (a workspace
 * with no live token, or no row, is let through), then the upsert. Every
 * non-200 answer after the token check stamps the register-failure marker.
 */
function registerRoute(
  model: Model,
  r: RouteRequest,
  options: RouteOptions,
): Answer {
  const body = r.body;
  if (
    !body || typeof body.id !== "string" || body.id === "" ||
    !isRecord(body.agent_card)
  ) return error(400, "invalid request body");
  if (
    body.delivery_mode !== undefined && body.delivery_mode !== "push" &&
    body.delivery_mode !== "poll"
  ) {
    return error(400, "delivery_mode must be 'push' or 'poll'");
  }
  const id = body.id;
  const refused = registryCheck(model, r, options, id, "registration failed");
  if (refused) return refused;
  let row = r.row;
  const failed = (answer: Answer): Answer => {
    if (row) model.registerFailed(row);
    return answer;
  };
  if (body.kind === "platform") {
    return failed(error(
      403,
      "kind='platform' may only be assigned by the platform-agent install path",
    ));
  }
  const mode = body.delivery_mode ?? row?.deliveryMode ?? "push";
  if (mode === "push" && (typeof body.url !== "string" || body.url === "")) {
    return failed(error(400, "url is required for push-mode workspaces"));
  }
  row ??= model.insert(id); // the upsert's INSERT: a ghost workspace
  const minted = model.register(row, body);
  const answer: Record<string, unknown> = {
    status: "registered",
    delivery_mode: mode,
  };
  if (minted) answer.auth_token = minted;
  return { status: 200, body: withSecret(answer, r, row) };
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

/**
 * POST /registry/heartbeat: validation, the token check (let through with
 * no live token or no row), then the update, which skips removed rows and
 * touches nothing when there is no row.
 */
function heartbeatRoute(
  model: Model,
  r: RouteRequest,
  options: RouteOptions,
): Answer {
  const body = r.body;
  if (
    !body || typeof body.workspace_id !== "string" ||
    body.workspace_id === "" || (options.strictTypes && !typedHeartbeat(body))
  ) return error(400, "invalid request body");
  const id = body.workspace_id;
  const refused = registryCheck(model, r, options, id, "failed to update");
  if (refused) return refused;
  const row = r.row;
  // No row, so no live token: let through; the update touches no row.
  if (!row) return { status: 200, body: { status: "ok", generation: 0 } };
  model.heartbeat(row, body);
  return {
    status: 200,
    body: withSecret({ status: "ok", generation: row.generation }, r, row),
  };
}

/**
 * GET /workspaces/:id/state, behind strict workspace auth: a bearer is
 * required, and only a live token of a workspace that is not removed (or
 * the admin token) passes. An unknown or non-UUID id has no token, so any
 * workspace bearer is 401 (the admin token gets the handler's 404, or 500
 * `query failed` for a non-UUID).
 */
function stateRoute(
  model: Model,
  r: RouteRequest,
  options: RouteOptions,
): Answer {
  const id = r.workspaceId ?? "";
  const admin = options.adminToken !== undefined &&
    r.bearer === options.adminToken;
  let row = r.row;
  if (admin) {
    if (options.uuidIds && !isUuid(id)) {
      return error(500, "query failed");
    }
    const kept = model.rows.get(id);
    if (!kept) return error(404, "workspace not found");
    if (kept.deleted) {
      const soft = kept.deleted === "soft" ? { status: "removed" } : {};
      return {
        status: 404,
        body: { workspace_id: kept.id, ...soft, deleted: true },
      };
    }
    row = kept;
  } else {
    if (options.uuidIds && !isUuid(id)) {
      // No token can belong to a non-UUID workspace.
      return refusal(r.bearer === undefined ? "missing" : "invalid");
    }
    const auth = model.auth(row, r.bearer, r.blip, true);
    if (auth !== "ok") return refusal(auth);
  }
  r.authorized = true;
  return {
    status: 200,
    body: {
      workspace_id: row!.id,
      status: shownStatus(model, row!),
      paused: row!.paused,
      deleted: false,
    },
  };
}

/**
 * GET /workspaces/:id: open. 400 for a non-UUID id, 404 when there is no
 * row (never made, or purged), 410 when soft-deleted (`removed_at` may be
 * `null`; `?include_removed=true` answers 200 instead), else 200 with the
 * workspace.
 */
function workspaceRoute(
  model: Model,
  r: RouteRequest,
  options: RouteOptions,
): Answer {
  const id = r.workspaceId ?? "";
  if (options.uuidIds && !isUuid(id)) {
    return error(400, "invalid workspace ID");
  }
  const row = r.row;
  if (!row) {
    if (options.acceptUnknown && !model.rows.has(id)) {
      // Any id exists: one not yet heard from is waiting for its agent.
      return {
        status: 200,
        body: {
          id,
          name: id,
          status: "awaiting_agent",
          delivery_mode: "push",
          agent_card: null,
        },
      };
    }
    return error(404, "workspace not found");
  }
  r.authorized = true;
  const includeRemoved = r.search.get("include_removed") === "true";
  if (row.deleted === "soft" && !includeRemoved) {
    return {
      status: 410,
      body: {
        error: "workspace removed",
        id: row.id,
        removed_at: row.deletedAt ?? null,
        hint: "this workspace was deleted; create a new one in the canvas",
      },
    };
  }
  return {
    status: 200,
    body: {
      id: row.id,
      name: row.id,
      status: shownStatus(model, row),
      delivery_mode: row.deliveryMode ?? "push",
      agent_card: row.agentCard ?? null,
    },
  };
}

/** The `status` the platform's answers show. */
function shownStatus(model: Model, row: Row): string {
  const status = model.status(row);
  if (row.provisioning) return "provisioning";
  return status === "never-seen" ? "awaiting_agent" : status;
}

/**
 * The platform's routes, by endpoint: the method each takes (any other is
 * 405) and its answer.
 */
export const ROUTES: Record<
  EmulatedPath,
  { method: string; answer: typeof registerRoute }
> = {
  register: { method: "POST", answer: registerRoute },
  heartbeat: { method: "POST", answer: heartbeatRoute },
  state: { method: "GET", answer: stateRoute },
  workspace: { method: "GET", answer: workspaceRoute },
};

/** Paths the tenant guard lets through without the org header (exact matches). */
const TENANT_ALLOWLIST: ReadonlySet<string> = new Set([
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
