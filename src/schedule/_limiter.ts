/**
 * A concurrency limit for async work.
 *
 * @module
 */

/** Runs a task when a slot is free; see {@link createLimiter}. */
export type Limiter = <T>(task: () => Promise<T>) => Promise<T>;

/**
 * A limiter that runs at most `concurrency` tasks at once, in the order they
 * were given.
 *
 * @example
 * ```ts
 * import { createLimiter } from "./_limiter.ts";
 * const limit = createLimiter(2);
 * const results = await Promise.all([1, 2, 3].map((n) => limit(async () => n * 2)));
 * ```
 *
 * @param concurrency Tasks at once, at least 1.
 * @returns The limiter.
 */
export function createLimiter(concurrency: number): Limiter {
  const max = Math.max(1, Math.floor(concurrency));
  let running = 0;
  const waiting: (() => void)[] = [];
  let head = 0;
  const release = () => {
    running--;
    if (head < waiting.length) {
      const next = waiting[head];
      waiting[head++] = undefined as unknown as () => void;
      if (head > 1024 && head * 2 > waiting.length) {
        waiting.splice(0, head);
        head = 0;
      }
      running++;
      next();
    }
  };
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (running >= max) {
      await new Promise<void>((resolve) => waiting.push(resolve));
    } else {
      running++;
    }
    try {
      return await task();
    } finally {
      release();
    }
  };
}
