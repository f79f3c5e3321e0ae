/**
 * What the operating system allows this process (Linux `/proc`).
 *
 * @module
 */
import { readTextSync } from "./host.ts";

/**
 * The soft limit on open files (`RLIMIT_NOFILE`), from `/proc/self/limits`
 * where there is one (Linux); `undefined` elsewhere.
 */
export function openFileLimit(
  read: () => string = () => readTextSync("/proc/self/limits"),
): number | undefined {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(read());
    if (!match) return undefined;
    return match[1] === "unlimited" ? Infinity : Number(match[1]);
  } catch {
    return undefined;
  }
}
