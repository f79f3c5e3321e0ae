/**
 * The one masking path for every text this package echoes (log lines, error
 * messages, event details, status): tokens and secrets it has seen are
 * removed, control characters become spaces.
 *
 * @module
 */
import { isUuid } from "./workspace_id.ts";

/** Values shorter than this are no credential; masking them would garble text. */
export const MIN_MASKED_LENGTH = 6;

/** What a masked value is replaced with. */
export const REDACTED = "[redacted]";

/** Values remembered at most; the oldest are forgotten first. */
const MAX_REMEMBERED = 100_000;

// Secrets by their first MIN_MASKED_LENGTH characters: a text is scanned once,
// whatever the number of secrets (a fleet has two per workspace).
const byPrefix = new Map<string, string[]>();
// Every remembered value, oldest first.
const known = new Set<string>();
let longest = 0;

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
/** The same, but for tabs and line breaks. */
const CONTROL_BUT_LINES =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g;

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
  if (known.size >= MAX_REMEMBERED) forget(known.values().next().value!);
  known.add(value);
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
 * With `tokenLike`, so is every word that {@link looksLikeToken} (for texts
 * that quote what an operator typed, where an unknown secret may be pasted
 * into the wrong setting). With `maxLength`, the text is cut after masking,
 * so no cut can leave part of a secret. With `keepLines`, tabs and line
 * breaks stay (a text that is sent, not a log line: a traceback). Text
 * around a secret is kept.
 *
 * @example
 * ```ts
 * import { maskSecrets } from "@molecule/heartbeat";
 * maskSecrets("bad abcdef-123\n", { extra: ["abcdef-123"] }); // "bad [redacted] "
 * ```
 *
 * @param text The text.
 * @param options Values to mask besides the remembered ones, the most characters to keep, whether to mask token-like words, and whether to keep line breaks.
 * @returns The masked text.
 */
export function maskSecrets(
  text: string,
  options: {
    extra?: Iterable<string>;
    maxLength?: number;
    tokenLike?: boolean;
    keepLines?: boolean;
  } = {},
): string {
  // Longest first: the longest match wins.
  const extra = [...options.extra ?? []]
    .filter((value) => value.length >= MIN_MASKED_LENGTH)
    .sort((a, b) => b.length - a.length);
  // A secret that starts within the kept part lies within this window.
  const window = options.maxLength === undefined ? text : text.slice(
    0,
    options.maxLength + Math.max(longest, extra[0]?.length ?? 0),
  );
  let safe = window.replace(
    options.keepLines ? CONTROL_BUT_LINES : CONTROL,
    " ",
  );
  if (byPrefix.size > 0 || extra.length > 0) safe = scan(safe, extra);
  if (options.tokenLike) {
    safe = safe.replace(WORD, (word) => looksLikeToken(word) ? REDACTED : word);
  }
  return options.maxLength === undefined
    ? safe
    : safe.slice(0, options.maxLength);
}

function scan(text: string, extra: string[]): string {
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

// Runs of the characters tokens are made of (base64url, hex); `/`, `.`, `+`,
// `=` and the rest split them, so that paths and host names fall apart into
// short words.
const WORD = /[A-Za-z0-9_-]{20,}/g;

/**
 * Whether a word looks like a token or a secret rather than a name: at
 * least 20 characters of `A-Z a-z 0-9 _ -`, not a UUID (workspace ids are
 * UUIDs, and are named in messages), and either mixing upper-case,
 * lower-case and digits (base64), or holding a run of 16 or more letters
 * and digits without a `-` or `_` that mixes both (hex) or is 32 long.
 * Names such as `MOLECULE_WORKSPACE_TOKEN_FILE`, `molecule-mcp-3f9c2a4e` or
 * `lower-case-words-2` do not.
 *
 * @example
 * ```ts
 * import { looksLikeToken } from "./mask.ts";
 * looksLikeToken("Qz7xK9mW2pLrVb4nHc8jTy5g"); // true
 * looksLikeToken("3f9c2a4e8b1d4c6e9a7f1e2d"); // true
 * looksLikeToken("MOLECULE_WORKSPACE_TOKEN_FILE"); // false
 * looksLikeToken("3f9c2a4e-8b1d-4c6e-9a7f-1e2d3c4b5a60"); // false
 * ```
 *
 * @param word A word of a text.
 * @returns Whether to mask it.
 */
export function looksLikeToken(word: string): boolean {
  if (word.length < 20 || !/^[A-Za-z0-9_-]+$/.test(word)) return false;
  if (isUuid(word)) return false;
  const upper = /[A-Z]/.test(word);
  const lower = /[a-z]/.test(word);
  const digit = /[0-9]/.test(word);
  if (upper && lower && digit) return true;
  return word.split(/[-_]/).some((run) =>
    run.length >= 32 ||
    (run.length >= 16 && /[0-9]/.test(run) && /[A-Za-z]/.test(run))
  );
}
