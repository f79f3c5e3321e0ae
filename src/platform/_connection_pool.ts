/**
 * Fresh connections on demand, for after the machine slept (internal).
 *
 * `fetch` pools keep-alive connections; after a suspend the pooled ones are
 * often dead (the platform or a NAT on the way closed them) and the first
 * request on each waits for a timeout. `fetch` has no standard way to ask
 * for a new connection, so each runtime gets its own:
 *
 * - Deno: a new `Deno.createHttpClient()`, passed as `client`;
 * - Node: a new undici `Agent` (the class of Node's own global dispatcher,
 *   which exists once `fetch` has been called), passed as `dispatcher`;
 * - elsewhere (or before the first request on Node): nothing; the dead
 *   connection costs one timeout, as before.
 *
 * Before the first `renew`, requests use the runtime's
 * default pool (nothing is added to them). The previous pool is closed a
 * grace period after a renew, once its requests are done.
 *
 * @module
 */

interface Closable {
  close(): unknown;
}

/** A new pool of the runtime's (`init` for a request, `pool` to close it); `undefined` where it has no way. */
function newPool():
  | { init: Record<string, unknown>; pool: Closable }
  | undefined {
  const deno = (globalThis as {
    Deno?: { createHttpClient?: (options: object) => Closable };
  }).Deno;
  if (typeof deno?.createHttpClient === "function") {
    const client = deno.createHttpClient({});
    return { init: { client }, pool: client };
  }
  const dispatcher = (globalThis as Record<symbol, unknown>)[
    Symbol.for("undici.globalDispatcher.1")
  ] as { constructor?: new () => Closable } | undefined;
  const Agent = dispatcher?.constructor;
  if (typeof Agent === "function" && Agent.name === "Agent") {
    const agent = new Agent();
    return { init: { dispatcher: agent }, pool: agent };
  }
  return undefined;
}

/**
 * A pool that starts as the runtime's default.
 *
 * @example
 * ```ts
 * import { createConnectionPool } from "./_connection_pool.ts";
 * const pool = createConnectionPool((fn, ms) => void setTimeout(fn, ms));
 * pool.init(); // undefined: the runtime's default pool, until a renew
 * // after a wake: pool.renew(10_000); fetch(url, { ...pool.init() }) opens a new connection
 * pool.close();
 * ```
 *
 * @param setTimer Runs `fn` after `ms` (the previous pool's close; the
 * scheduler's timer queue, cleared on stop, when `close`
 * closes what is left).
 * @returns The pool.
 */
export function createConnectionPool(
  setTimer: (fn: () => void, ms: number) => void,
) {
  let current: ReturnType<typeof newPool>;
  // Every pool this made and has not closed yet, the current one too.
  const open = new Set<Closable>();
  const closeOne = (pool: Closable) => {
    if (!open.delete(pool)) return;
    try {
      Promise.resolve(pool.close()).catch(() => {});
    } catch {
      // already closed
    }
  };
  return {
    /** What to add to a request's `RequestInit`, or `undefined` for the default pool. */
    init: (): Record<string, unknown> | undefined => current?.init,
    /**
     * Starts a new pool: every later request opens new connections.
     *
     * @returns Whether this runtime could (on an unknown runtime, `false`).
     */
    renew(graceMs: number): boolean {
      const next = newPool();
      if (!next) return false;
      const previous = current?.pool;
      current = next;
      open.add(next.pool);
      if (previous) setTimer(() => closeOne(previous), graceMs);
      return true;
    },
    /** Closes the pools this made (on stop). */
    close(): void {
      for (const pool of [...open]) closeOne(pool);
      current = undefined;
    },
  };
}
