/**
 * The token each workspace sends (internal): the configured one, or the one
 * the platform issued (and the token store kept), and the wait for a token
 * function within a request's deadline. The owner of every workspace's
 * `token` book.
 *
 * Today's platform mints a token in a register answer whenever the
 * workspace has no live one; from then on only that token works. So an
 * issued token replaces the configured one at once and is saved; and when
 * the configured token is refused (a restart with the old one), the stored
 * token is tried before anything is escalated.
 *
 * @module
 */
import type { Fleet } from "./_fleet.ts";
import { logger } from "../shared/_logger.ts";
import { maskSecrets, rememberSecret } from "../shared/mask.ts";
import { raceSignal } from "../shared/_race.ts";
import { isValidToken, resolveToken } from "../shared/token.ts";
import type { Runtime } from "./_workspace_runtime.ts";

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

/**
 * A register answer carried `auth_token`: `ws` uses it from its next
 * request on, and the token store keeps it. One info line says where
 * (never the token); the `issued-token` event follows the save.
 */
export function adoptIssuedToken(
  fleet: Fleet,
  ws: Runtime,
  token: string,
): void {
  if (!isValidToken(token)) {
    logger.warn(
      "the platform issued a token for {workspaceId} that cannot be sent as a header value: ignored",
      { workspaceId: ws.id },
    );
    return;
  }
  rememberSecret(token);
  if (ws.token.current === token) return;
  ws.token.current = token;
  // The platform told us the live token: no stored one is worth a try.
  ws.token.storeLoad ??= Promise.resolve();
  const store = fleet.options.tokenStore;
  if (!store) {
    logger.info(
      "the platform issued a new token for {workspaceId}: it is used from now on, kept in memory only (no token store: a restart needs it in the configuration)",
      { workspaceId: ws.id },
    );
    fleet.emit("issued-token", { workspaceId: ws.id });
    return;
  }
  const storedAt = store.pathFor?.(ws.id);
  void fleet.track(fleet.writeLimit(async () => {
    try {
      await raceSignal(store.save(ws.id, token), fleet.grace.signal);
    } catch (error) {
      if (fleet.grace.signal.aborted) return;
      const reason = maskSecrets(
        error instanceof Error ? error.message : String(error),
      );
      logger.warn(
        "the platform issued a new token for {workspaceId}: it is used from now on, but storing it failed ({reason}); a restart needs it in the configuration",
        { workspaceId: ws.id, reason },
      );
      fleet.emit("issued-token", { workspaceId: ws.id });
      return;
    }
    logger.info(
      "the platform issued a new token for {workspaceId}: it is used from now on and stored in {storedAt}",
      { workspaceId: ws.id, storedAt: storedAt ?? "the token store" },
    );
    fleet.emit("issued-token", {
      workspaceId: ws.id,
      ...(storedAt ? { storedAt } : {}),
    });
  }));
}

/**
 * A request of `ws` sent with `used` was refused (401/403). When another
 * token is in use by now (the platform issued one meanwhile, or the store's
 * was put in use for a request beside this one), that one is worth a try at
 * once. With the issued or stored token refused, it is dropped (the
 * configured one is used again: it may have been updated). With the
 * configured one refused, the token store's, if any and not yet tried, is
 * put in use (one load for every request refused meanwhile).
 *
 * @returns Whether another token is now in use (worth a request at once).
 */
export async function onTokenRefused(
  fleet: Fleet,
  ws: Runtime,
  used: string,
): Promise<boolean> {
  const book = ws.token;
  if (book.current !== undefined) {
    if (book.current !== used) return true;
    book.current = undefined;
    return false;
  }
  const store = fleet.options.tokenStore;
  if (!store) return false;
  book.storeLoad ??= loadStored(fleet, ws);
  await book.storeLoad;
  return book.current !== undefined && book.current !== used &&
    !fleet.stopped;
}

async function loadStored(fleet: Fleet, ws: Runtime): Promise<void> {
  const store = fleet.options.tokenStore!;
  const stored = await raceSignal(store.load(ws.id), fleet.abort.signal)
    .catch(() => undefined);
  if (fleet.stopped || stored === undefined || !isValidToken(stored)) return;
  if (typeof ws.config.token === "string" && stored === ws.config.token) {
    return;
  }
  if (ws.token.current !== undefined) return; // issued meanwhile: newer
  rememberSecret(stored);
  ws.token.current = stored;
  logger.info(
    "the configured token of {workspaceId} was refused: trying the token the platform issued before, stored in {storedAt}",
    {
      workspaceId: ws.id,
      storedAt: store.pathFor?.(ws.id) ?? "the token store",
    },
  );
}
