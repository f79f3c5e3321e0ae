/**
 * GET /workspaces/:id: is the workspace still there? The platform's open
 * lookup, and its reliable deletion signal: after a refused token, it tells
 * "deleted" (410, 404) from "token revoked" (200).
 *
 * @module
 */
import type { TokenSource } from "../shared/token.ts";
import type { FetchWorkspaceStateOptions } from "./http.ts";
import { getWorkspace, type WorkspaceState } from "./workspace_state.ts";

/**
 * What the lookup says:
 * - `exists`: the workspace is there (200 with a JSON object, the
 *   platform's workspace): a refused token elsewhere was revoked (its
 *   `platformStatus` says whether it is live: `paused` and `hibernated`
 *   are not);
 * - `deleted`: removed (410, soft) or purged (404 with the platform's JSON
 *   error, or never existed); a bare 404 (the tenant guard's answer to a
 *   wrong org id) is `unknown`;
 * - `invalid`: 400 `invalid workspace ID`: the id is not the platform's
 *   kind of id (a UUID): a configuration error;
 * - `unknown`: no usable answer (5xx, 429, a tenant guard's 400, a network
 *   error, a timeout, a 2xx whose body is not a JSON object, such as the
 *   canvas web app's page…): proves nothing, ask again later; `reason`
 *   says what came back.
 */
export type WorkspaceLookupKind = "exists" | "deleted" | "invalid" | "unknown";

/** The result of {@link lookupWorkspace}. */
export interface WorkspaceLookup extends Omit<WorkspaceState, "kind"> {
  /** What it means. */
  kind: WorkspaceLookupKind;
}

/** Options of {@link lookupWorkspace}. */
export interface LookupWorkspaceOptions
  extends Omit<FetchWorkspaceStateOptions, "token"> {
  /**
   * A bearer to send, though the lookup needs none: without `orgId` the
   * platform's rate limiter keys on it, each workspace in its own bucket
   * (else every lookup of the process shares the client IP's). @default {none}
   */
  token?: TokenSource;
}

/**
 * Asks the platform whether a workspace exists. Never throws for an answer
 * or a network error (those are `unknown`); only an abort through `signal`
 * rejects.
 *
 * @example
 * ```ts
 * import { lookupWorkspace } from "@molecule/heartbeat/platform";
 * const found = await lookupWorkspace({
 *   platformUrl: "http://127.0.0.1:8080",
 *   workspaceId: "ws-1",
 * });
 * if (found.kind === "deleted") console.error("create a new workspace in the canvas");
 * if (found.kind === "exists") console.error("the token was revoked: regenerate it (Tokens tab)");
 * ```
 *
 * @param options Where, which, and how long to wait.
 * @returns What the platform says.
 */
export async function lookupWorkspace(
  options: LookupWorkspaceOptions,
): Promise<WorkspaceLookup> {
  return await getWorkspace(options, "", (status, json, platformStatus) => {
    if (status === 410) return "deleted";
    if (status === 400 && json.error === "invalid workspace ID") {
      return "invalid";
    }
    // The platform's own 404 says so in JSON ({"error":"workspace not found"});
    // its tenant guard answers a wrong org id with a bare 404, a firewall
    // with a page of its own, a gateway or a wrong base path with JSON of
    // its own ({"error":"not found"}): those prove nothing.
    if (status === 404 && json.error === "workspace not found") {
      return "deleted";
    }
    // (A 2xx whose body is not a JSON object never gets here: it is not
    // the platform's answer, and proves nothing.)
    if (status >= 200 && status < 300) {
      // A soft-deleted row some platforms still serve with 200.
      return platformStatus === "removed" ? "deleted" : "exists";
    }
  });
}
