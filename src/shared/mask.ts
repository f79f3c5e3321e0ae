/**
 * The one masking path for every text this package echoes (log lines, error
 * messages, event details, status): tokens and secrets it has seen are
 * removed, control characters become spaces.
 *
 * @module
 */

/** Values shorter than this are no credential; masking them would garble text. */
export const MIN_MASKED_LENGTH = 6;

/** What a masked value is replaced with. */
export const REDACTED = "[redacted]";

/** Values remembered at most; the oldest are forgotten first. */
const MAX_REMEMBERED = 100_000;

// Secrets by their first MIN_MASKED_LENGTH characters: a text is scanned once,
// whatever the number of secrets (a fleet has two per workspace).
const byPrefix = new Map<string, string[]>();
const remembered: string[] = [];
const known = new Set<string>();
let longest = 0;

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * Remembers a token or secret, so that {@link maskSecrets} removes it from
 * every text from now on. Values under 6 characters are ignored. The library
 * remembers every token it sends and every secret it receives.
 *
 * @example
 * ```ts
 * import { maskSecrets } from "@molecule/heartbeat";
 * import { rememberSecret } from "./mask.ts";
 * rememberSecret("tok-0123456789");
 * maskSecrets("refused tok-0123456789"); // "refused [redacted]"
 * ```
 *
 * @param value The token or secret.
 */
export function rememberSecret(value: string): void {
  if (value.length < MIN_MASKED_LENGTH || known.has(value)) return;
  if (remembered.length >= MAX_REMEMBERED) forget(remembered.shift()!);
  known.add(value);
  remembered.push(value);
  const key = value.slice(0, MIN_MASKED_LENGTH);
  const list = byPrefix.get(key);
  if (list) {
    list.push(value);
    list.sort((a, b) => b.length - a.length); // longest match first
  } else byPrefix.set(key, [value]);
  if (value.length > longest) longest = value.length;
}

/**
 * Whether a value is remembered (so it was valid when first sent).
 *
 * @example
 * ```ts
 * import { isRememberedSecret, rememberSecret } from "./mask.ts";
 * rememberSecret("tok-0123456789");
 * isRememberedSecret("tok-0123456789"); // true
 * ```
 *
 * @param value A token or secret.
 * @returns Whether {@link rememberSecret} has it.
 */
export function isRememberedSecret(value: string): boolean {
  return known.has(value);
}

function forget(value: string): void {
  known.delete(value);
  const key = value.slice(0, MIN_MASKED_LENGTH);
  const list = byPrefix.get(key)?.filter((v) => v !== value);
  if (list?.length) byPrefix.set(key, list);
  else byPrefix.delete(key);
}

/**
 * Makes a text safe to echo: control characters become spaces, every
 * remembered token or secret (and every value in `extra`) is replaced by
 * `[redacted]`, and so is the start of one that the text's end cuts off.
 * With `maxLength`, the text is cut after masking, so no cut can leave part
 * of a secret. Text around a secret is kept.
 *
 * @example
 * ```ts
 * import { maskSecrets } from "@molecule/heartbeat";
 * maskSecrets("bad abcdef-123\n", { extra: ["abcdef-123"] }); // "bad [redacted] "
 * ```
 *
 * @param text The text.
 * @param options Values to mask besides the remembered ones, and the most characters to keep.
 * @returns The masked text.
 */
export function maskSecrets(
  text: string,
  options: { extra?: Iterable<string>; maxLength?: number } = {},
): string {
  let extra: string[] | undefined;
  let extraLongest = 0;
  for (const value of options.extra ?? []) {
    if (value.length < MIN_MASKED_LENGTH) continue;
    (extra ??= []).push(value);
    if (value.length > extraLongest) extraLongest = value.length;
  }
  extra?.sort((a, b) => b.length - a.length);
  // A secret that starts within the kept part lies within this window.
  const window = options.maxLength === undefined
    ? text
    : text.slice(0, options.maxLength + Math.max(longest, extraLongest));
  let safe = window.replace(CONTROL, " ");
  if (byPrefix.size > 0 || extra) safe = scan(safe, extra);
  return options.maxLength === undefined
    ? safe
    : safe.slice(0, options.maxLength);
}

function scan(text: string, extra: string[] | undefined): string {
  let out = "";
  let copied = 0;
  const last = text.length - MIN_MASKED_LENGTH;
  for (let i = 0; i <= last; i++) {
    const key = text.slice(i, i + MIN_MASKED_LENGTH);
    const candidates = byPrefix.get(key);
    let end = -1;
    for (const list of [extra, candidates]) {
      if (!list) continue;
      for (const value of list) {
        if (
          text.startsWith(value, i) ||
          // cut off by the end of the text
          (i + value.length > text.length && value.startsWith(text.slice(i)))
        ) {
          end = Math.min(text.length, i + value.length);
          break;
        }
      }
      if (end !== -1) break;
    }
    if (end === -1) continue;
    out += text.slice(copied, i) + REDACTED;
    copied = end;
    i = end - 1;
  }
  return copied === 0 ? text : out + text.slice(copied);
}
