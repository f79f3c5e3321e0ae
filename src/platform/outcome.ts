/**
 * What an answer of the platform means for the client.
 *
 * @module
 */
import type { PlatformAnswer } from "./http.ts";
import { maskSecrets } from "../shared/mask.ts";

/**
 * The meaning of one request's result:
 * - `ok`: 2xx;
 * - `auth`: 401 or 403, the token is wrong or revoked;
 * - `redirect`: 3xx, not followed: the platform URL is misconfigured;
 * - `transient`: 5xx, 429, 408, a network error or a timeout: retry sooner;
 * - `rejected`: any other status, the request was refused as it is.
 */
export type OutcomeKind = "ok" | "auth" | "redirect" | "transient" | "rejected";

/** A classified result of one request. */
export interface Outcome {
  /** What it means. */
  kind: OutcomeKind;
  /** The HTTP status, absent after a network error or timeout. */
  status?: number;
  /** A one-line reason for logs, free of tokens and secrets. */
  reason: string;
  /** The answer, when there was one. */
  answer?: PlatformAnswer;
}

/**
 * Classifies a platform answer.
 *
 * @example
 * ```ts
 * import { classifyAnswer } from "./outcome.ts";
 * const outcome = classifyAnswer({
 *   status: 503, json: undefined, snippet: "", oversized: false,
 *   retryAfterMs: undefined, location: undefined,
 * });
 * console.log(outcome.kind); // "transient"
 * ```
 *
 * @param answer The answer.
 * @returns Its meaning.
 */
export function classifyAnswer(answer: PlatformAnswer): Outcome {
  const { status } = answer;
  if (status >= 200 && status < 300) {
    return { kind: "ok", status, reason: `HTTP ${status}`, answer };
  }
  if (status === 401 || status === 403) {
    return { kind: "auth", status, reason: `HTTP ${status}`, answer };
  }
  if (status >= 300 && status < 400) {
    return {
      kind: "redirect",
      status,
      reason: `HTTP ${status} redirect to ${
        answer.location ?? "(no Location)"
      }: PLATFORM_URL is likely misconfigured (redirects are not followed, the token must not travel elsewhere)`,
      answer,
    };
  }
  const kind = status >= 500 || status === 429 || status === 408
    ? "transient"
    : "rejected";
  return { kind, status, reason: `HTTP ${status}: ${answer.snippet}`, answer };
}

/**
 * Classifies an error thrown by `fetch` (network error, timeout).
 *
 * @example
 * ```ts
 * import { classifyError } from "./outcome.ts";
 * classifyError(new TypeError("connection refused")).kind; // "transient"
 * ```
 *
 * @param error What was thrown.
 * @returns A transient outcome with a reason.
 */
export function classifyError(error: unknown): Outcome {
  if ((error as Error)?.name === "InvalidTokenError") {
    return { kind: "rejected", reason: (error as Error).message };
  }
  const e = error as { name?: string; message?: string; cause?: unknown };
  let reason: string;
  if (e?.name === "TimeoutError") reason = "request timed out";
  else {
    const cause = (e?.cause as { code?: string; message?: string }) ?? {};
    reason = [e?.message ?? String(error), cause.code ?? cause.message]
      .filter(Boolean).join(": ");
  }
  return { kind: "transient", reason: withTlsHint(maskSecrets(reason)) };
}

/** Errors that mean "this certificate is not trusted here". */
const UNTRUSTED_CERTIFICATE =
  /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED|CERT_HAS_EXPIRED|CERT_UNTRUSTED|UnknownIssuer|invalid peer certificate|certificate verify failed|self.signed certificate/i;

/**
 * Adds how to trust a private CA to a TLS failure's reason: `--cert` or
 * `DENO_CERT` on Deno, `NODE_EXTRA_CA_CERTS` on Node.
 */
function withTlsHint(reason: string): string {
  if (!UNTRUSTED_CERTIFICATE.test(reason)) return reason;
  return `${reason} (the platform's TLS certificate is not trusted here: for a private CA, ` +
    "pass its PEM file with DENO_CERT=/path/ca.pem or --cert on Deno, or NODE_EXTRA_CA_CERTS=/path/ca.pem on Node)";
}
