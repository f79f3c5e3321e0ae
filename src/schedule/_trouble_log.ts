/**
 * Logs a fleet can afford: trouble shared by many workspaces is one line a
 * second per kind (with how many and a few ids), not one line a workspace.
 *
 * @module
 */
import type { BeatFailureReason } from "./types.ts";

/** What kind of trouble a log line is about; lines are summarised per kind. */
export type TroubleKind = BeatFailureReason | "register" | "secret";

/** Options of {@link createTroubleLog}. */
export interface TroubleLogOptions {
  /** Milliseconds on a monotonic clock. */
  now: () => number;
  /** Runs `fn` after `ms` (the scheduler's timer queue). */
  later: (ms: number, fn: () => void) => void;
  /** Writes the summary line. */
  summary: (kind: TroubleKind, count: number, ids: string) => void;
}

/** How long a window is, in ms. */
const WINDOW_MS = 1000;
/** Ids named in a summary at most. */
const MAX_IDS = 5;

/** See {@link createTroubleLog}. */
export interface TroubleLog {
  /**
   * Reports trouble of `kind` for a workspace: `line` (its own log line) runs
   * when it is the first of its kind in the current window; otherwise it is
   * counted into the window's summary.
   */
  report(kind: TroubleKind, workspaceId: string, line: () => void): void;
  /** Writes the summaries of the windows still open (on stop: nothing is lost). */
  flush(): void;
}

interface Window {
  /** The workspace whose line opened the window: its own lines stay whole. */
  first: string;
  count: number;
  ids: string[];
  distinct: Set<string>;
}

/**
 * A trouble log: per kind, the first line of each window is written as it
 * is (and so are further lines of the workspace that wrote it); the other
 * workspaces' lines of the window are one summary line at its end, saying how
 * many more workspaces had that trouble and naming a few.
 *
 * @example
 * ```ts
 * import { createTroubleLog } from "./_trouble_log.ts";
 * const lines: string[] = [];
 * const log = createTroubleLog({
 *   now: () => 0,
 *   later: (_ms, fn) => queueMicrotask(fn),
 *   summary: (kind, count, ids) => lines.push(`${count} more ${kind}: ${ids}`),
 * });
 * for (const id of ["a", "b", "c"]) log.report("http_5xx", id, () => lines.push(`${id} failed`));
 * await Promise.resolve();
 * console.log(lines); // ["a failed", "2 more http_5xx: b, c"]
 * ```
 *
 * @param options Clock, timer and where the summary goes.
 * @returns The trouble log.
 */
export function createTroubleLog(options: TroubleLogOptions): TroubleLog {
  const open = new Map<TroubleKind, Window>();
  const close = (kind: TroubleKind) => {
    const window = open.get(kind);
    open.delete(kind);
    if (!window || window.count === 0) return;
    const more = window.distinct.size - window.ids.length;
    const ids = window.ids.join(", ") + (more > 0 ? ` and ${more} more` : "");
    options.summary(kind, window.distinct.size, ids);
  };
  return {
    flush() {
      for (const kind of [...open.keys()]) close(kind);
    },
    report(kind, workspaceId, line) {
      const window = open.get(kind);
      if (!window) {
        open.set(kind, {
          first: workspaceId,
          count: 0,
          ids: [],
          distinct: new Set(),
        });
        options.later(WINDOW_MS, () => close(kind));
        line();
        return;
      }
      // One workspace's own cadence (the auth escalation's 1, 2, 3, 23, …)
      // is not fleet trouble: its lines stay whole.
      if (workspaceId === window.first) return line();
      window.count++;
      if (!window.distinct.has(workspaceId)) {
        window.distinct.add(workspaceId);
        if (window.ids.length < MAX_IDS) window.ids.push(workspaceId);
      }
    },
  };
}
