/**
 * POST /registry/heartbeat, one beat: {@link sendHeartbeat} for a caller of
 * its own, and {@link postHeartbeat} for the scheduler, which builds its
 * bodies itself.
 *
 * @module
 */
import type { AgentCard } from "./agent_card.ts";
import {
  callEndpoint,
  type EndpointOptions,
  type FetchWorkspaceStateOptions,
} from "./http.ts";
import type { Outcome } from "./outcome.ts";
import { isRecord } from "../shared/_json.ts";
import { maskSecrets } from "../shared/mask.ts";
import type { TokenSource } from "../shared/token.ts";

/**
 * Live figures sent with each beat; every field is optional and defaults to
 * the reference's zero.
 */
export interface HeartbeatStats {
  /** Share of failed work, 0 to 1; ≥ 0.5 marks the workspace degraded. @default {0} */
  error_rate?: number;
  /** An example error; the canvas banner when `runtime_state` is `wedged`. @default {""} */
  sample_error?: string;
  /** Tasks under way. @default {0} */
  active_tasks?: number;
  /** The task shown on the canvas. @default {""} */
  current_task?: string;
  /** `"wedged"` when the agent runtime is stuck. @default {""} */
  runtime_state?: string;
  /** Cumulative cents spent this month; 0 means no update. @default {0} */
  monthly_spend?: number;
}

/** The body of one heartbeat request (internal). */
export interface HeartbeatBody extends Required<HeartbeatStats> {
  /** The workspace id. */
  workspace_id: string;
  /** Whole seconds since the agent started. */
  uptime_seconds: number;
  /**
   * The agent card, as the platform's own runtime sends it on every beat:
   * it fills the card of a workspace that has none, and clears the
   * register-failure marker (a failed register otherwise turns the
   * workspace `degraded` for 5 minutes).
   */
  agent_card?: AgentCard;
}

/**
 * Builds a heartbeat body from stats of unknown quality: a field of the
 * wrong type falls back to its zero; a text is masked (`maskSecrets`). The platform's integer fields
 * (`active_tasks`, `uptime_seconds`, `monthly_spend`) are always whole
 * numbers, as it insists (a fraction is a 400): a fraction is rounded down,
 * a negative or non-finite value is 0, and nothing is over
 * `Number.MAX_SAFE_INTEGER`. `error_rate` is a finite number ≥ 0.
 *
 * @example
 * ```ts
 * import { buildHeartbeatBody } from "./heartbeat.ts";
 * const body = buildHeartbeatBody("ws-1", 42.9, { active_tasks: 2.5 });
 * console.log(body.active_tasks, body.uptime_seconds); // 2 42
 * ```
 *
 * @param workspaceId The workspace id.
 * @param uptimeSeconds Seconds since start (rounded down).
 * @param stats Live figures, possibly partial.
 * @param agentCard The agent card to send with it (see {@link HeartbeatBody.agent_card}).
 * @returns The body to send.
 */
export function buildHeartbeatBody(
  workspaceId: string,
  uptimeSeconds: number,
  stats: HeartbeatStats | undefined = undefined,
  agentCard: AgentCard | undefined = undefined,
): HeartbeatBody {
  const s = isRecord(stats) ? stats as Record<string, unknown> : {};
  // Texts go through the one masking path: a tracker's sample error can
  // quote a token.
  const str = (v: unknown) =>
    typeof v === "string" && v !== ""
      ? maskSecrets(v, { keepLines: true })
      : "";
  return {
    workspace_id: workspaceId,
    error_rate: nonNegative(s.error_rate),
    sample_error: str(s.sample_error),
    active_tasks: whole(s.active_tasks),
    uptime_seconds: whole(uptimeSeconds),
    current_task: str(s.current_task),
    runtime_state: str(s.runtime_state),
    monthly_spend: whole(s.monthly_spend),
    ...(agentCard ? { agent_card: agentCard } : {}),
  };
}

/** A finite number ≥ 0, else 0. */
function nonNegative(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0
    ? value
    : 0;
}

/** A whole number from 0 to `Number.MAX_SAFE_INTEGER`: rounded down, else 0. */
function whole(value: unknown): number {
  return Math.min(Number.MAX_SAFE_INTEGER, Math.floor(nonNegative(value)));
}

/** The result of one beat. */
export interface HeartbeatResult extends Outcome {
  /** `platform_inbound_secret` from a successful answer, when present. */
  inboundSecret?: unknown;
}

/**
 * Sends one heartbeat whose body is built already (internal: the
 * scheduler's beat, which keeps the figures it sent; the public
 * `sendHeartbeat` builds the body and calls this). Never throws for a
 * platform answer or a network error; only an abort through `signal`
 * rejects.
 *
 * @example
 * ```ts
 * import { buildHeartbeatBody, postHeartbeat } from "./heartbeat.ts";
 * const result = await postHeartbeat({
 *   platformUrl: "http://127.0.0.1:8080",
 *   token: "t",
 *   body: buildHeartbeatBody("ws-1", 0),
 * });
 * ```
 *
 * @param options Where, what (the token and the body to send), and how long
 *   to wait.
 * @returns The outcome.
 */
export async function postHeartbeat(
  options: EndpointOptions & { token: TokenSource; body: HeartbeatBody },
): Promise<HeartbeatResult> {
  const result: HeartbeatResult = await callEndpoint(
    options,
    "POST",
    "/registry/heartbeat",
    options.body,
  );
  const json = result.answer?.json;
  if (result.kind === "ok" && isRecord(json)) {
    result.inboundSecret = json.platform_inbound_secret;
  }
  return result;
}

/** Options of {@link sendHeartbeat}. */
export interface SendHeartbeatOptions
  extends Omit<FetchWorkspaceStateOptions, "orgId"> {
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
