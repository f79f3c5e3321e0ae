/**
 * POST /registry/heartbeat, one beat, for a caller of its own (the
 * scheduler builds its bodies itself).
 *
 * @module
 */
import type { AgentCard } from "./agent_card.ts";
import {
  buildHeartbeatBody,
  type HeartbeatResult,
  type HeartbeatStats,
  postHeartbeat,
} from "./heartbeat.ts";
import type { FetchLike } from "./http.ts";
import type { TokenSource } from "../shared/token.ts";

/** Options of {@link sendHeartbeat}. */
export interface SendHeartbeatOptions {
  /** The platform base URL; a trailing `/` is removed. */
  platformUrl: string;
  /** The workspace id. */
  workspaceId: string;
  /** The workspace token. */
  token: TokenSource;
  /** Live figures; a missing or malformed field is sent as its zero. @default {the reference's zeros} */
  stats?: HeartbeatStats;
  /** Seconds since the agent started (rounded down). @default {0} */
  uptimeSeconds?: number;
  /**
   * The agent card to send with the beat, as the platform's own runtime
   * does: it fills the card of a workspace that has none, and clears the
   * register-failure marker. @default {none sent}
   */
  agentCard?: AgentCard;
  /**
   * The `Origin` header to send; `""` sends none.
   * @default {the platform URL's origin}
   */
  origin?: string;
  /**
   * Time limit, in ms; 0 sets no timer of its own, for a `signal` that
   * carries the deadline. @default {10000}
   */
  timeoutMs?: number;
  /** Aborts the request; aborted with a `TimeoutError`, it counts as a timeout. */
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
 * Sends one heartbeat. Never throws for a platform answer or a network
 * error: those are outcomes. Only an abort through `signal` rejects.
 *
 * @example
 * ```ts
 * import { sendHeartbeat } from "@molecule/heartbeat/platform";
 * const result = await sendHeartbeat({
 *   platformUrl: "http://127.0.0.1:8080",
 *   workspaceId: "ws-1",
 *   token: "t",
 *   stats: { active_tasks: 1, current_task: "indexing" },
 * });
 * console.log(result.kind);
 * ```
 *
 * @param options Where, what, and how long to wait.
 * @returns The outcome.
 * @throws {DOMException} `AbortError` when `signal` aborts.
 */
export async function sendHeartbeat(
  options: SendHeartbeatOptions,
): Promise<HeartbeatResult> {
  const { workspaceId, stats, uptimeSeconds, agentCard, ...request } = options;
  return await postHeartbeat({
    ...request,
    body: buildHeartbeatBody(workspaceId, uptimeSeconds ?? 0, stats, agentCard),
  });
}
