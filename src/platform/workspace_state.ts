/**
 * GET /workspaces/:id/state: whether the platform still wants this
 * workspace served (online, paused, deleted).
 *
 * @module
 */
import type { TokenSource } from "../shared/token.ts";
import type { FetchLike } from "./http.ts";
import { CORS_REASON, getWorkspace } from "./_workspace_get.ts";

/**
 * What the platform says of a workspace:
 * - `online`: alive (the platform's own view is in `platformStatus`);
 * - `paused`: paused by an operator, heartbeats are pointless until resumed;
 * - `deleted`: hard- or soft-deleted, stop serving it;
 * - `auth`: the token was refused (401/403) on a workspace that exists;
 * - `unknown`: no usable answer (5xx, network error, timeout, an answer
 *   this client does not understand, or a platform without the endpoint).
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
  /** Why the answer is `unknown`, for logs. */
  reason?: string;
  /** The platform's `X-RateLimit-Limit` (requests a minute in the window this call counted in), when sent. */
  rateLimit?: number;
  /**
   * Refused by the platform's CORS layer (403 with an empty body, or not
   * the platform's JSON): the `Origin` sent is not the one the platform
   * sees; says nothing of the workspace or the token (`kind` is `unknown`).
   */
  cors?: boolean;
}

/** Options of {@link fetchWorkspaceState}. */
export interface FetchWorkspaceStateOptions {
  /** The platform base URL; a trailing `/` is removed. */
  platformUrl: string;
  /** The workspace id. */
  workspaceId: string;
  /** The workspace token. */
  token: TokenSource;
  /**
   * The `Origin` header to send; `""` sends none.
   * @default {the platform URL's origin}
   */
  origin?: string;
  /** Sent as `X-Molecule-Org-Id` (a multi-tenant platform's tenant guard wants it here). @default {not sent} */
  orgId?: string;
  /** Time limit, in ms; 0 for none of its own. @default {10000} */
  timeoutMs?: number;
  /** Aborts the request. */
  signal?: AbortSignal;
  /** The fetch to call. @default {globalThis.fetch} */
  fetch?: FetchLike;
  /**
   * More `RequestInit` fields for the runtime's fetch (a fresh connection
   * pool's `client` or `dispatcher`). @default {none}
   */
  init?: Record<string, unknown>;
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
  const got = await getWorkspace({ ...options, suffix: "/state" });
  if ("reason" in got) return { kind: "unknown", reason: got.reason };
  const { base, json } = got;
  const { status, platformStatus } = base;
  if (status === 403 && typeof json.error !== "string") {
    return { kind: "unknown", ...base, cors: true, reason: CORS_REASON };
  }
  if (status === 401 || status === 403) return { kind: "auth", ...base };
  if (
    json.deleted === true &&
    (status === 404 || status === 200 || status === 410)
  ) {
    return { kind: "deleted", ...base };
  }
  if (status >= 200 && status < 300) {
    if (json.paused === true) return { kind: "paused", ...base };
    if (json.deleted === false || json.paused === false || platformStatus) {
      return { kind: "online", ...base };
    }
  }
  return { kind: "unknown", ...base, reason: `HTTP ${status}` };
}
