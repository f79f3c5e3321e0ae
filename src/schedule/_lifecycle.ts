/**
 * A workspace's lifecycle on the platform (internal): `GET
 * /workspaces/:id/state` asked after a refused token, at start, or every N
 * beats, and what its answer changes: a deleted workspace stops being
 * served, a paused one stops beating until resumed (checked at a low rate),
 * a refused token on a live workspace is confirmed revoked.
 *
 * @module
 */
import type { Fleet } from "./_fleet.ts";
import { logger } from "../shared/_logger.ts";
import type { Runtime } from "./_workspace_runtime.ts";
import {
  fetchWorkspaceState,
  type WorkspaceState,
} from "../platform/workspace_state.ts";

/** One state request for `ws`; `undefined` when stopped meanwhile. */
export async function fetchState(
  fleet: Fleet,
  ws: Runtime,
): Promise<WorkspaceState | undefined> {
  ws.stateAskedAt = fleet.clock.now();
  try {
    const state = await fleet.counted(fetchWorkspaceState({
      platformUrl: fleet.options.platformUrl,
      workspaceId: ws.id,
      token: ws.config.token,
      orgId: fleet.options.orgId,
      timeoutMs: fleet.timeout,
      signal: fleet.abort.signal,
      fetch: fleet.options.fetch,
    }));
    ws.lastState = state.kind;
    return state;
  } catch {
    return undefined; // stopped
  }
}

/**
 * Asks the platform for `ws`'s state in the background: at most one request
 * at a time per workspace, and unless `force`, at most once per interval.
 * Not while the in-flight cap is full.
 */
export function askState(fleet: Fleet, ws: Runtime, force: boolean): void {
  if (
    fleet.stopped || ws.deleted || ws.rejected || ws.removed || ws.stateAsking
  ) return;
  const now = fleet.clock.now();
  if (
    !force && ws.stateAskedAt !== undefined &&
    now - ws.stateAskedAt < fleet.interval
  ) return;
  if (fleet.inFlight >= fleet.maxInFlight) {
    // Asked again when it matters; a paused one keeps its low-rate check.
    if (ws.paused) {
      fleet.queue.at(
        now + fleet.pausedCheckMs,
        () => askState(fleet, ws, true),
      );
    }
    return;
  }
  ws.stateAsking = true;
  void fleet.track(
    fetchState(fleet, ws).then((state) => {
      ws.stateAsking = false;
      if (state && !fleet.stopped) applyState(fleet, ws, state);
    }),
  );
}

/** Acts on a state answer, then emits the `state` event. */
export function applyState(
  fleet: Fleet,
  ws: Runtime,
  state: WorkspaceState,
): void {
  actOnState(fleet, ws, state);
  fleet.emit("state", {
    workspaceId: ws.id,
    kind: state.kind,
    ...(state.platformStatus ? { platformStatus: state.platformStatus } : {}),
  });
}

function actOnState(fleet: Fleet, ws: Runtime, state: WorkspaceState): void {
  if (ws.deleted) return;
  switch (state.kind) {
    case "deleted": {
      ws.deleted = true;
      ws.paused = false;
      fleet.unschedule(ws);
      ws.lastError = "deleted on the platform";
      logger.error(
        "workspace {workspaceId} was deleted on the platform: it is no longer served. " +
          "Create a new workspace in the canvas and use its id and token.",
        { workspaceId: ws.id },
      );
      fleet.emit("deleted", {
        workspaceId: ws.id,
        ...(state.platformStatus
          ? { platformStatus: state.platformStatus }
          : {}),
      });
      return;
    }
    case "paused":
      if (!ws.paused) {
        ws.paused = true;
        fleet.unschedule(ws);
        logger.warn(
          "workspace {workspaceId} is paused on the platform: heartbeats stop until it is resumed (its state is checked every {seconds} s)",
          {
            workspaceId: ws.id,
            seconds: Math.round(fleet.pausedCheckMs / 1000),
          },
        );
        fleet.emit("paused", { workspaceId: ws.id });
      }
      break;
    case "auth":
      ws.authConfirmed = true;
      break;
    case "online":
      ws.authConfirmed = false;
      break;
  }
  if (ws.paused && state.kind !== "paused" && state.kind !== "unknown") {
    ws.paused = false;
    logger.warn("workspace {workspaceId} was resumed: heartbeats go on", {
      workspaceId: ws.id,
    });
    fleet.emit("resumed", { workspaceId: ws.id });
    fleet.rearm(ws, fleet.clock.now());
  }
  if (ws.paused) {
    fleet.queue.at(
      fleet.clock.now() + fleet.pausedCheckMs,
      () => askState(fleet, ws, true),
    );
  }
}
