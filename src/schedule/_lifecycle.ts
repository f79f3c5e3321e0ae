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
 * - before every register, the lookup alone: the platform's register is an
 *   upsert that creates a workspace for an id it does not have (a typo, a
 *   purged workspace), and answers a paused or removed one 200 with side
 *   effects; only a workspace the lookup shows live is registered. A 400
 *   `invalid workspace ID` there is a configuration error (ids are UUIDs).
 *
 * A question waits in the cap's queue when the cap is full (never dropped),
 * at most one per workspace at a time. A workspace whose requests carry the
 * org header (`X-Molecule-Org-Id`) first waits its turn on the fleet's org
 * pacer: those requests share the org's one fixed rate window with every
 * person of the org using the canvas, and the fleet keeps to its share.
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
import { tokenFor } from "./_token_keeper.ts";
import { noteAnswer, type Runtime } from "./_workspace_runtime.ts";

/** What a question came to. */
export interface Answer {
  kind: WorkspaceStateKind;
  platformStatus?: string;
  /** The lookup said the workspace exists (a refused token is revoked). */
  exists?: boolean;
  /** Only the lookup was asked (it says nothing of the token). */
  lookup?: boolean;
  /** Deleted: the lookup's 404 (purged, or an id the platform never had). */
  notFound?: boolean;
  /** The lookup's 400 `invalid workspace ID`: the id is malformed. */
  invalid?: boolean;
  /** Why nothing could be told, for logs. */
  reason?: string;
  /** Not asked: no token to register with (a late or failing token function). */
  noToken?: boolean;
  /** Refused by the platform's CORS layer: nothing could be told. */
  cors?: boolean;
}

/** The questions that ask the lookup alone. */
const LOOKUP_ONLY: ReadonlySet<AskWhy> = new Set<AskWhy>([
  "refused",
  "register",
  "minted",
]);

/** The platform's statuses of a workspace that exists but is not to be served. */
const ASLEEP = new Set(["paused", "hibernated", "hibernating"]);

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
  const lookupOnly = LOOKUP_ONLY.has(why);
  if (book.current) {
    // A lookup under way does not answer for /state: asked after it.
    if (book.lookupOnly && !lookupOnly) {
      return book.current.then(() => ask(fleet, ws, why));
    }
    return book.current as Promise<Answer | undefined>;
  }
  if (fleet.stopped || isFinal(ws)) return Promise.resolve(undefined);
  let settle!: (answer: Answer | undefined) => void;
  const current = new Promise<Answer | undefined>((r) => settle = r);
  book.current = current;
  book.lookupOnly = lookupOnly;
  const end = (answer: Answer | undefined) => {
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
  // With a slot under the cap (or not wanted any more): run; `false` when
  // no longer wanted.
  const go = () => {
    const wanted = !fleet.stopped && !isFinal(ws);
    if (wanted) run();
    else end(undefined);
    return wanted;
  };
  const take = () => {
    if (fleet.stopped || isFinal(ws) || fleet.cap.tryTake()) go();
    else fleet.cap.wait(go);
  };
  // The org's window: an org-keyed question waits for its turn on the
  // pacer (a stop clears the timer and ends every wait on this answer).
  const at = ws.orgId === undefined ? -Infinity : fleet.orgReserve();
  if (at <= fleet.clock.now()) take();
  else fleet.queue.at(at, take);
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
  const lookupOnly = LOOKUP_ONLY.has(why);
  try {
    const token = await tokenFor(fleet, ws, signal);
    // No token, no register: its lookup would be for nothing (the token
    // keeper says once why there is none).
    if (why === "register" && token.kind !== "ok") {
      return {
        kind: "unknown",
        reason: token.reason,
        lookup: true,
        noToken: true,
      };
    }
    let kind: WorkspaceStateKind = "unknown";
    let platformStatus: string | undefined;
    if (!lookupOnly) {
      if (token.kind !== "ok") return { kind: "unknown", reason: token.reason };
      const state = await fleet.counted(fetchWorkspaceState({
        ...fleet.wire(ws),
        workspaceId: ws.id,
        token: token.token,
        orgId: ws.orgId,
        signal,
      }));
      if (ws.orgId !== undefined) fleet.orgLimitSeen(state.rateLimit);
      if (state.status === 429) fleet.noteRateLimited(ws, undefined);
      kind = state.kind;
      platformStatus = state.platformStatus;
      if (kind !== "auth") {
        return { kind, platformStatus, reason: state.reason, cors: state.cors };
      }
      // The lookup is an org-keyed request too: it takes its own turn.
      if (ws.orgId !== undefined) fleet.orgReserve();
    }
    const found = await fleet.counted(lookupWorkspace({
      ...fleet.wire(ws),
      workspaceId: ws.id,
      // Not needed, but without the org header it keys the rate limiter's
      // bucket on this workspace rather than on the address of the fleet.
      token: token.kind === "ok" ? token.token : undefined,
      orgId: ws.orgId,
      signal,
    }));
    if (ws.orgId !== undefined) fleet.orgLimitSeen(found.rateLimit);
    if (found.status === 429) fleet.noteRateLimited(ws, undefined);
    platformStatus = found.platformStatus;
    switch (found.kind) {
      case "deleted":
        return {
          kind: "deleted",
          platformStatus,
          notFound: found.status === 404,
          lookup: lookupOnly,
        };
      case "invalid":
        return { kind: "unknown", invalid: true, lookup: lookupOnly };
      case "exists":
        if (why === "register" || why === "minted") {
          return {
            kind: ASLEEP.has(platformStatus ?? "") ? "paused" : "online",
            platformStatus,
            exists: true,
            lookup: true,
          };
        }
        return { kind: "auth", platformStatus, exists: true };
    }
    // The lookup proves nothing: a refused /state stays a refusal.
    return {
      kind: lookupOnly ? "unknown" : kind,
      platformStatus,
      reason: found.reason ?? `HTTP ${found.status}`,
      lookup: lookupOnly,
      cors: found.cors,
    };
  } catch (error) {
    if (fleet.stopped) return undefined;
    throw error;
  } finally {
    fleet.deadlines.leave(deadline);
  }
}

/** Acts on an answer, then emits the `state` event. */
function apply(
  fleet: Fleet,
  ws: Runtime,
  answer: Answer,
  why: AskWhy,
): void {
  if (isFinal(ws)) return;
  const book = ws.ask;
  if (answer.invalid) return invalidId(fleet, ws);
  book.lastState = answer.kind;
  if (
    !answer.lookup && (answer.kind === "paused" || answer.kind === "online")
  ) {
    book.tokenAccepted = true;
    book.authConfirmed = false;
  }
  switch (answer.kind) {
    case "deleted":
      deleted(fleet, ws, answer.platformStatus, answer.notFound);
      break;
    case "paused":
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
  }
  fleet.emit("state", {
    workspaceId: ws.id,
    kind: answer.kind,
    ...(answer.platformStatus ? { platformStatus: answer.platformStatus } : {}),
  });
}

/**
 * The platform says `ws` was deleted (or, never accepted in this run,
 * that it has no workspace of that id): it is no longer served.
 */
function deleted(
  fleet: Fleet,
  ws: Runtime,
  platformStatus: string | undefined,
  notFound = false,
): void {
  if (!moveTo(fleet, ws, "deleted")) return;
  // (A heartbeat of an id the platform does not have is let through: its
  // 200 proves nothing.)
  const never = !ws.reg.accepted && !ws.ask.tokenAccepted;
  const source = ws.config.idSource ?? "the workspace id";
  if (notFound && never) {
    noteAnswer(
      ws,
      undefined,
      "not found on the platform (deleted, or a wrong id)",
    );
    logger.error(
      "workspace {workspaceId} is not on the platform (GET /workspaces/:id: workspace not found): it was deleted, or the id is wrong (check {source}). " +
        "Nothing was registered; it is no longer served. A deleted workspace cannot come back: create a new one in the canvas and use its id and token.",
      { workspaceId: ws.id, source },
    );
  } else {
    noteAnswer(ws, undefined, "deleted on the platform");
    logger.error(
      "workspace {workspaceId} was deleted on the platform: it is no longer served. " +
        "Create a new workspace in the canvas and use its id and token.",
      { workspaceId: ws.id },
    );
  }
  fleet.emit("deleted", {
    workspaceId: ws.id,
    ...(platformStatus ? { platformStatus } : {}),
    ...(notFound && never ? { notFound: true } : {}),
  });
}

/**
 * The platform refuses `ws`'s id as malformed (its ids are UUIDs; any
 * other id is answered 500 by every register and heartbeat, forever): a
 * configuration error; it is no longer served.
 */
function invalidId(fleet: Fleet, ws: Runtime): void {
  ws.life.rejectedFor = "id";
  if (!moveTo(fleet, ws, "rejected")) {
    ws.life.rejectedFor = undefined;
    return;
  }
  const reason = "the platform refuses the id: workspace ids are UUIDs";
  noteAnswer(ws, 400, reason);
  logger.error(
    "workspace id {workspaceId} is refused by the platform (GET /workspaces/:id: 400 invalid workspace ID): " +
      "workspace ids are UUIDs, such as 3f9c2a4e-8b1d-4c6e-9a7f-1e2d3c4b5a60. Check {source}; this workspace is no longer served.",
    { workspaceId: ws.id, source: ws.config.idSource ?? "the workspace id" },
  );
  fleet.emit("rejected", { workspaceId: ws.id, status: 400, reason: "id" });
}

function resume(fleet: Fleet, ws: Runtime): void {
  if (ws.life.state !== "paused") return;
  if (!moveTo(fleet, ws, servedState(ws))) return;
  // Never registered (it was paused when looked up): now it may be.
  if (!ws.reg.accepted && !ws.reg.gaveUp) fleet.parts.register(ws);
  logger.warn("workspace {workspaceId} was resumed: heartbeats go on", {
    workspaceId: ws.id,
  });
  fleet.emit("resumed", { workspaceId: ws.id });
}
