/**
 * Tokens: fixed, or asked for before every request.
 *
 * @module
 */
import { raceSignal } from "./_race.ts";
import { isRememberedSecret, rememberSecret } from "./mask.ts";

/**
 * A workspace token: a string, or a function returning the current token
 * (synchronously or not), asked before every request so that a rotated token
 * is used without a restart.
 *
 * @example A token re-read from a file on every request
 * ```ts
 * import type { TokenSource } from "@molecule/heartbeat";
 * const token: TokenSource = async () => (await Deno.readTextFile("/tmp/token")).trim();
 * ```
 */
export type TokenSource = string | (() => string | Promise<string>);

/** Longest token accepted, in characters. */
export const MAX_TOKEN_LENGTH = 4096;

/**
 * Whether a token can be sent as `Authorization: Bearer <token>`: 1 to
 * {@link MAX_TOKEN_LENGTH} visible ASCII characters (no spaces, no control
 * characters).
 *
 * @example
 * ```ts
 * import { isValidToken } from "@molecule/heartbeat/platform";
 * isValidToken("abc-123"); // true
 * isValidToken("old\nnew"); // false
 * ```
 *
 * @param token The token.
 * @returns Whether it is valid.
 */
export function isValidToken(token: string): boolean {
  return token.length >= 1 && token.length <= MAX_TOKEN_LENGTH &&
    /^[\x21-\x7e]+$/.test(token);
}

/**
 * Whether a token can be sent, checked once: a valid one is remembered for
 * masking (every later text hides it), and a remembered one is not checked
 * again (a beat's path).
 *
 * @example
 * ```ts
 * import { sendableToken } from "./token.ts";
 * sendableToken("abc-123456"); // true, and masked from now on
 * sendableToken("old\nnew"); // false
 * ```
 *
 * @param token The token.
 * @returns Whether it is valid.
 */
export function sendableToken(token: string): boolean {
  if (isRememberedSecret(token)) return true;
  if (!isValidToken(token)) return false;
  rememberSecret(token);
  return true;
}

/**
 * Resolves a {@link TokenSource} to the token to send now; a function is
 * waited for only as long as `signal` allows.
 *
 * @example
 * ```ts
 * import { resolveToken } from "./token.ts";
 * const token = await resolveToken(() => "abc"); // "abc"
 * ```
 *
 * @param source A string or a function.
 * @param signal Ends the wait for a function (rejecting with its reason).
 * @returns The token.
 * @throws {TypeError} When the function's value is not a string.
 */
export async function resolveToken(
  source: TokenSource,
  signal?: AbortSignal,
): Promise<string> {
  if (typeof source === "string") return source;
  const token = await raceSignal(
    Promise.resolve().then(() => source()),
    signal,
  );
  if (typeof token === "string") return token;
  // Never `String(token)`: "undefined" would be sent as a token.
  throw new TypeError(
    `the token function returned ${
      token === null ? "null" : typeof token
    }, not a string`,
  );
}
