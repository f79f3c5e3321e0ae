/**
 * POST /registry/register.
 *
 * @module
 */
import { type AgentCard, buildAgentCard } from "./agent_card.ts";
import { callEndpoint, type FetchWorkspaceStateOptions } from "./http.ts";
import { isRecord } from "../shared/_json.ts";
import type { Outcome } from "./outcome.ts";
import { maskSecrets } from "../shared/mask.ts";

/** Options of {@link register}. */
export interface RegisterOptions
  extends Omit<FetchWorkspaceStateOptions, "orgId"> {
  /** The card to send. @default {buildAgentCard(workspaceId)} */
  agentCard?: AgentCard;
  /** Sends `mcp_server_present: true`: an MCP server runs beside the agent. @default {false} */
  mcpServerPresent?: boolean;
}

/**
 * The result of a register: `kind` is `ok`, `auth` (a 401: the token is
 * refused), `transient`, `rejected` (another 4xx but 429, and a 403 with
 * the platform's JSON error: the request as it is), `redirect`, `cors` or
 * `not-platform`.
 */
export interface RegisterResult extends Outcome {
  /** `platform_inbound_secret` from the answer, when present. */
  inboundSecret?: unknown;
  /**
   * `auth_token` the platform issued: whenever the workspace had no live
   * token (its first registration, or after every token it had was
   * revoked). From then on only this token works.
   */
  authToken?: string;
  /** The platform's `error` message of a refused register (400, 409), masked. */
  platformMessage?: string;
}

/**
 * Registers a workspace (`delivery_mode: "poll"`). Safe to repeat: the
 * platform upserts.
 *
 * Never throws for a platform answer or a network error: those are
 * outcomes, a refused token too (`auth`). Only an abort through `signal`
 * rejects.
 *
 * @example Tell a refused token from other failures
 * ```ts
 * import { register } from "@molecule/heartbeat/platform";
 * const result = await register({
 *   platformUrl: "http://127.0.0.1:8080",
 *   workspaceId: "ws-1",
 *   token: "t",
 * });
 * if (result.kind === "auth") {
 *   console.error("the token is refused: regenerate it (canvas → Tokens tab)");
 * } else if (result.kind !== "ok") console.warn(result.reason);
 * ```
 *
 * @param options Where, who, and how long to wait.
 * @returns The outcome (see {@link RegisterResult}).
 * @throws {DOMException} `AbortError` when `signal` aborts.
 */
export async function register(
  options: RegisterOptions,
): Promise<RegisterResult> {
  let outcome = await callEndpoint(options, "POST", "/registry/register", {
    id: options.workspaceId,
    url: "",
    agent_card: options.agentCard ?? buildAgentCard(options.workspaceId),
    delivery_mode: "poll",
    ...(options.mcpServerPresent ? { mcp_server_present: true } : {}),
  });
  // A 403 with the platform's error at register (`kind: "platform"`
  // refused) is the request, not the token: a configuration problem.
  if (outcome.kind === "auth" && outcome.status === 403) {
    outcome = { ...outcome, kind: "rejected" };
  }
  const result: RegisterResult = outcome;
  const json = outcome.answer?.json;
  if (outcome.kind === "rejected" && isRecord(json)) {
    const message = json.error ?? json.message;
    if (typeof message === "string" && message.trim() !== "") {
      result.platformMessage = maskSecrets(message.trim(), { maxLength: 200 });
    }
  }
  if (outcome.kind === "ok" && isRecord(json)) {
    if ("platform_inbound_secret" in json) {
      result.inboundSecret = json.platform_inbound_secret;
    }
    if (typeof json.auth_token === "string" && json.auth_token !== "") {
      result.authToken = json.auth_token;
    }
  }
  return result;
}
