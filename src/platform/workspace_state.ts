/**
 * GET /workspaces/:id/state: whether the platform still wants this
 * workspace served (online, paused, deleted).
 *
 * @module
 */
import { REQUEST_TIMEOUT_MS } from "../shared/constants.ts";
import {
  abortedByCaller,
  type FetchLike,
  requestJson,
  trimBaseUrl,
} from "./http.ts";
import { classifyError } from "./outcome.ts";
import { isRecord } from "../shared/_json.ts";
import type { TokenSource } from "../shared/token.ts";

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
}

/** Options of {@link fetchWorkspaceState}. */
export interface FetchWorkspaceStateOptions {
  /** The platform base URL; a trailing `/` is removed. */
  platformUrl: string;
  /** The workspace id. */
  workspaceId: string;
  /** The workspace token. */
  token: TokenSource;
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
 * import { fetchWorkspaceState } from "@molecule/heartbeat";
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
  let answer;
  try {
    answer = await requestJson({
      method: "GET",
      baseUrl: trimBaseUrl(options.platformUrl),
      path: `/workspaces/${encodeURIComponent(options.workspaceId)}/state`,
      token: options.token,
      orgId: options.orgId,
      timeoutMs: options.timeoutMs ?? REQUEST_TIMEOUT_MS,
      signal: options.signal,
      fetch: options.fetch,
      init: options.init,
    });
  } catch (error) {
    if (abortedByCaller(options.signal)) throw options.signal!.reason;
    return { kind: "unknown", reason: classifyError(error).reason };
  }
  const { status } = answer;
  const json = isRecord(answer.json) ? answer.json : {};
  const platformStatus = typeof json.status === "string"
    ? json.status.slice(0, 64)
    : undefined;
  const base = platformStatus === undefined
    ? { status }
    : { status, platformStatus };
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
