/**
 * `Retry-After` header parsing.
 *
 * @module
 */

/**
 * Parses a `Retry-After` header: delay-seconds or an HTTP date.
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from "./_retry_after.ts";
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
