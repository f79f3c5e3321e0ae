/**
 * A watched workspaces file's changes, applied to the running heartbeat:
 * entries added are served, entries removed stop.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { LOG_CATEGORY } from "../shared/constants.ts";
import type { HeartbeatHandle } from "../schedule/start_heartbeat.ts";
import type { WorkspaceConfig } from "../schedule/types.ts";

const log = getLogger([...LOG_CATEGORY, "cli"]);

/** Serves the entries a workspaces file now lists, and only those. */
export function followWorkspacesFile(
  hb: HeartbeatHandle,
  next: WorkspaceConfig[],
): void {
  const served = new Set(hb.status().workspaces.map((w) => w.workspaceId));
  const listed = new Set(next.map((w) => w.id));
  const added = next.filter((w) => !served.has(w.id));
  const removed = [...served].filter((id) => !listed.has(id));
  for (const ws of added) hb.addWorkspace(ws);
  for (const id of removed) hb.removeWorkspace(id);
  if (added.length > 0) {
    log.warn("workspaces file: now serving {count} more: {ids}", {
      count: added.length,
      ids: summarizeIds(added.map((w) => w.id)),
    });
  }
  if (removed.length > 0) {
    log.warn("workspaces file: no longer serving {count}: {ids}", {
      count: removed.length,
      ids: summarizeIds(removed),
    });
  }
}

/** A few ids, and how many more: a log line a fleet can afford. */
export function summarizeIds(ids: string[]): string {
  const shown = ids.slice(0, 5).join(", ");
  return ids.length > 5 ? `${shown} and ${ids.length - 5} more` : shown;
}
