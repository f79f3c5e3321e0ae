/**
 * A GET of `/workspaces/:id` or one of its sub-paths, read as the lifecycle
 * calls read it (internal): the answer's JSON object and the platform's
 * `status` field, or why there is no answer.
 *
 * @module
 */
import { REQUEST_TIMEOUT_MS } from "../shared/constants.ts";
import { isRecord } from "../shared/_json.ts";
import type { TokenSource } from "../shared/token.ts";
import {
  abortedByCaller,
  type FetchLike,
  requestJson,
  trimBaseUrl,
} from "./http.ts";
import { classifyError } from "./outcome.ts";

/** What {@link getWorkspace} sends. */
export interface WorkspaceGetOptions {
  platformUrl: string;
  workspaceId: string;
  /** The path after `/workspaces/:id`, such as `/state`; `""` for the workspace itself. */
  suffix: string;
  token?: TokenSource;
  orgId?: string;
  origin?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  fetch?: FetchLike;
  init?: Record<string, unknown>;
}

/** An answer: its status, its JSON object (`{}` when none), the platform's status. */
/** Why a 403 with an empty body proves nothing of the workspace or its token. */
export const CORS_REASON =
  "HTTP 403 with an empty body: the platform's CORS layer refused the Origin sent (a reverse proxy that rewrites Host, or an Origin not in its CORS_ORIGINS); not the token";

export interface WorkspaceAnswer {
  /** The HTTP status and, when the body named one, the platform's `status` (64 characters at most). */
  base: { status: number; platformStatus?: string; rateLimit?: number };
  json: Record<string, unknown>;
}

/**
 * GETs the workspace's path. Never throws for an answer or a network error
 * (that is `{ reason }`); only an abort through `signal` rejects.
 */
export async function getWorkspace(
  options: WorkspaceGetOptions,
): Promise<WorkspaceAnswer | { reason: string }> {
  let answer;
  try {
    answer = await requestJson({
      method: "GET",
      baseUrl: trimBaseUrl(options.platformUrl),
      path: `/workspaces/${
        encodeURIComponent(options.workspaceId)
      }${options.suffix}`,
      token: options.token,
      origin: options.origin,
      orgId: options.orgId,
      timeoutMs: options.timeoutMs ?? REQUEST_TIMEOUT_MS,
      signal: options.signal,
      fetch: options.fetch,
      init: options.init,
    });
  } catch (error) {
    if (abortedByCaller(options.signal)) throw options.signal!.reason;
    return { reason: classifyError(error).reason };
  }
  const json = isRecord(answer.json) ? answer.json : {};
  const platformStatus = typeof json.status === "string"
    ? json.status.slice(0, 64)
    : undefined;
  const base: WorkspaceAnswer["base"] = { status: answer.status };
  if (platformStatus !== undefined) base.platformStatus = platformStatus;
  if (answer.rateLimit !== undefined) base.rateLimit = answer.rateLimit;
  return { base, json };
}
