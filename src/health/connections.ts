/**
 * The cap on open health connections, shared by both servers: at most
 * `max` at once. When a new one comes at the cap, the connection that has
 * waited longest for its request head takes the loss if it has waited at
 * least `evictAfterMs` (a slow or idle client cannot hold the port against a
 * prober); otherwise the new one is closed at once.
 *
 * @module
 */

/** Why the server closed a connection before answering it. */
export type ClosedReason =
  | "over_cap"
  | "evicted"
  | "head_timeout"
  | "head_too_large"
  | "exchange_timeout";

/** The health port's connections, for `/metrics`. */
export interface ConnectionFigures {
  /** Open now. */
  open: number;
  /** Closed by the server before an answer, by reason. */
  closed: Partial<Record<ClosedReason, number>>;
}

/** Options of {@link ConnectionPool}. */
export interface ConnectionPoolOptions<T> {
  /** Connections open at most. @default {64} */
  max?: number;
  /** How long a connection must have waited for its head to be evicted, in ms. @default {100} */
  evictAfterMs?: number;
  /** Closes a connection (an evicted one). */
  close: (connection: T) => void;
  /** Milliseconds on a monotonic clock. @default {performance.now} */
  now?: () => number;
}

/**
 * The open health connections, and whether each waits for a request head
 * (evictable) or is being answered (not).
 *
 * @example
 * ```ts
 * import { ConnectionPool } from "./connections.ts";
 * let t = 0;
 * const closed: string[] = [];
 * const pool = new ConnectionPool<string>({ max: 1, close: (c) => closed.push(c), now: () => t });
 * pool.admit("a"); // true: room
 * console.log(pool.admit("b")); // false: "a" has not waited 100 ms yet
 * t = 200;
 * console.log(pool.admit("c"), closed); // true ["a"]
 * ```
 */
export class ConnectionPool<T> {
  /** Each open connection, and since when it waits for a head (`undefined`: being answered). */
  #open = new Map<T, { waitingSince: number | undefined }>();
  #max: number;
  #evictAfterMs: number;
  #close: (connection: T) => void;
  #now: () => number;
  #closed: Partial<Record<ClosedReason, number>> = {};

  /** @param options The cap and how to close a connection. */
  constructor(options: ConnectionPoolOptions<T>) {
    this.#max = options.max ?? 64;
    this.#evictAfterMs = options.evictAfterMs ?? 100;
    this.#close = options.close;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Takes a new connection in, waiting for its head: at the cap, by
   * evicting the one that has waited longest for its head, if any has
   * waited `evictAfterMs`.
   *
   * @returns Whether it was taken in; when not, close it at once.
   */
  admit(connection: T): boolean {
    const now = this.#now();
    if (this.#open.size >= this.#max) {
      let oldest: T | undefined;
      let since = Infinity;
      for (const [c, state] of this.#open) {
        if (state.waitingSince !== undefined && state.waitingSince < since) {
          since = state.waitingSince;
          oldest = c;
        }
      }
      if (oldest === undefined || now - since < this.#evictAfterMs) {
        this.count("over_cap");
        return false;
      }
      this.#open.delete(oldest);
      this.count("evicted");
      try {
        this.#close(oldest);
      } catch {
        // already closed
      }
    }
    this.#open.set(connection, { waitingSince: now });
    return true;
  }

  /** Marks a connection as waiting for (the rest of) a request head. */
  waiting(connection: T): void {
    const state = this.#open.get(connection);
    if (state && state.waitingSince === undefined) {
      state.waitingSince = this.#now();
    }
  }

  /** Marks a connection as being answered: it is not evicted. */
  busy(connection: T): void {
    const state = this.#open.get(connection);
    if (state) state.waitingSince = undefined;
  }

  /** Forgets a closed connection. */
  release(connection: T): void {
    this.#open.delete(connection);
  }

  /** Counts a connection the server closed before answering it. */
  count(reason: ClosedReason): void {
    this.#closed[reason] = (this.#closed[reason] ?? 0) + 1;
  }

  /** Every open connection. */
  connections(): IterableIterator<T> {
    return this.#open.keys();
  }

  /** The figures for `/metrics`. */
  figures(): ConnectionFigures {
    return { open: this.#open.size, closed: { ...this.#closed } };
  }
}
