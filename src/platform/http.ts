/**
 * One POST to the platform, and a defensive reading of its answer.
 *
 * @module
 */
import { MAX_BODY_BYTES, REQUEST_TIMEOUT_MS } from "../shared/constants.ts";
import { InvalidTokenError } from "../shared/errors.ts";
import { maskSecrets } from "../shared/mask.ts";
import { isRecord } from "../shared/_json.ts";
import { raceSignal } from "../shared/_race.ts";
import {
  classifyAnswer,
  classifyError,
  originOf,
  type Outcome,
} from "./outcome.ts";
import {
  resolveToken,
  sendableToken,
  type TokenSource,
} from "../shared/token.ts";

/** The `fetch` function the library calls; inject one in tests. */
export type FetchLike = (
  input: string | URL | Request,
  init?: RequestInit,
) => Promise<Response>;

/**
 * Options of `fetchWorkspaceState`; `register`, `sendHeartbeat` and
 * `lookupWorkspace` take these fields too.
 */
export interface FetchWorkspaceStateOptions {
  /** The platform base URL (a trailing `/` is removed); its origin is sent as `Origin`. */
  platformUrl: string;
  /** The workspace id. */
  workspaceId: string;
  /**
   * The workspace token, or a function asked for it (waited for only as
   * long as `signal` and `timeoutMs` allow).
   */
  token: TokenSource;
  /**
   * The `Origin` header to send instead of the base URL's origin; `""`
   * sends none. The platform's CORS layer refuses (403, empty body) an
   * `Origin` that is not `http(s)://` + the `Host` it receives.
   * @default {the base URL's origin}
   */
  origin?: string;
  /**
   * Time limit of the request, in ms; 0 sets no timer of its own, for a
   * caller whose `signal` already carries a deadline (an
   * `AbortSignal.timeout`, shared by several requests). @default {10000}
   */
  timeoutMs?: number;
  /**
   * Aborts the request. Aborted with a `TimeoutError`, it counts as a
   * timeout, as `AbortSignal.timeout` does.
   */
  signal?: AbortSignal;
  /** The fetch to call. @default {globalThis.fetch} */
  fetch?: FetchLike;
  /**
   * Sent as `X-Molecule-Org-Id` on requests outside `/registry/*` (a
   * multi-tenant platform's tenant guard wants it; it lets the registry
   * calls through without it, and its rate limiter keys on it first: on
   * registry calls it would put every workspace of the org into one
   * bucket). @default {not sent}
   */
  orgId?: string;
  /**
   * More `RequestInit` fields, for the runtime's fetch (a Deno `client`, a
   * Node `dispatcher`: a fresh connection pool). @default {none}
   */
  init?: Record<string, unknown>;
}

/** What every endpoint call takes besides its own fields (internal); no `Authorization` without a token. */
export type EndpointOptions =
  & Omit<FetchWorkspaceStateOptions, "workspaceId" | "token">
  & Partial<Pick<FetchWorkspaceStateOptions, "token">>;

/**
 * One endpoint's request with the contract's headers (`Authorization`
 * when a token is given, `Origin`, with a body `Content-Type`;
 * `X-Molecule-Org-Id` when `orgId` is given and the path is outside
 * `/registry/*`), without following redirects, reading at most
 * {@link MAX_BODY_BYTES} of the answer to the end so that the connection
 * goes back to the pool; the answer classified (the answer itself in its
 * `answer`), a network error or timeout too (`transient`); only an abort
 * through `signal` rejects, with the signal's reason.
 *
 * @example
 * ```ts
 * import { callEndpoint } from "./http.ts";
 * const outcome = await callEndpoint(
 *   { platformUrl: "http://127.0.0.1:9/", token: "t" },
 *   "GET",
 *   "/workspaces/ws-1",
 * );
 * console.log(outcome.kind); // "transient": nothing listens there
 * ```
 *
 * @param options Where, with what, and how long to wait.
 * @param method The method.
 * @param path The path, such as `/registry/heartbeat`.
 * @param body The JSON body of a POST.
 * @returns What the answer (or the failure) means.
 */
export async function callEndpoint(
  options: EndpointOptions,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
): Promise<Outcome> {
  try {
    const baseUrl = trimBaseUrl(options.platformUrl);
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    const signal = timeoutMs <= 0
      ? options.signal
      : options.signal
      ? AbortSignal.any([options.signal, AbortSignal.timeout(timeoutMs)])
      : AbortSignal.timeout(timeoutMs);
    const token =
      typeof options.token === "string" || options.token === undefined
        ? options.token
        : await resolveToken(options.token, signal);
    const origin = options.origin ?? originOf(baseUrl);
    const headers: Record<string, string> = origin === ""
      ? {}
      : { "Origin": origin };
    if (token !== undefined) {
      // Never reaches fetch, whose error would quote the header value.
      if (!sendableToken(token)) throw new InvalidTokenError();
      headers["Authorization"] = `Bearer ${token}`;
    }
    if (method === "POST") headers["Content-Type"] = "application/json";
    if (options.orgId && !path.startsWith("/registry/")) {
      headers["X-Molecule-Org-Id"] = options.orgId;
    }
    const init: RequestInit = {
      method: method,
      headers,
      body: method === "POST" ? JSON.stringify(body) : undefined,
      redirect: "manual",
      signal,
    };
    // (Not a spread in the literal: a plain literal is what every beat builds.)
    if (options.init) Object.assign(init, options.init);
    const request = (options.fetch ?? globalThis.fetch)(
      baseUrl + path,
      init,
    );
    // An injected fetch is raced against the signal too: one that ignores its
    // signal (some polyfills do) must not hold a beat, or a stop, forever.
    // The runtime's own honours it (and the race costs a listener a request).
    const response = await raceSignal(request, options.fetch && signal);
    const read = await readCapped(response, MAX_BODY_BYTES);
    const oversized = read === undefined;
    const text = read ?? "";
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      // not JSON
    }
    const status = response.status;
    const plain = status >= 200 && status < 300;
    let snippet: string | undefined;
    // A refusal's limit, and a GET's (the org-keyed calls, whose window the
    // fleet keeps a share of); a header lookup on every beat would add up.
    const limit = plain && method !== "GET"
      ? NaN
      : Number(response.headers.get("x-ratelimit-limit") ?? NaN);
    let retryAfterMs = plain
      ? undefined
      : parseRetryAfter(response.headers.get("retry-after"));
    if (status === 429) {
      retryAfterMs = rateLimitWait(response, json, retryAfterMs);
    }
    const location = plain ? null : response.headers.get("location");
    return classifyAnswer({
      status,
      json,
      // Built when read: only a failure's log line needs it.
      get snippet() {
        return snippet ??= oversized
          ? `(body over ${MAX_BODY_BYTES} bytes, not read)`
          : maskSecrets(text, {
            // The token as a JSON body quotes it too (Go escapes <, >, &).
            extra: token ? [token, jsonQuoted(token)] : [],
            maxLength: 200,
          });
      },
      oversized,
      retryAfterMs,
      ...(Number.isFinite(limit) && limit > 0 ? { rateLimit: limit } : {}),
      ...((plain && !isRecord(json)) ||
          (status === 403 &&
            !(isRecord(json) && typeof json.error === "string"))
        ? { contentType: response.headers.get("content-type") ?? "" }
        : {}),
      location: location === null
        ? undefined
        : maskSecrets(location, { maxLength: 300 }),
    });
  } catch (error) {
    if (abortedByCaller(options.signal)) throw options.signal!.reason;
    return classifyError(error);
  }
}

/** The least a 429 is waited out, in ms: `Retry-After` is truncated and can be 0 while the window is still full. */
const RATE_LIMIT_MIN_WAIT_MS = 1_000;

/**
 * How long a 429 asks to wait, in ms: the longest of `Retry-After`, the
 * body's `retry_after` and `X-RateLimit-Reset` (seconds from now, as the
 * platform's fixed-window limiter sends it), and never under
 * {@link RATE_LIMIT_MIN_WAIT_MS}: the platform truncates to whole seconds,
 * so 0 is common while the window is still full.
 */
function rateLimitWait(
  response: Response,
  json: unknown,
  header: number | undefined,
): number {
  let ms = header ?? 0;
  const seconds = isRecord(json) ? json.retry_after : undefined;
  if (typeof seconds === "number" && seconds >= 0 && seconds < 86_400) {
    ms = Math.max(ms, Math.ceil(seconds) * 1000);
  }
  const reset = Number(response.headers.get("x-ratelimit-reset") ?? NaN);
  if (Number.isFinite(reset) && reset >= 0 && reset < 86_400) {
    ms = Math.max(ms, Math.ceil(reset) * 1000);
  }
  return Math.max(RATE_LIMIT_MIN_WAIT_MS, ms);
}

/**
 * Parses a `Retry-After` header: delay-seconds or an HTTP date.
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from "./http.ts";
 * parseRetryAfter("5"); // 5000
 * parseRetryAfter("soon"); // undefined
 * ```
 *
 * @param value The header's value, or `null` when absent.
 * @param now The current time as epoch milliseconds. @default {Date.now()}
 * @returns Milliseconds to wait (never negative), or `undefined` when absent
 * or unreadable.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now: number = Date.now(),
): number | undefined {
  if (value == null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/[a-z]/i.test(text)) return undefined;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** `text` as it stands inside a JSON string that Go's encoder wrote. */
function jsonQuoted(text: string): string {
  return JSON.stringify(text).slice(1, -1).replace(
    /[<>&]/g,
    (c) => `\\u00${c.charCodeAt(0).toString(16)}`,
  );
}

/** The body as text, or `undefined` when it is over `max` bytes (left unread). */
async function readCapped(
  response: Response,
  max: number,
): Promise<string | undefined> {
  const body = response.body;
  if (!body) return "";
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (declared > max) {
    await body.cancel().catch(() => {});
    return undefined;
  }
  // A declared small body: one native read, no reader to lock and release
  // (the streamed path below costs several async steps per beat). Not when
  // compressed: Content-Length is then the compressed size, and a few
  // hundred bytes of brotli can unpack to gigabytes; the streamed path
  // counts what is unpacked.
  const encoding = response.headers.get("content-encoding");
  const plainBody = encoding === null || /^\s*identity\s*$/i.test(encoding);
  if (declared <= max && plainBody) return await response.text();
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return text + decoder.decode();
      total += value.byteLength;
      if (total > max) {
        await reader.cancel().catch(() => {});
        return undefined;
      }
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * Whether a signal was aborted by a deadline (its reason is a
 * `TimeoutError`, as with `AbortSignal.timeout`) rather than by a caller who
 * wants the work stopped.
 *
 * @example
 * ```ts
 * import { abortedByCaller } from "./http.ts";
 * abortedByCaller(AbortSignal.abort()); // true
 * abortedByCaller(AbortSignal.timeout(0)); // false: not aborted yet, or a timeout
 * ```
 *
 * @param signal The signal, if any.
 * @returns `true` when it is aborted for another reason than a timeout.
 */
export function abortedByCaller(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true &&
    (signal.reason as { name?: string } | undefined)?.name !== "TimeoutError";
}

/**
 * The platform base URL with trailing slashes removed.
 *
 * @param url The URL as configured.
 * @returns The base URL requests are built on.
 */
export function trimBaseUrl(url: string): string {
  return url.replace(/\/+$/, "");
}
