/**
 * What the runtime tells of this process, for `/metrics`: CPU time,
 * resident memory, start time, and on Linux the open descriptors and their
 * limit. `node:process` answers on Node and on Deno.
 *
 * @module
 */
import { readdir, readFile } from "node:fs/promises";
import process from "node:process";

/** The process's figures; a field is absent where the runtime does not tell it. */
export interface ProcessFigures {
  /** User and system CPU time since start, in seconds. */
  cpuSeconds?: number;
  /** Resident memory, in bytes. */
  residentMemoryBytes?: number;
  /** When the process started, in seconds since the Unix epoch. */
  startTimeSeconds?: number;
  /** Descriptors open now (Linux). */
  openFds?: number;
  /** The soft limit on open descriptors (Linux). */
  maxFds?: number;
}

// Computed once: the process started this long before the module loaded.
const startTimeSeconds =
  Math.round((Date.now() / 1000 - process.uptime()) * 1000) / 1000;

/**
 * Reads the process's figures. Never throws: what cannot be read is left
 * out. On Deno, `/proc` is read only when read access to it is already
 * granted (never a permission prompt).
 *
 * @example
 * ```ts
 * import { processFigures } from "./process_metrics.ts";
 * const figures = await processFigures();
 * console.log(figures.residentMemoryBytes! > 0); // true
 * ```
 *
 * @returns The figures.
 */
export async function processFigures(): Promise<ProcessFigures> {
  const cpu = process.cpuUsage();
  const figures: ProcessFigures = {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    residentMemoryBytes: process.memoryUsage.rss(),
    startTimeSeconds,
  };
  if (process.platform !== "linux" || !mayReadProc()) return figures;
  try {
    // One entry is the descriptor of the directory being read.
    figures.openFds = Math.max(0, (await readdir("/proc/self/fd")).length - 1);
    const limits = await readFile("/proc/self/limits", "utf8");
    const match = /^Max open files\s+(\d+)/m.exec(limits);
    if (match) figures.maxFds = Number(match[1]);
  } catch {
    // not told
  }
  return figures;
}

/** On Deno, whether reading `/proc/self` is granted already; elsewhere true. */
function mayReadProc(): boolean {
  const deno = (globalThis as {
    Deno?: {
      permissions: {
        querySync(d: { name: "read"; path: string }): { state: string };
      };
    };
  }).Deno;
  return !deno ||
    deno.permissions.querySync({ name: "read", path: "/proc/self" }).state ===
      "granted";
}
