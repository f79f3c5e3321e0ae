/**
 * GET /workspaces/:id/state: whether the platform still wants this
 * workspace served (online, paused, deleted).
 *
 * @module
 */
import { isRecord } from "../shared/_json.ts";
import {
  callEndpoint,
  type EndpointOptions,
  type FetchWorkspaceStateOptions,
} from "./http.ts";

/**
 * What the platform says of a workspace:
 * - `online`: alive (the platform's own view is in `platformStatus`);
 * - `paused`: paused by an operator, heartbeats are pointless until resumed;
 * - `deleted`: hard- or soft-deleted, stop serving it;
 * - `auth`: the token was refused (401/403) on a workspace that exists;
 * - `unknown`: no usable answer (5xx, network error, timeout, an answer
 *   this client does not understand, a 2xx that is not the platform's
 *   JSON, or a platform without the endpoint); `reason` says which.
 */
export type WorkspaceStateKind =
  | "online"
  | "paused"
  | "deleted"
  | "auth"
  | "unknown";

/** The result of {@link fetchWorkspaceState}. */
export interface WorkspaceState {
  /** What it means. */
  kind: WorkspaceStateKind;
  /** The HTTP status, absent after a network error or timeout. */
  status?: number;
  /** The platform's `status` field (`online`, `degraded`, `paused`, `removed`, …). */
  platformStatus?: string;
  /**
   * Why the answer is `unknown`, for logs: what came back (`HTTP 404`, a
   * refusal's body, a redirect's target, a 2xx that is not the platform's
   * JSON), or the network error.
   */
  reason?: string;
  /** The platform's `X-RateLimit-Limit` (requests a minute in the window this call counted in), when sent. */
  rateLimit?: number;
  /**
   * Refused by the platform's CORS layer (403 with an empty body, or not
   * the platform's JSON): the `Origin` sent is not the one the platform
   * sees; says nothing of the workspace or the token (`kind` is `unknown`).
   */
  cors?: boolean;
  /**
   * Refused by the platform's tenant guard, before the workspace was looked
   * at: `org-missing`, its 400 `TENANT_ORG_HEADER_REQUIRED` (a multi-tenant
   * platform wants `X-Molecule-Org-Id`); `org-wrong`, its bare 404 to the
   * org id sent (`kind` is `unknown`).
   */
  tenantGuard?: "org-missing" | "org-wrong";
}

/**
 * Asks the platform for a workspace's lifecycle state. Never throws for an
 * answer or a network error (those are `unknown`); only an abort through
 * `signal` rejects.
 *
 * @example
 * ```ts
 * import { fetchWorkspaceState } from "@molecule/heartbeat/platform";
 * const state = await fetchWorkspaceState({
 *   platformUrl: "http://127.0.0.1:8080",
 *   workspaceId: "ws-1",
 *   token: "t",
 * });
 * if (state.kind === "deleted") console.error("create a new workspace in the canvas");
 * ```
 *
 * @param options Where, who, and how long to wait.
 * @returns The state.
 */
export async function fetchWorkspaceState(
  options: FetchWorkspaceStateOptions,
): Promise<WorkspaceState> {
  return await getWorkspace(
    options,
    "/state",
    (status, json, platformStatus) => {
      if (status === 401 || status === 403) return "auth";
      if (
        json.deleted === true &&
        (status === 404 || status === 200 || status === 410)
      ) {
        return "deleted";
      }
      if (status >= 200 && status < 300) {
        if (json.paused === true) return "paused";
        if (json.deleted === false || json.paused === false || platformStatus) {
          return "online";
        }
      }
    },
  );
}

/**
 * GETs the workspace's path (`suffix` after `/workspaces/:id`) and reads
 * the answer (internal: the part the lifecycle calls share): `kindOf` names what a status and the JSON object (`{}` when
 * none) mean; `unknown`, with a reason naming what came back, after a
 * network error or a timeout, when the platform's CORS layer refused it
 * (`cors`), for a 2xx that is not a JSON object (not the platform), or
 * when `kindOf` names nothing. `platformStatus` is the body's `status` (64 characters at
 * most). Never throws for an answer or a network error; only an abort
 * through `signal` rejects.
 *
 * @example
 * ```ts
 * import { getWorkspace } from "./workspace_state.ts";
 * const got = await getWorkspace(
 *   { platformUrl: "http://127.0.0.1:9", workspaceId: "ws-1" },
 *   "/state",
 *   (status) => status === 200 ? "online" : undefined,
 * );
 * console.log(got.kind); // "unknown": nothing listens there
 * ```
 *
 * @param options Where, which workspace, and how long to wait.
 * @param suffix The path after `/workspaces/:id`, such as `/state`; `""` for the workspace itself.
 * @param kindOf What an answer means.
 * @returns What the platform says.
 */
export async function getWorkspace<K extends string>(
  options: EndpointOptions & { workspaceId: string },
  suffix: string,
  kindOf: (
    status: number,
    json: Record<string, unknown>,
    platformStatus: string | undefined,
  ) => K | undefined,
): Promise<Omit<WorkspaceState, "kind"> & { kind: K | "unknown" }> {
  const outcome = await callEndpoint(
    options,
    "GET",
    `/workspaces/${encodeURIComponent(options.workspaceId)}${suffix}`,
  );
  if (!outcome.answer) return { kind: "unknown", reason: outcome.reason };
  const { status, rateLimit } = outcome.answer;
  const json = isRecord(outcome.answer.json) ? outcome.answer.json : {};
  const platformStatus = typeof json.status === "string"
    ? json.status.slice(0, 64)
    : undefined;
  const base: Omit<WorkspaceState, "kind"> = { status };
  if (platformStatus !== undefined) base.platformStatus = platformStatus;
  if (rateLimit !== undefined) base.rateLimit = rateLimit;
  if (outcome.kind === "cors") {
    return { kind: "unknown", ...base, cors: true, reason: outcome.reason };
  }
  // Not the platform's answer (a 2xx whose body is not a JSON object: the
  // canvas web app answering every path with its page, a sign-in proxy, an
  // over-size body): it proves nothing, whatever its status.
  if (outcome.kind === "not-platform") {
    return { kind: "unknown", ...base, reason: outcome.reason };
  }
  const kind = kindOf(status, json, platformStatus);
  if (kind) return { kind, ...base };
  // The tenant guard (middleware/tenant_guard.go): its 400 with a code
  // when no org header went, a bare 404 when the one that went is wrong.
  if (status === 400 && json.code === "TENANT_ORG_HEADER_REQUIRED") {
    base.tenantGuard = "org-missing";
  } else if (status === 404 && outcome.answer.snippet === "" && options.orgId) {
    base.tenantGuard = "org-wrong";
  }
  // Why, for the caller's log: what came back (a bare status when the body
  // was empty; a redirect's target).
  const reason = outcome.kind === "ok"
    ? `HTTP ${status} with JSON that is not the platform's answer to GET /workspaces/:id${suffix}`
    : outcome.kind === "redirect" || outcome.answer.snippet !== ""
    ? outcome.reason
    : `HTTP ${status}`;
  return { kind: "unknown", ...base, reason };
}
