/**
 * Waiting on code we do not control (a `stats` or token function, a
 * store), never longer than a signal allows (internal).
 *
 * @module
 */

/**
 * `promise`, or a rejection with `signal.reason` as soon as `signal`
 * aborts, whichever comes first; the promise is left to settle on its own
 * (its result is then ignored). Without a signal, `promise` itself.
 *
 * @example
 * ```ts
 * import { raceSignal } from "./_race.ts";
 * const never = new Promise<string>(() => {});
 * await raceSignal(never, AbortSignal.timeout(10)).catch((e) => e.name); // "TimeoutError"
 * ```
 *
 * @param promise What to wait for.
 * @param signal What ends the wait.
 * @returns The promise's value.
 */
export function raceSignal<T>(
  promise: PromiseLike<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  if (!signal) return Promise.resolve(promise);
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([aborted, promise]).finally(() =>
    signal.removeEventListener("abort", onAbort)
  );
}
