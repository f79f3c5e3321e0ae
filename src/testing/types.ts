/**
 * The shapes of the platform emulator: its options, the faults it injects,
 * what it records of each request and of each workspace.
 *
 * @module
 */

/** A fault the emulator injects instead of (or before) a normal answer. */
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
  | { kind: "secret"; value: unknown };

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
}

/** What the emulator knows of a workspace. */
export interface EmulatedWorkspace {
  /** The workspace id. */
  id: string;
  /** The first token it was given, or the first minted one (`""` when none). */
  token: string;
  /** The tokens that work now; none means registry calls are let through. */
  liveTokens: string[];
  /** Every `auth_token` a register minted for it, in order. */
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
  /** The inbound secret it hands out, if any. */
  secret: string | undefined;
  /** Whether an operator paused it. */
  paused: boolean;
  /** How it was deleted: hard (purged) or soft (`removed`). */
  deleted: "hard" | "soft" | undefined;
  /** When it was deleted, ISO 8601. */
  deletedAt: string | undefined;
  /**
   * Whether its Redis liveness key exists now: set by a register for the
   * stale window, extended by a heartbeat only while it exists.
   */
  livenessKey: boolean;
  /** How often the liveness key expired (each time it went `awaiting_agent`). */
  livenessExpiries: number;
  /** Registers that re-created an expired liveness key. */
  registersAfterGap: number;
  /** The `generation` its heartbeat answers carry. */
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
   * `auth_token`.
   */
  workspaces?: Record<string, string | null>;
  /**
   * Whether an unknown workspace is created on its first request, with the
   * token it presents as its live token. @default {true when `workspaces` is not given}
   */
  acceptUnknown?: boolean;
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
   * Requests a minute per rate-limit bucket (`RATE_LIMIT` on the platform,
   * 600 by default there); buckets are keyed by `X-Molecule-Org-Id`, else
   * the bearer token, else the client address. @default {no rate limiter}
   */
  rateLimit?: number;
  /**
   * Heartbeat fields are typed as the platform's Go structs: a fraction in
   * `active_tasks`, `uptime_seconds` or `monthly_spend`, or an `error_rate`
   * that is no number, is 400 `invalid request body`. @default {true}
   */
  strictTypes?: boolean;
  /** A bearer `/state` accepts for every workspace (an admin token). @default {none} */
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
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** TCP connections open now. */
  readonly openConnections: number;
  /** Injects a fault; returns a function that removes it. */
  fail(fault: Fault, scope?: FaultScope): () => void;
  /** Removes every fault. */
  heal(): void;
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
  /** Pauses a workspace: `/state` says `paused` until {@link PlatformEmulator.resume}. */
  pause(workspaceId: string): void;
  /** Resumes a paused workspace (`provisioning` until its next heartbeat). */
  resume(workspaceId: string): void;
  /**
   * Deletes a workspace, soft (`removed`: `GET /workspaces/:id` is 410) or
   * hard (purged: 404). Every token is revoked: heartbeats answer 200 and
   * change nothing, register answers 200 and changes nothing, `/state` is
   * 401. @default {"hard"}
   */
  remove(workspaceId: string, how?: "hard" | "soft"): void;
  /** Adds a workspace with its live token (`null`: none), or replaces its tokens. */
  setWorkspace(workspaceId: string, token: string | null): void;
  /** Sets the secret handed to a workspace (`undefined` for none). */
  setSecret(workspaceId: string, secret: string | undefined): void;
  /** The tokens that work for a workspace now. */
  liveTokens(workspaceId: string): string[];
  /** What the emulator knows of a workspace (a copy). */
  workspace(workspaceId: string): EmulatedWorkspace | undefined;
  /** Records of one endpoint (and workspace). */
  requestsTo(path: EmulatedPath, workspaceId?: string): RequestRecord[];
  /** Stops the server and drops every connection. */
  close(): Promise<void>;
}
