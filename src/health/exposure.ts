/**
 * What the health port shows to whom: bound to loopback, everything; bound
 * anywhere else (reachable from other machines), only what holds no
 * workspace id or text, unless the caller presents `MOLECULE_HEALTH_TOKEN`.
 *
 * @module
 */

/**
 * Whether a host to bind to reaches this machine only: `localhost` (and
 * `*.localhost`), `127.0.0.0/8`, `::1` and IPv4-mapped `::ffff:127.x.x.x`.
 * Anything else (`0.0.0.0`, `::`, a network address, a name) counts as
 * reachable from elsewhere.
 *
 * @example
 * ```ts
 * import { isLoopbackHost } from "./exposure.ts";
 * console.log(isLoopbackHost("127.0.0.1"), isLoopbackHost("0.0.0.0")); // true false
 * ```
 *
 * @param host The address or name given to `--health-host`.
 * @returns Whether it is loopback.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (h === "::1" || /^(0{0,4}:){7}0{0,3}1$/.test(h)) return true;
  const v4 = h.startsWith("::ffff:") ? h.slice(7) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/**
 * Whether an `Authorization` header carries `Bearer <token>`, compared in
 * time that does not depend on where the two differ.
 *
 * @example
 * ```ts
 * import { bearerMatches } from "./exposure.ts";
 * console.log(bearerMatches("Bearer s3cret-0123456789", "s3cret-0123456789")); // true
 * ```
 *
 * @param header The request's `Authorization` header, if any.
 * @param token The expected token; `undefined` never matches.
 * @returns Whether it matches.
 */
export function bearerMatches(
  header: string | undefined,
  token: string | undefined,
): boolean {
  if (!header || !token) return false;
  const match = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!match) return false;
  const given = match[1];
  let diff = given.length ^ token.length;
  for (let i = 0; i < token.length; i++) {
    diff |= token.charCodeAt(i) ^ (given.charCodeAt(i % given.length) | 0);
  }
  return diff === 0;
}

/**
 * The warning the command logs once when the health port is bound off
 * loopback.
 *
 * @example
 * ```ts
 * import { offLoopbackWarning } from "./exposure.ts";
 * console.log(offLoopbackWarning("http://0.0.0.0:8081", false));
 * ```
 *
 * @param url The health server's base URL.
 * @param tokenSet Whether `MOLECULE_HEALTH_TOKEN` is set.
 * @returns The text.
 */
export function offLoopbackWarning(url: string, tokenSet: boolean): string {
  return `health: ${url} is not a loopback address: anyone who can reach it reads /healthz, /readyz and /metrics (no workspace ids or texts); ` +
    (tokenSet
      ? "/status and the ids in /readyz need Authorization: Bearer $MOLECULE_HEALTH_TOKEN"
      : "/status is not served (404) until MOLECULE_HEALTH_TOKEN is set, and /readyz names no ids");
}
