/**
 * The token each workspace sends (internal): the configured one, or the one
 * the platform issued (and the secret store kept); the wait for a token
 * function within a request's deadline; what a refusal changes. The owner
 * of every workspace's `token` book.
 *
 * Today's platform mints a token in a register answer whenever the
 * workspace has no live instance token; from then on only that token
 * works, and the one it replaced never works again. And the platform's
 * token check turns any database error into a 401, so one refusal proves
 * nothing. So:
 *
 * - an issued token replaces the token in use at once, and is saved (the
 *   save is retried, with backoff, until it succeeds: a restart needs it,
 *   and the user cannot see it to put it in the configuration);
 * - a refusal marks the token refused (until it works again) and re-reads
 *   the candidates: the secret store (another process on the same configs
 *   dir may have saved a newer one) and the configured source (a token
 *   file may have been updated). A candidate neither refused since it last
 *   worked nor replaced by the platform is tried at once; without one, the
 *   token in use stays (one refusal never swaps a token that worked for
 *   one the platform replaced), and the refusal counts toward escalation.
 *
 * @module
 */
import { WRITE_GRACE_MS } from "./_fleet.ts";
import type { Fleet } from "./_fleet.ts";
import { logger } from "../shared/_logger.ts";
import { maskSecrets, rememberSecret } from "../shared/mask.ts";
import { raceSignal } from "../shared/_race.ts";
import { isValidToken, resolveToken } from "../shared/token.ts";
import type { Runtime } from "./_workspace_runtime.ts";

/** Tokens kept in a workspace's refused and replaced lists, at most. */
const MAX_REMEMBERED = 8;

/** The first wait before an issued token's save is tried again, in ms (doubling up to {@link SAVE_RETRY_MAX_MS}). */
const SAVE_RETRY_MS = 1_000;
/** The longest wait between two tries of an issued token's save, in ms. */
const SAVE_RETRY_MAX_MS = 60_000;

/** The token for a request, or why there is none. */
export type TokenFor =
  | { kind: "ok"; token: string }
  | { kind: "late"; reason: string }
  | { kind: "failed"; reason: string };

/**
 * The token `ws` sends now: the issued or stored one, else the configured
 * one (a function is waited for only until `signal`, the request's
 * deadline, aborts: one warning per workspace when it is late).
 *
 * @throws The stop's abort reason, when stopped meanwhile.
 */
export async function tokenFor(
  fleet: Fleet,
  ws: Runtime,
  signal: AbortSignal,
): Promise<TokenFor> {
  const source = ws.token.current ?? ws.config.token;
  if (typeof source === "string") return { kind: "ok", token: source };
  try {
    return { kind: "ok", token: await resolveToken(source, signal) };
  } catch (error) {
    if (fleet.stopped) throw error;
    if (signal.aborted) {
      const reason =
        `the token function timed out after ${fleet.timeout} ms (nothing was sent)`;
      if (!ws.token.lateWarned) {
        ws.token.lateWarned = true;
        logger.warn(
          "the token function of {workspaceId} did not answer within the request's {timeoutMs} ms: its requests are not sent until it does (warned once)",
          { workspaceId: ws.id, timeoutMs: fleet.timeout },
        );
      }
      return { kind: "late", reason };
    }
    return {
      kind: "failed",
      reason: `the token function failed: ${
        maskSecrets(error instanceof Error ? error.message : String(error))
      }`,
    };
  }
}

/** The platform accepted `token` for `ws`: it is no longer counted refused. */
export function tokenWorked(ws: Runtime, token: string): void {
  const refused = ws.token.refused;
  const i = refused.indexOf(token);
  if (i !== -1) refused.splice(i, 1);
}

function remember(list: string[], token: string): void {
  if (list.includes(token)) return;
  list.push(token);
  if (list.length > MAX_REMEMBERED) list.shift();
}

/**
 * A register answer carried `auth_token`: `ws` uses it from its next
 * request on, and the secret store keeps it (the token it replaces is
 * never tried again). The save waits for `keep` (the lookup after a mint:
 * a token minted for a removed workspace is never stored), and is retried
 * with backoff until it succeeds, while the token is in use. One info line
 * says where (never the token); the `issued-token` event follows the save.
 */
export function adoptIssuedToken(
  fleet: Fleet,
  ws: Runtime,
  token: string,
  keep: Promise<boolean> = Promise.resolve(true),
): void {
  if (!isValidToken(token)) {
    logger.warn(
      "the platform issued a token for {workspaceId} that cannot be sent as a header value: ignored",
      { workspaceId: ws.id },
    );
    return;
  }
  rememberSecret(token);
  const book = ws.token;
  if (book.current === token) return;
  const before = book.current ??
    (typeof ws.config.token === "string" ? ws.config.token : undefined);
  if (before !== undefined) remember(book.replaced, before);
  book.current = token;
  tokenWorked(ws, token);
  const store = fleet.options.secretStore;
  if (!store) {
    logger.info(
      "the platform issued a new token for {workspaceId}: it is used from now on, kept in memory only (no secret store)",
      { workspaceId: ws.id },
    );
    fleet.emit("issued-token", { workspaceId: ws.id });
    return;
  }
  // Saved until it is saved, replaced, or the run stops (then once more,
  // within the stop's bounds).
  void fleet.track((async () => {
    const storedAt = store.pathFor?.("auth-token", ws.id);
    if (!(await keep)) return;
    const warned = new Set<string>();
    for (let attempt = 0;; attempt++) {
      if (ws.token.current !== token) return;
      // After a stop or a removal, one last try within a stop's bounds (a
      // removed workspace added again keeps its own tokens).
      const last = fleet.stopped || ws.life.state === "removed";
      const bound = last
        ? AbortSignal.timeout(WRITE_GRACE_MS)
        : fleet.lastCall.signal;
      try {
        await raceSignal(
          fleet.writeLimit(() => store.save("auth-token", ws.id, token)),
          bound,
        );
      } catch (error) {
        if (bound.aborted) return;
        const reason = maskSecrets(
          error instanceof Error ? error.message : String(error),
        );
        if (!warned.has(reason)) {
          warned.add(reason);
          logger.warn(
            "the platform issued a new token for {workspaceId}: it is used from now on, but it could not be saved yet ({reason}); " +
              "the save is retried until it succeeds",
            { workspaceId: ws.id, reason },
          );
          if (warned.size === 1) {
            fleet.emit("issued-token", { workspaceId: ws.id });
          }
        }
        if (last) return;
        const ms = Math.min(SAVE_RETRY_MAX_MS, SAVE_RETRY_MS * 2 ** attempt) *
          (0.5 + fleet.random() / 2);
        // The wait ends early at a stop (its timer goes with the queue).
        await raceSignal(
          new Promise<void>((resolve) =>
            fleet.queue.at(fleet.clock.now() + ms, resolve)
          ),
          fleet.abort.signal,
        ).catch(() => {});
        continue;
      }
      // Said at the level of the warning it ends, where there was one.
      logger[warned.size > 0 ? "warn" : "info"](
        warned.size > 0
          ? "the token the platform issued for {workspaceId} is saved now, in {storedAt}"
          : "the platform issued a new token for {workspaceId}: it is used from now on and stored in {storedAt}",
        { workspaceId: ws.id, storedAt: storedAt ?? "the secret store" },
      );
      fleet.emit("issued-token", {
        workspaceId: ws.id,
        ...(storedAt ? { storedAt } : {}),
      });
      return;
    }
  })());
}

/**
 * A request of `ws` sent with `used` was refused (401, or 403 with the
 * platform's error). When another token is in use by now (issued
 * meanwhile, or picked for a request beside this one), that one is worth a
 * try at once. Else `used` counts as refused, and the candidates are read
 * again (the secret store, the configured source; one read for every
 * request refused meanwhile): the first that is neither refused since it
 * last worked nor replaced by the platform is put in use.
 *
 * @returns Whether another token is now in use (worth a request at once).
 */
export async function onTokenRefused(
  fleet: Fleet,
  ws: Runtime,
  used: string,
): Promise<boolean> {
  const book = ws.token;
  if (book.current !== undefined && book.current !== used) return true;
  remember(book.refused, used);
  // The candidates read again: whether another token is now in use.
  book.reread ??= (async () => {
    const store = fleet.options.secretStore;
    const usable = (t: string | undefined): t is string =>
      t !== undefined && t !== used && isValidToken(t) &&
      !book.refused.includes(t) && !book.replaced.includes(t);
    const stored = store
      ? await raceSignal(
        fleet.writeLimit(() => store.load("auth-token", ws.id)),
        fleet.abort.signal,
      ).catch((error) => {
        // Said: else the refusal's "regenerate it" hides a store to fix.
        if (!fleet.stopped) {
          logger.warn(
            "the token store could not be read for {workspaceId}, so a token it may hold was not tried: {error}",
            { workspaceId: ws.id, error: maskSecrets(String(error)) },
          );
        }
        return undefined;
      })
      : undefined;
    if (fleet.stopped) return false;
    const configured = typeof ws.config.token === "string"
      ? ws.config.token
      : await resolveToken(
        ws.config.token,
        AbortSignal.any([
          fleet.abort.signal,
          AbortSignal.timeout(fleet.timeout),
        ]),
      ).catch(() => undefined);
    if (fleet.stopped) return false;
    // Another request switched meanwhile: that one is tried first.
    if (book.current !== undefined && book.current !== used) return true;
    if (usable(stored)) {
      rememberSecret(stored);
      book.current = stored === configured ? undefined : stored;
      logger.info(
        "a token of {workspaceId} was refused: trying the token stored in {storedAt}",
        {
          workspaceId: ws.id,
          storedAt: store?.pathFor?.("auth-token", ws.id) ?? "the secret store",
        },
      );
      return true;
    }
    if (usable(configured)) {
      book.current = undefined; // the configured source, as it reads now
      logger.info(
        "a token of {workspaceId} was refused: trying the configured token ({source})",
        {
          workspaceId: ws.id,
          source: ws.config.tokenSource ??
            "MOLECULE_WORKSPACE_TOKEN or the token file",
        },
      );
      return true;
    }
    return false;
  })().finally(() => {
    book.reread = undefined;
  });
  const switched = await book.reread;
  return switched && !fleet.stopped;
}
