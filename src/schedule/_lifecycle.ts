/**
 * A workspace's lifecycle on the platform (internal): the questions asked
 * about it, and what their answers change. The owner of every workspace's
 * `ask` book.
 *
 * Today's platform answers a deleted workspace's heartbeats 200 and its
 * `/state` 401 (deletion revokes every token), so:
 *
 * - `/state` is asked now and then (every `statePollEvery` accepted beats,
 *   at start with `checkStateAtStart`, and while paused at a low rate);
 * - when `/state` or a beat is refused, `GET /workspaces/:id` (open) is
 *   asked once: 410 or 404 is deleted; 200 is a token revoked on a live
 *   workspace (the escalation then says so with certainty; and when its
 *   beats are accepted, the workspace has no live token at all, so a
 *   register gets it a new one); anything else proves nothing;
 * - a 404 from `/state` is deleted only with `"deleted": true`.
 *
 * A question waits in the cap's queue when the cap is full (never dropped),
 * at most one per workspace at a time.
 *
 * @module
 */
import type { AskWhy, Fleet } from "./_fleet.ts";
import { logger } from "../shared/_logger.ts";
import {
  fetchWorkspaceState,
  type WorkspaceStateKind,
} from "../platform/workspace_state.ts";
import { lookupWorkspace } from "../platform/workspace_lookup.ts";
import { isFinal, moveTo, reconcile, servedState } from "./_life.ts";
import { noteRateLimited } from "./_rate_limit.ts";
import { tokenFor } from "./_token_keeper.ts";
import { noteAnswer, type Runtime } from "./_workspace_runtime.ts";

/** What a question came to. */
export interface Answer {
  kind: WorkspaceStateKind;
  platformStatus?: string;
  /** The lookup said the workspace exists (a refused token is revoked). */
  exists?: boolean;
}

/**
 * Asks about `ws`: `/state` (then the lookup if it is refused), or for a
 * refused beat or register the lookup alone; the answer is acted on (see
 * {@link apply}). Queued under the cap; one question at a time per
 * workspace: asked again while one is queued or under way, the same one's
 * answer comes back.
 *
 * @returns The answer, once acted on; `undefined` when stopped or gone.
 */
export function ask(
  fleet: Fleet,
  ws: Runtime,
  why: AskWhy,
): Promise<Answer | undefined> {
  const book = ws.ask;
  if (book.current) return book.current as Promise<Answer | undefined>;
  if (fleet.stopped || isFinal(ws)) return Promise.resolve(undefined);
  let settle!: (answer: Answer | undefined) => void;
  const current = new Promise<Answer | undefined>((r) => settle = r);
  book.current = current;
  book.busy = true;
  const end = (answer: Answer | undefined) => {
    book.busy = false;
    book.current = undefined;
    settle(answer);
  };
  const run = () => {
    void fleet.track(
      question(fleet, ws, why).then(
        (answer) => {
          if (answer && !fleet.stopped) apply(fleet, ws, answer, why);
          return answer;
        },
        (error) => {
          logger.error(
            "internal error in a question about {workspaceId}: {error}",
            { workspaceId: ws.id, error },
          );
          return undefined;
        },
      ).then((answer) => {
        end(answer);
        fleet.cap.release();
        reconcile(fleet, ws); // a paused one's next check
      }),
    );
  };
  if (fleet.cap.tryTake()) run();
  else {
    fleet.cap.wait(() => {
      if (fleet.stopped || isFinal(ws)) {
        end(undefined);
        return false;
      }
      run();
      return true;
    });
  }
  return current;
}

/** The question itself; `undefined` when stopped meanwhile. */
async function question(
  fleet: Fleet,
  ws: Runtime,
  why: AskWhy,
): Promise<Answer | undefined> {
  const deadline = fleet.deadlines.join(fleet.clock.now());
  const signal = deadline.controller.signal;
  try {
    const token = await tokenFor(fleet, ws, signal);
    let kind: WorkspaceStateKind = "unknown";
    let platformStatus: string | undefined;
    if (why !== "refused") {
      if (token.kind !== "ok") return { kind: "unknown" };
      const state = await fleet.counted(fetchWorkspaceState({
        platformUrl: ws.platformUrl,
        workspaceId: ws.id,
        token: token.token,
        orgId: ws.orgId,
        timeoutMs: 0,
        signal,
        fetch: fleet.options.fetch,
        init: fleet.pool.init(),
      }));
      if (state.status === 429) noteRateLimited(fleet, ws, undefined);
      kind = state.kind;
      platformStatus = state.platformStatus;
      if (kind !== "auth") return { kind, platformStatus };
    }
    const found = await fleet.counted(lookupWorkspace({
      platformUrl: ws.platformUrl,
      workspaceId: ws.id,
      // Not needed, but without the org header it keys the rate limiter's
      // bucket on this workspace rather than on the address of the fleet.
      token: token.kind === "ok" ? token.token : undefined,
      orgId: ws.orgId,
      timeoutMs: 0,
      signal,
      fetch: fleet.options.fetch,
      init: fleet.pool.init(),
    }));
    if (found.status === 429) noteRateLimited(fleet, ws, undefined);
    if (found.kind === "deleted") {
      return { kind: "deleted", platformStatus: found.platformStatus };
    }
    if (found.kind === "exists") {
      return {
        kind: "auth",
        platformStatus: found.platformStatus,
        exists: true,
      };
    }
    // The lookup proves nothing: a refused /state stays a refusal.
    return { kind: why === "refused" ? "unknown" : kind, platformStatus };
  } catch (error) {
    if (fleet.stopped) return undefined;
    throw error;
  } finally {
    fleet.deadlines.leave(deadline);
  }
}

/** Acts on an answer, then emits the `state` event. */
export function apply(
  fleet: Fleet,
  ws: Runtime,
  answer: Answer,
  why: AskWhy,
): void {
  if (isFinal(ws)) return;
  const book = ws.ask;
  book.lastState = answer.kind;
  switch (answer.kind) {
    case "deleted":
      deleted(fleet, ws, answer.platformStatus);
      break;
    case "paused":
      book.tokenAccepted = true;
      book.authConfirmed = false;
      if (ws.life.state !== "paused" && moveTo(fleet, ws, "paused")) {
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
    case "online":
      book.tokenAccepted = true;
      book.authConfirmed = false;
      resume(fleet, ws);
      break;
    case "auth":
      if (answer.exists) {
        book.authConfirmed = true;
        // /state refused the token while the beats are accepted: the
        // workspace has no live token at all (its tokens were revoked in
        // a cleanup, and the registry calls are let through). A register
        // gets it a new one.
        if (why !== "refused" && ws.beats.consecutiveFailures === 0) {
          fleet.parts.register(ws);
        }
      }
      break;
    case "unknown":
      break;
  }
  fleet.emit("state", {
    workspaceId: ws.id,
    kind: answer.kind,
    ...(answer.platformStatus ? { platformStatus: answer.platformStatus } : {}),
  });
}

/** The platform says `ws` was deleted: it is no longer served. */
export function deleted(
  fleet: Fleet,
  ws: Runtime,
  platformStatus: string | undefined,
): void {
  ws.ask.lastState = "deleted";
  if (!moveTo(fleet, ws, "deleted")) return;
  noteAnswer(ws, undefined, "deleted on the platform");
  logger.error(
    "workspace {workspaceId} was deleted on the platform: it is no longer served. " +
      "Create a new workspace in the canvas and use its id and token.",
    { workspaceId: ws.id },
  );
  fleet.emit("deleted", {
    workspaceId: ws.id,
    ...(platformStatus ? { platformStatus } : {}),
  });
}

function resume(fleet: Fleet, ws: Runtime): void {
  if (ws.life.state !== "paused") return;
  if (!moveTo(fleet, ws, servedState(ws))) return;
  logger.warn("workspace {workspaceId} was resumed: heartbeats go on", {
    workspaceId: ws.id,
  });
  fleet.emit("resumed", { workspaceId: ws.id });
}
