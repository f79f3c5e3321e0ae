/**
 * What an answer of the platform means for the client.
 *
 * @module
 */
import { isRecord } from "../shared/_json.ts";
import { maskSecrets } from "../shared/mask.ts";

/** What came back from one request, read defensively. */
export interface PlatformAnswer {
  /** The HTTP status. */
  status: number;
  /** The body parsed as JSON; `undefined` when not JSON, empty or too large. */
  json: unknown;
  /** Up to 200 characters of the body, control characters and the token masked, for logs. */
  snippet: string;
  /** `true` when the body was over 64 KiB (`MAX_BODY_BYTES`) and left unread. */
  oversized: boolean;
  /**
   * How long the platform asks to wait, in ms: its `Retry-After` header, or
   * for a 429 without one, the body's `retry_after` (seconds).
   */
  retryAfterMs: number | undefined;
  /**
   * The platform's `X-RateLimit-Limit` (requests a minute per bucket), when
   * sent; read on refusals and on `GET`s (the org-keyed calls).
   */
  rateLimit?: number;
  /**
   * The `Content-Type` of a 2xx answer whose body is not a JSON object (a
   * web page, say): what answered is not the platform. Absent otherwise.
   */
  contentType?: string;
  /** The `Location` header of a redirect. */
  location: string | undefined;
}

/**
 * The meaning of one request's result:
 * - `ok`: 2xx with the platform's JSON;
 * - `auth`: 401, or 403 with the platform's JSON error: the token is
 *   refused (revoked, or a database blip: never act on one);
 * - `cors`: 403 with an empty body (or not the platform's JSON): the
 *   platform's CORS layer refused the `Origin` sent (a reverse proxy that
 *   rewrites `Host`, or `CORS_ORIGINS`); the token is never the cure;
 * - `not-platform`: 2xx whose body is not the platform's JSON (a web page,
 *   a sign-in proxy): `PLATFORM_URL` points elsewhere;
 * - `redirect`: 3xx, not followed: the platform URL is misconfigured;
 * - `transient`: 5xx, 429, 408, a network error or a timeout: retry sooner;
 * - `rejected`: any other status, the request was refused as it is.
 */
export type OutcomeKind =
  | "ok"
  | "auth"
  | "cors"
  | "not-platform"
  | "redirect"
  | "transient"
  | "rejected";

/** A classified result of one request. */
export interface Outcome {
  /** What it means. */
  kind: OutcomeKind;
  /** The HTTP status, absent after a network error or timeout. */
  status?: number;
  /** A one-line reason for logs, free of tokens and secrets. */
  reason: string;
  /**
   * The answer as read, when there was one (internal: what the scheduler
   * reads `Retry-After` and the rate limit from).
   * @ignore
   */
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
    if (answer.contentType === undefined) {
      return { kind: "ok", status, reason: `HTTP ${status}`, answer };
    }
    return {
      kind: "not-platform",
      status,
      reason: `HTTP ${status} with ${
        describeBody(answer)
      }, not the platform's JSON: PLATFORM_URL does not point at the platform's API (the canvas web app, or a sign-in proxy?)`,
      answer,
    };
  }
  // Not the platform's JSON error, `{"error": "..."}`: its CORS layer's
  // empty 403, or a firewall in front of it (the SaaS edge wants the
  // platform's Origin on heartbeats): refused before any token check.
  if (
    status === 403 &&
    !(isRecord(answer.json) && typeof answer.json.error === "string")
  ) {
    return {
      kind: "cors",
      status,
      reason: answer.snippet === "" && !answer.oversized
        ? "HTTP 403 with an empty body: the platform's CORS layer refused the Origin sent (a reverse proxy that rewrites Host, or an Origin not in its CORS_ORIGINS); not the token"
        : `HTTP 403 with ${
          describeBody(answer)
        }, not the platform's JSON error: refused before the platform's token check, by its CORS layer or a firewall in front of it (which may want the platform's Origin); not the token`,
      answer,
    };
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

/** What a 2xx that is not the platform's JSON held, for its error line. */
function describeBody(answer: PlatformAnswer): string {
  // Through the mask before it is lower-cased (a header can echo a token).
  const type = maskSecrets(
    (answer.contentType ?? "").split(";")[0].trim(),
    { maxLength: 100 },
  ).toLowerCase();
  if (answer.oversized) {
    return `a body over 64 KiB (${type || "no Content-Type"})`;
  }
  if (type === "text/html" || /^\s*<(!doctype|html)/i.test(answer.snippet)) {
    return `a web page (${type || "no Content-Type"})`;
  }
  if (answer.snippet === "") {
    return `an empty body (${type || "no Content-Type"})`;
  }
  return `a body of type ${type || "(none)"}`;
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

/**
 * The origin (scheme, host, port) of a base URL that may carry a path; the
 * text itself when it is no URL.
 *
 * @example
 * ```ts
 * import { originOf } from "./outcome.ts";
 * originOf("https://molecule.example/api"); // "https://molecule.example"
 * ```
 *
 * @param baseUrl The base URL.
 * @returns Its origin.
 */
export function originOf(baseUrl: string): string {
  try {
    return new URL(baseUrl).origin;
  } catch {
    return baseUrl;
  }
}

/**
 * What to do about a `cors` or `not-platform` outcome, for its error line
 * (naming the `Origin` sent); `""` for any other kind.
 *
 * @example
 * ```ts
 * import { cureOf } from "./outcome.ts";
 * cureOf("not-platform", "https://example.com"); // ". https://example.com answered; set PLATFORM_URL …"
 * ```
 *
 * @param kind The outcome's kind.
 * @param platformUrl The platform base URL the request went to.
 * @param origin The `Origin` option (`""`: none sent); `undefined`: the platform URL's origin.
 * @returns The cure, starting with `. `, or `""`.
 */
export function cureOf(
  kind: OutcomeKind,
  platformUrl: string,
  origin?: string,
): string {
  if (kind === "cors") {
    origin ??= originOf(platformUrl);
    return `. The Origin sent is ${
      origin === "" ? "(none)" : origin
    }: the platform accepts only http(s):// + the Host header it receives, or an origin in its CORS_ORIGINS. ` +
      "Cures: have the reverse proxy pass the Host header unchanged (nginx: proxy_set_header Host $host), " +
      "or add the origin to the platform's CORS_ORIGINS; or send the origin the platform sees with the origin option " +
      '(--origin, MOLECULE_ORIGIN; "" sends none)';
  }
  if (kind === "not-platform") {
    return `. ${platformUrl} answered; set PLATFORM_URL to the platform's API base URL, and check that nothing in front of it (a sign-in proxy, a firewall) answers instead`;
  }
  return "";
}
