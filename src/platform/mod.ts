/**
 * The platform's endpoints, one request at a time, for a caller that
 * schedules them itself: {@link register}, {@link sendHeartbeat},
 * {@link fetchWorkspaceState} (`GET /workspaces/:id/state`),
 * {@link lookupWorkspace} (`GET /workspaces/:id`), and the agent card
 * register sends ({@link buildAgentCard}). Each returns its outcome as a
 * value, a refused token too; only an abort through its `signal` rejects.
 * `startHeartbeat` (in `@molecule/heartbeat`) makes these calls for you,
 * on a schedule, for any number of workspaces.
 *
 * @example Register, then send one beat
 * ```ts
 * import { register, sendHeartbeat } from "@molecule/heartbeat/platform";
 * const where = {
 *   platformUrl: "http://127.0.0.1:8080",
 *   workspaceId: "ws-1",
 *   token: "t",
 * };
 * const registered = await register(where);
 * if (registered.kind === "auth") console.error("token refused");
 * const beat = await sendHeartbeat({ ...where, stats: { active_tasks: 1 } });
 * console.log(beat.kind);
 * ```
 *
 * @module
 */
export {
  register,
  type RegisterOptions,
  type RegisterResult,
} from "./register.ts";
export {
  type HeartbeatResult,
  type HeartbeatStats,
  sendHeartbeat,
  type SendHeartbeatOptions,
} from "./heartbeat.ts";
export {
  fetchWorkspaceState,
  type WorkspaceState,
  type WorkspaceStateKind,
} from "./workspace_state.ts";
export {
  lookupWorkspace,
  type LookupWorkspaceOptions,
  type WorkspaceLookup,
  type WorkspaceLookupKind,
} from "./workspace_lookup.ts";
export type { Outcome, OutcomeKind } from "./outcome.ts";
export type { FetchLike, FetchWorkspaceStateOptions } from "./http.ts";
export {
  type AgentCard,
  type AgentSkill,
  buildAgentCard,
} from "./agent_card.ts";
export { isValidToken, type TokenSource } from "../shared/token.ts";
