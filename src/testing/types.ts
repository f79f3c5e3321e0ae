/**
 * The shapes of the platform emulator: its options, the faults it injects,
 * what it records of each request and of each workspace.
 *
 * @module
 */

/**
 * A fault the emulator injects instead of (or before) a normal answer.
 *
 * Every kind but `auth-blip` stands in front of the platform (before its
 * CORS layer, rate limiter and tenant guard), as a proxy or a broken
 * platform would, and is used up by the first request its scope matches:
 *
 * - `status`: answers `status` with `body` (default
 *   `{"error":"injected fault"}`). On a register whose bearer the workspace
 *   would accept, a non-200 one counts as the platform's own failure and
 *   stamps the register-failure marker (see
 *   {@link EmulatedWorkspace.lastRegisterFailureAt}).
 * - `delay`: waits `ms`, then answers normally.
 * - `hang`: never answers; `reset`: drops the connection;
 *   `reset-mid-body`: drops it halfway through a 200.
 * - `huge-body`, `non-json`, `redirect`: what a misconfigured proxy sends.
 * - `secret`: answers normally with this `platform_inbound_secret`.
 * - `auth-blip`: a database blip in the token check (`wsauth/tokens.go`
 *   turns any database error into "invalid token"): a request that presents
 *   a bearer to a workspace whose token is checked (it has a live token, or
 *   it is `/state`) is answered 401 `{"error":"invalid workspace auth
 *   token"}` even with a good token. It is used up only by such token
 *   checks; see {@link PlatformEmulator.blip}.
 *
 * @example A blip on the next heartbeat's token check
 * ```ts
 * import { startPlatformEmulator } from "@molecule/heartbeat/testing";
 * const id = "6f1c0a4e-2b7d-4c1e-9a55-3d2f8e7b9c01";
 * const platform = await startPlatformEmulator({ workspaces: { [id]: "tok" } });
 * platform.fail({ kind: "auth-blip" }, { path: "heartbeat", workspaceId: id, times: 1 });
 * await platform.close();
 * ```
 */
export type Fault =
  | {
    kind: "status";
    status: number;
    body?: string;
    headers?: Record<string, string>;
  }
  | { kind: "delay"; ms: number }
  | { kind: "hang" }
  | { kind: "reset" }
  | { kind: "reset-mid-body" }
  | { kind: "huge-body"; bytes: number }
  | { kind: "non-json" }
  | { kind: "redirect"; location: string; status?: number }
  | { kind: "secret"; value: unknown }
  | { kind: "auth-blip" };

/** The endpoints, as records and fault scopes name them. */
export type EmulatedPath = "register" | "heartbeat" | "state" | "workspace";

/** Which requests a fault applies to. */
export interface FaultScope {
  /**
   * `register`, `heartbeat`, `state` (`GET /workspaces/:id/state`),
   * `workspace` (`GET /workspaces/:id`), or any of them. @default {"any"}
   */
  path?: EmulatedPath | "any";
  /** Only this workspace's requests. @default {every workspace} */
  workspaceId?: string;
  /** How many requests it applies to; then it is gone. @default {Infinity} */
  times?: number;
}

/** One request the emulator received. */
export interface RequestRecord {
  /** `register`, `heartbeat`, `state`, `workspace`, or the path as sent. */
  path: string;
  /** The workspace it named, when the body or path named one. */
  workspaceId: string | undefined;
  /** The emulator's clock (`performance.now()` by default) when it arrived. */
  at: number;
  /** The status answered (0 for a dropped connection or a hang). */
  status: number;
  /** The `Origin` header. */
  origin: string | undefined;
  /** The `Content-Type` header. */
  contentType: string | undefined;
  /** Whether the request passed the workspace's auth check. */
  authorized: boolean;
  /** The parsed JSON body, when it parsed. */
  body: unknown;
  /** The `X-Molecule-Org-Id` header. */
  orgId: string | undefined;
  /** The HTTP method. */
  method: string;
  /** Whether the rate limiter refused it (429). */
  rateLimited: boolean;
  /**
   * Whether the CORS layer refused it (403, empty body): its `Origin` was
   * neither `http://` or `https://` + the `Host` the platform saw, nor one
   * of {@link PlatformEmulatorOptions.corsOrigins}.
   */
  corsRefused: boolean;
  /** Whether an injected `auth-blip` turned its token check into a 401. */
  authBlip: boolean;
}

/** What the emulator knows of a workspace. */
export interface EmulatedWorkspace {
  /** The workspace id. */
  id: string;
  /**
   * The first token it was given, or the first minted one (`""` when none).
   */
  token: string;
  /**
   * Its live tokens; none means registry calls are let through. The live
   * tokens of a removed workspace never work (the platform refuses every
   * token of a removed workspace): a register that minted one for it
   * turns its let-through heartbeats into 401s.
   */
  liveTokens: string[];
  /**
   * Every `auth_token` a register minted for it, in order (including the
   * dead ones minted for it while removed).
   */
  minted: string[];
  /**
   * The platform's status: `online`, `degraded`, `awaiting_agent` (OFFLINE
   * in the canvas), `paused`, `removed`, or `never-seen`.
   */
  status:
    | "online"
    | "degraded"
    | "awaiting_agent"
    | "paused"
    | "removed"
    | "never-seen";
  /** Whether its token was revoked by {@link PlatformEmulator.revoke}. */
  revoked: boolean;
  /** Registers answered 200. */
  registers: number;
  /** Heartbeats applied (answered 200 and not skipped as removed). */
  heartbeats: number;
  /** The last agent card registered. */
  agentCard: unknown;
  /** The last delivery mode registered. */
  deliveryMode: string | undefined;
  /** `mcp_server_present` of the last register, when it had one. */
  mcpServerPresent: boolean | undefined;
  /** The body of the last applied heartbeat. */
  lastHeartbeat: Record<string, unknown> | undefined;
  /** The clock time of the last applied heartbeat. */
  lastHeartbeatAt: number | undefined;
  /**
   * The register-failure marker (`last_register_failure_at`), on the
   * emulator's clock: stamped by any non-200 register answer after the
   * bearer was accepted (and by an injected non-200 `status` fault on a
   * register whose bearer would have been), cleared by a successful
   * register or by a heartbeat that carries an `agent_card` object. For
   * 5 minutes after it, each heartbeat turns an `online` workspace
   * `degraded`, and the way back to `online` is closed.
   */
  lastRegisterFailureAt: number | undefined;
  /**
   * What the canvas shows on a degraded workspace: "Register failed —
   * workspace auth token may be stale. Restart or reprovision to recover."
   * when the register-failure marker degraded it, else the `sample_error`
   * of the heartbeat that did (`error_rate` >= 0.5 or `runtime_state:
   * "wedged"`). `undefined` while it is not degraded.
   */
  banner: string | undefined;
  /** The inbound secret it hands out, if any. */
  secret: string | undefined;
  /** Whether an operator paused it. */
  paused: boolean;
  /**
   * How it was deleted: hard (purged: the row is gone, and a register of its
   * id inserts a new one, see {@link PlatformEmulator.created}) or soft
   * (`removed`: the row is kept).
   */
  deleted: "hard" | "soft" | undefined;
  /**
   * When it was deleted, ISO 8601; `null` when deleted with no time (the
   * platform's 410 then says `"removed_at": null`).
   */
  deletedAt: string | null | undefined;
  /**
   * Whether its Redis liveness key exists now: set by a register for the
   * stale window, extended by a heartbeat only while it exists.
   */
  livenessKey: boolean;
  /** How often the liveness key expired (each time it went `awaiting_agent`). */
  livenessExpiries: number;
  /** Registers that re-created an expired liveness key. */
  registersAfterGap: number;
  /**
   * The `generation` its heartbeat answers carry: the platform's
   * `desired_generation`, which starts at 0 and which only wake intents
   * (not emulated) bump, so always 0.
   */
  generation: number;
}

/** Options of {@link startPlatformEmulator}. */
export interface PlatformEmulatorOptions {
  /** Address to listen on; keep it on loopback. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port; 0 picks a free one. @default {0} */
  port?: number;
  /**
   * Known workspaces: id → its live token, or `null` for a workspace with
   * no live token (as created without one): its registry calls are let
   * through whatever the bearer, and its first register mints an
   * `auth_token`. Any other id is unknown to the platform (unless
   * `acceptUnknown`): a register of it inserts a new `online` workspace
   * and mints it a token (recorded in {@link PlatformEmulator.created}), a
   * heartbeat is let through and touches nothing (200), `GET
   * /workspaces/:id` is 404 and `/state` is 401.
   */
  workspaces?: Record<string, string | null>;
  /**
   * Whether any id exists: an unknown workspace is created on its first
   * request that carries a bearer (to any of the four endpoints), with that
   * bearer as its live token (a stand-in for a workspace made in the
   * canvas), and `GET /workspaces/:id` of one not yet heard from answers 200
   * (`awaiting_agent`). Purged ids stay purged.
   * @default {true when `workspaces` is not given}
   */
  acceptUnknown?: boolean;
  /**
   * Workspace ids are UUIDs, as the platform's column is: any other id
   * answers 500 `{"error":"registration failed"}` to every register, 500
   * `{"error":"failed to update"}` to every heartbeat, 400 `{"error":"invalid
   * workspace ID"}` to `GET /workspaces/:id`, and 401 to `/state` (500
   * `{"error":"auth check failed"}` with the admin token). A UUID in another
   * spelling (capitals, no hyphens) finds the workspace, but the token check
   * compares the id sent with the platform's lower-case text: register,
   * heartbeat and `/state` are 401 even with the right token (let through
   * while no token is live), and `GET /workspaces/:id` is 200. Turn it off
   * to test with short ids such as `"ws-1"`. @default {true}
   */
  uuidIds?: boolean;
  /** The inbound secret of a workspace. @default {(id) => `secret-${id}`} */
  secretFor?: (workspaceId: string) => string | undefined;
  /**
   * Every workspace starts with no live token (the tokens in `workspaces`
   * are only what it was configured with), so its first register mints one.
   * @default {false}
   */
  issueAuthToken?: boolean;
  /**
   * The `auth_token` minted for a workspace, the `n`-th for it (from 1).
   * @default {n === 1 ? `issued-${id}` : `issued-${id}-${n}`}
   */
  mintToken?: (workspaceId: string, n: number) => string;
  /**
   * The stale window, in ms: the health sweep marks a workspace silent this
   * long `awaiting_agent`, and the Redis liveness key lives this long
   * (`REMOTE_LIVENESS_STALE_AFTER` on the platform). @default {180000}
   */
  staleAfterMs?: number;
  /**
   * The platform's own org (`MOLECULE_ORG_ID`): the tenant guard is on, and
   * every path but exactly `/health`, `/buildinfo`, `/metrics`,
   * `/registry/register` and `/registry/heartbeat` needs
   * `X-Molecule-Org-Id` equal to it. @default {no tenant guard}
   */
  orgId?: string;
  /**
   * Requests a minute per rate-limit window (`RATE_LIMIT` on the platform,
   * 600 by default there): a fixed window per key, keyed by
   * `X-Molecule-Org-Id`, else the bearer token, else the client address,
   * refilled whole a minute after it opened. Every answer then carries
   * `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
   * (whole seconds from now); over the limit: 429 `{"error":"rate limit
   * exceeded","retry_after":N}` with `Retry-After: N`, N truncated (0 while
   * the window is still full for less than a second). The limiter runs
   * after the CORS layer, before the tenant guard and authentication.
   * @default {no rate limiter}
   */
  rateLimit?: number;
  /**
   * The platform's `CORS_ORIGINS`: origins the CORS layer lets through
   * besides `http://` or `https://` + the `Host` it sees (each trimmed and
   * lower-cased; `"*"` lets every origin through). A request with any other
   * `Origin` is refused with 403 and an empty body, first thing on every
   * route. A request without `Origin` passes. One that is let through gets
   * `Access-Control-Allow-Origin` and `Access-Control-Allow-Credentials: true`.
   * @default {["http://localhost:3000", "http://localhost:3001"]}
   */
  corsOrigins?: string[];
  /**
   * The platform runs as a SaaS tenant image (`CANVAS_PROXY_URL` set): the
   * tenant guard lets a same-origin request through without
   * `X-Molecule-Org-Id` (a `Referer` or `Origin` of `http(s)://` + the
   * `Host` it sees), as it does for its own canvas. @default {false}
   */
  canvasProxy?: boolean;
  /**
   * The `Host` the platform sees instead of the request's own, as behind a
   * reverse proxy that rewrites it (nginx's default `proxy_pass` sends the
   * upstream's address): with `"127.0.0.1:8080"`, an agent that sends its
   * platform's origin as `Origin` is refused by the CORS layer (403, empty
   * body). @default {the request's `Host` header}
   */
  hostSeenAs?: string;
  /**
   * Register and heartbeat fields are typed as the platform's Go structs
   * (keys matched case-insensitively, null as absent): a fraction in
   * `active_tasks`, `uptime_seconds` or `monthly_spend`, an `error_rate`
   * that is no number, or a `mcp_server_present` or `is_busy` that is no
   * boolean, is 400 `invalid request body`. @default {true}
   */
  strictTypes?: boolean;
  /**
   * The platform's `ADMIN_TOKEN`: `/state` takes it for a workspace with no
   * live token (a deleted one: 404 with `deleted: true`); where a token is
   * live it wants that one (401). @default {none}
   */
  adminToken?: string;
  /** Milliseconds on a monotonic clock. @default {performance.now} */
  now?: () => number;
  /** Keep a {@link RequestRecord} of every request. @default {true} */
  record?: boolean;
  /** Called with every request's record, recorded or not. */
  onRequest?: (record: RequestRecord) => void;
}

/** A running emulator; see `startPlatformEmulator`. */
export interface PlatformEmulator extends AsyncDisposable {
  /** The base URL, such as `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The port. */
  readonly port: number;
  /** Every request, when recording. */
  readonly requests: RequestRecord[];
  /**
   * Ids of the workspaces a register created, in order: the platform's
   * upsert inserts a row for an id it does not have (an unknown id, or a
   * purged workspace's), answers 200 and mints it a token. A test asserts
   * it stays empty to prove an agent never made a ghost workspace.
   * (Workspaces `acceptUnknown` makes up are not listed: they stand for
   * workspaces that already existed.)
   */
  readonly created: string[];
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** TCP connections open now. */
  readonly openConnections: number;
  /** Injects a fault; returns a function that removes it. */
  fail(fault: Fault, scope?: FaultScope): () => void;
  /** Removes every fault. */
  heal(): void;
  /**
   * A database blip in the token check: the next `times` token checks of
   * the workspace (on `path`, or any) answer 401 `{"error":"invalid
   * workspace auth token"}` even with a good token. A token check is a
   * request with a bearer to a workspace that has a live token (register,
   * heartbeat) or to `/state`. Shorthand for `fail({ kind: "auth-blip" },
   * { workspaceId, times, path })`; returns a function that removes it.
   *
   * @example One 401 the agent must not act on
   * ```ts
   * import { startPlatformEmulator } from "@molecule/heartbeat/testing";
   * const id = "6f1c0a4e-2b7d-4c1e-9a55-3d2f8e7b9c01";
   * const platform = await startPlatformEmulator({ workspaces: { [id]: "tok" } });
   * platform.blip(id, 1, "heartbeat");
   * const beat = await fetch(`${platform.url}/registry/heartbeat`, {
   *   method: "POST",
   *   headers: { authorization: "Bearer tok", "content-type": "application/json" },
   *   body: JSON.stringify({ workspace_id: id }),
   * });
   * console.log(beat.status); // 401, and 200 on the next beat
   * await beat.body?.cancel();
   * await platform.close();
   * ```
   *
   * @param workspaceId The workspace whose token checks fail.
   * @param times How many token checks fail. @default {1}
   * @param path Only the token checks of this endpoint. @default {"any"}
   * @returns A function that removes what is left of the blip.
   */
  blip(
    workspaceId: string,
    times?: number,
    path?: EmulatedPath | "any",
  ): () => void;
  /**
   * A credential rotation: the workspace's tokens stop working and a new one
   * the agent does not know is live, so every call of the agent is 401
   * until {@link PlatformEmulator.restore}.
   */
  revoke(workspaceId: string): void;
  /** Undoes {@link PlatformEmulator.revoke} or {@link PlatformEmulator.revokeAll}. */
  restore(workspaceId: string): void;
  /**
   * A cleanup: every token revoked and none live, so the agent's registry
   * calls are let through (heartbeats 200), its next register mints a new
   * `auth_token`, and from then on only that one works.
   */
  revokeAll(workspaceId: string): void;
  /**
   * Pauses a workspace: `/state` says `paused` until
   * {@link PlatformEmulator.resume}; a register answers 200 and leaves it
   * paused.
   */
  pause(workspaceId: string): void;
  /** Resumes a paused workspace (`provisioning` until its next heartbeat). */
  resume(workspaceId: string): void;
  /**
   * Deletes a workspace; every token is revoked, so its registry calls are
   * let through: heartbeats answer 200 and change nothing, and `/state` is
   * 401.
   *
   * - soft (`removed`, the row kept): `GET /workspaces/:id` is 410 with
   *   `removed_at` (`removedAt`, default now; `null` gives `"removed_at":
   *   null`); a register answers 200 `registered`, leaves the row removed,
   *   and mints it an `auth_token` that never works: from then on every
   *   heartbeat of it is 401.
   * - hard (purged, the row gone): `GET /workspaces/:id` is 404; a register
   *   inserts a new `online` workspace of that id (the ghost, listed in
   *   {@link PlatformEmulator.created}) and mints it a token.
   *
   * @default {"hard"}
   */
  remove(
    workspaceId: string,
    how?: "hard" | "soft",
    removedAt?: string | null,
  ): void;
  /** Adds a workspace with its live token (`null`: none), or replaces its tokens. */
  setWorkspace(workspaceId: string, token: string | null): void;
  /** Sets the secret handed to a workspace (`undefined` for none). */
  setSecret(workspaceId: string, secret: string | undefined): void;
  /** The tokens that work for a workspace now (none while it is deleted). */
  liveTokens(workspaceId: string): string[];
  /** What the emulator knows of a workspace (a copy). */
  workspace(workspaceId: string): EmulatedWorkspace | undefined;
  /** Records of one endpoint (and workspace). */
  requestsTo(path: EmulatedPath, workspaceId?: string): RequestRecord[];
  /** Stops the server and drops every connection. */
  close(): Promise<void>;
}
