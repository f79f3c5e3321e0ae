/**
 * The cap on open health connections, shared by both servers: at most
 * `max` at once. Past it, one is closed at once: the connection that has
 * waited longest for its request head (idle, or a slow client), so that
 * slow and idle clients cannot hold the port against a prober, whose head
 * comes at once; when every connection is being answered, the new one.
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
 * const closed: string[] = [];
 * const pool = new ConnectionPool<string>({ max: 1, close: (c) => closed.push(c) });
 * pool.admit("a"); // true: room
 * console.log(pool.admit("b"), closed); // true ["a"]: "a" waited longest for its head
 * pool.busy("b"); // its head came: it is being answered
 * console.log(pool.admit("c")); // false: close "c" at once
 * ```
 */
export class ConnectionPool<T> {
  /** Each open connection, and since when it waits for a head (`undefined`: being answered). */
  #open = new Map<T, { waitingSince: number | undefined }>();
  #max: number;
  #close: (connection: T) => void;
  #now: () => number;
  #closed: Partial<Record<ClosedReason, number>> = {};

  /** @param options The cap and how to close a connection. */
  constructor(options: ConnectionPoolOptions<T>) {
    this.#max = options.max ?? 64;
    this.#close = options.close;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Takes a new connection in, waiting for its head (or `busy`, being
   * answered already): at the cap, in the place of the one that has waited
   * longest for its head, closed now. At the cap, let the event loop turn
   * first: connections taken in just before may have their heads read and
   * be busy by then (a burst of accepts must not evict a prober whose head
   * is already there).
   *
   * @returns Whether it was taken in; when not, close it at once.
   */
  admit(connection: T, busy = false): boolean {
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
      if (oldest === undefined) {
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
    this.#open.set(connection, { waitingSince: busy ? undefined : now });
    return true;
  }

  /** Whether a new connection now would be at the cap. */
  get full(): boolean {
    return this.#open.size >= this.#max;
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
