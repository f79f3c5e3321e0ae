/**
 * POST /registry/register.
 *
 * @module
 */
import { type AgentCard, buildAgentCard } from "./agent_card.ts";
import { REQUEST_TIMEOUT_MS } from "../shared/constants.ts";
import { RegisterAuthError } from "../shared/errors.ts";
import {
  abortedByCaller,
  type FetchLike,
  postJson,
  trimBaseUrl,
} from "./http.ts";
import { isRecord } from "../shared/_json.ts";
import { classifyAnswer, classifyError, type Outcome } from "./outcome.ts";
import { resolveToken, type TokenSource } from "../shared/token.ts";

/** Options of {@link register}. */
export interface RegisterOptions {
  /** The platform base URL; a trailing `/` is removed. */
  platformUrl: string;
  /** The workspace id. */
  workspaceId: string;
  /** The workspace token. */
  token: TokenSource;
  /** The card to send. @default {buildAgentCard(workspaceId)} */
  agentCard?: AgentCard;
  /**
   * Time limit, in ms; 0 sets no timer of its own, for a `signal` that
   * carries the deadline. @default {10000}
   */
  timeoutMs?: number;
  /** Aborts the request; aborted with a `TimeoutError`, it counts as a timeout. */
  signal?: AbortSignal;
  /** The fetch to call. @default {globalThis.fetch} */
  fetch?: FetchLike;
  /** Sent as `X-Molecule-Org-Id`, for multi-tenant edges. @default {not sent} */
  orgId?: string;
}

/** The result of a register that was not rejected for its token. */
export interface RegisterResult extends Outcome {
  /** `platform_inbound_secret` from the answer, when present. */
  inboundSecret?: unknown;
  /** `auth_token` issued on a workspace's very first registration. */
  authToken?: string;
}

/**
 * Registers a workspace (`delivery_mode: "poll"`). Safe to repeat: the
 * platform upserts.
 *
 * @example
 * ```ts
 * import { register, RegisterAuthError } from "@molecule/heartbeat";
 * try {
 *   const result = await register({
 *     platformUrl: "http://127.0.0.1:8080",
 *     workspaceId: "ws-1",
 *     token: "t",
 *   });
 *   if (result.kind !== "ok") console.warn(result.reason);
 * } catch (e) {
 *   if (e instanceof RegisterAuthError) console.error(e.message);
 * }
 * ```
 *
 * @param options Where, who, and how long to wait.
 * @returns The outcome; `kind` is `ok`, `transient`, `rejected` or `redirect`.
 * @throws {RegisterAuthError} When the platform answers 401 or 403.
 * @throws {DOMException} `AbortError` when `signal` aborts.
 */
export async function register(
  options: RegisterOptions,
): Promise<RegisterResult> {
  const baseUrl = trimBaseUrl(options.platformUrl);
  let outcome: Outcome;
  try {
    const answer = await postJson({
      baseUrl,
      path: "/registry/register",
      token: await resolveToken(options.token),
      body: {
        id: options.workspaceId,
        url: "",
        agent_card: options.agentCard ?? buildAgentCard(options.workspaceId),
        delivery_mode: "poll",
      },
      timeoutMs: options.timeoutMs ?? REQUEST_TIMEOUT_MS,
      signal: options.signal,
      fetch: options.fetch,
      orgId: options.orgId,
    });
    outcome = classifyAnswer(answer);
  } catch (error) {
    if (abortedByCaller(options.signal)) throw options.signal!.reason;
    outcome = classifyError(error);
  }
  if (outcome.kind === "auth") {
    throw new RegisterAuthError(options.workspaceId, outcome.status!);
  }
  const result: RegisterResult = outcome;
  const json = outcome.answer?.json;
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
