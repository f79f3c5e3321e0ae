/**
 * The emulated platform (internal): its workspaces (tokens, status, the
 * Redis liveness key) as today's platform keeps them, and its answers to
 * register, heartbeat, `/state` and `GET /workspaces/:id` (see
 * PLATFORM.md). The one owner of that state.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { STALE_AFTER_MS } from "../shared/constants.ts";
import type { EmulatedWorkspace, PlatformEmulatorOptions } from "./types.ts";

/**
 * A workspace as the emulator keeps it: what callers see of it (see
 * `EmulatedWorkspace`), its tokens as a set, and what only the platform
 * knows.
 */
export interface Row
  extends Omit<EmulatedWorkspace, "liveTokens" | "status" | "livenessKey"> {
  live: Set<string>;
  /** Tokens taken by revoke/revokeAll, given back by restore. */
  revokedTokens: string[];
  /** The stand-in token a rotation made live (the agent does not know it). */
  rotated: string | undefined;
  status: "online" | "degraded" | "awaiting_agent" | "never-seen";
  /** Resumed and not yet heard from. */
  provisioning: boolean;
  /** When the liveness key expires; undefined when there is none. */
  keyExpiresAt: number | undefined;
}

/** An answer: status, JSON body (or a string), extra headers. */
export interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** What a route gets of a request, and tells of its auth. */
export interface RouteRequest {
  workspaceId: string | undefined;
  bearer: string | undefined;
  /** The parsed JSON object body, when it was one (keys folded: `fold`). */
  body: Record<string, unknown> | undefined;
  /** The query string. */
  search: URLSearchParams;
  /** The inbound secret a fault hands out instead of the workspace's. */
  secretOverride: { value: unknown } | undefined;
  /** Asked at each token check: whether a database blip (an injected `auth-blip`) fails it. */
  blip: () => boolean;
  /** Set by the route: whether the request passed the auth check. */
  authorized: boolean;
}

/** How long the register-failure marker degrades a workspace, in ms. */
const FAILED_REGISTER_HOLD_MS = 5 * 60_000;

/** The banner of a workspace the register-failure marker degraded. */
const REGISTER_FAILED_BANNER =
  "Register failed — workspace auth token may be stale. Restart or reprovision to recover.";

/** The platform's endpoints and the method each takes (gin answers any other 404). */
const METHODS: Record<string, string> = {
  register: "POST",
  heartbeat: "POST",
  state: "GET",
  workspace: "GET",
};

/** gin's answer where no route matches, a wrong method included. */
const NOT_FOUND: Answer = {
  status: 404,
  body: "404 page not found",
  headers: { "content-type": "text/plain" },
};

/** How long the platform caches an inbound secret, in ms (`inboundSecretCacheTTL`). */
const SECRET_CACHE_MS = 5 * 60_000;

const UUID =
  /^([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})$/i;

/**
 * Postgres's text of `id` as a `uuid` (hyphens optional, braces allowed):
 * lower case, 8-4-4-4-12; undefined when it takes no such id.
 */
function uuidText(id: string): string | undefined {
  const bare = id.startsWith("{") && id.endsWith("}") ? id.slice(1, -1) : id;
  return UUID.exec(bare)?.slice(1).join("-").toLowerCase();
}

/** The platform's JSON error answer, `{"error": message}`. */
export function error(status: number, message: string): Answer {
  return { status, body: { error: message } };
}

/** The token check's 401. */
function refusal(auth: "missing" | "invalid"): Answer {
  return error(401, `${auth} workspace auth token`);
}

type Fields = Record<string, (value: unknown) => boolean>;
const any = () => true;
const str = (v: unknown) => typeof v === "string";
const bool = (v: unknown) => typeof v === "boolean";
const num = (v: unknown) => typeof v === "number";
const int = Number.isInteger;

/** `models.RegisterPayload`: its JSON fields and what each takes besides null. */
const REGISTER: Fields = {
  id: str,
  url: str,
  agent_card: any, // json.RawMessage
  delivery_mode: str,
  kind: str,
  mcp_server_present: bool,
};

/**
 * `models.HeartbeatPayload`: the JSON fields an agent sends (not the ones
 * of the platform's own runtimes) and what each takes besides null.
 */
const HEARTBEAT: Fields = {
  workspace_id: str,
  error_rate: num,
  sample_error: str,
  active_tasks: int,
  is_busy: bool,
  uptime_seconds: int,
  current_task: str,
  monthly_spend: int,
  runtime_state: str,
  agent_card: any,
  mcp_server_present: bool,
};

/**
 * A request body with its keys as Go's `encoding/json` matches them to
 * the register's and heartbeat's fields: case-insensitively (a later
 * duplicate wins).
 */
export function fold(body: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(body).map(([key, value]) => {
      const field = key.toLowerCase();
      return [field in REGISTER || field in HEARTBEAT ? field : key, value];
    }),
  );
}

/**
 * Every workspace the emulator knows, the platform's rules over them, and
 * its answers, with the emulator's options (defaults applied here).
 */
export class Model {
  readonly rows: Map<string, Row> = new Map();
  /** Ids a register inserted (the upsert of an id with no row). */
  readonly created: string[] = [];
  /** The emulator's clock. */
  readonly now: () => number;
  /** Inbound secrets minted for ids with no row, cached as the platform does. */
  #strays = new Map<string, { secret: string; until: number }>();
  #o: PlatformEmulatorOptions;
  #acceptUnknown: boolean;
  #uuidIds: boolean;
  #staleAfterMs: number;

  constructor(options: PlatformEmulatorOptions) {
    this.#o = options;
    this.now = options.now ?? (() => performance.now());
    this.#acceptUnknown = options.acceptUnknown ?? !options.workspaces;
    this.#uuidIds = options.uuidIds ?? true;
    this.#staleAfterMs = options.staleAfterMs ?? STALE_AFTER_MS;
    for (const [id, token] of Object.entries(options.workspaces ?? {})) {
      const row = this.set(id, options.issueAuthToken ? null : token);
      if (options.issueAuthToken && token) row.token = token;
    }
  }

  /** An id the platform's `uuid` column refuses (with `uuidIds`). */
  #badId(id: string): boolean {
    return this.#uuidIds && uuidText(id) === undefined;
  }

  /**
   * The key of an id's row: with `uuidIds`, the text Postgres has for it
   * (so `6F1C…` finds the row of `6f1c…`), else the id itself.
   */
  key(id: string): string {
    return (this.#uuidIds && uuidText(id)) || id;
  }

  /**
   * The workspace's row, unless there is none: never made, or purged (a
   * hard-deleted row is kept only to be looked at).
   */
  row(id: string | undefined): Row | undefined {
    const row = id === undefined ? undefined : this.rows.get(this.key(id));
    return row && row.deleted !== "hard" ? row : undefined;
  }

  /** Adds a workspace with its live token (none for `null`), or replaces its tokens. */
  set(id: string, token: string | null): Row {
    id = this.key(id);
    const existing = this.rows.get(id);
    if (existing) {
      existing.live = new Set(token === null ? [] : [token]);
      if (token !== null && !existing.token) existing.token = token;
      return existing;
    }
    const row: Row = {
      id,
      token: token ?? "",
      live: new Set(token === null ? [] : [token]),
      revokedTokens: [],
      rotated: undefined,
      minted: [],
      revoked: false,
      status: "never-seen",
      registers: 0,
      heartbeats: 0,
      agentCard: undefined,
      deliveryMode: undefined,
      mcpServerPresent: undefined,
      lastHeartbeat: undefined,
      lastHeartbeatAt: undefined,
      secret: (this.#o.secretFor ?? ((id: string) => `secret-${id}`))(id),
      paused: false,
      provisioning: false,
      deleted: undefined,
      deletedAt: undefined,
      keyExpiresAt: undefined,
      livenessExpiries: 0,
      registersAfterGap: 0,
      lastRegisterFailureAt: undefined,
      banner: undefined,
      generation: 0,
    };
    this.rows.set(id, row);
    return row;
  }

  /**
   * The token check. The registry calls' (`requireWorkspaceToken`): a
   * workspace with no live token is let through whatever the bearer;
   * otherwise the bearer must be one of its live tokens, checked against
   * the database (`blip` says whether a database blip turns the check into
   * "invalid"), no token of a removed workspace is ever valid, and
   * `ValidateToken` compares the id sent with the row's own text, so an id
   * in another spelling (capitals) never passes. `/state`'s (`strict`): a
   * bearer that is a live token of a workspace that is not removed.
   */
  #auth(
    row: Row | undefined,
    id: string,
    bearer: string | undefined,
    blip?: () => boolean,
    strict = false,
  ): "ok" | "missing" | "invalid" {
    if (!strict && row?.live.size === 0) return "ok";
    if (bearer === undefined) return "missing";
    if (blip?.()) return "invalid";
    return row && !row.deleted && row.live.has(bearer) && row.id === id &&
        !this.#badId(id)
      ? "ok"
      : "invalid";
  }

  /**
   * An injected non-200 answer to a register whose bearer the workspace
   * would accept counts as the platform's own failure: the marker.
   */
  injectedRegisterFailure(id: string | undefined, bearer: string | undefined) {
    const row = this.row(id);
    if (row && !this.#badId(row.id) && this.#auth(row, id!, bearer) === "ok") {
      row.lastRegisterFailureAt = this.now();
    }
  }

  /**
   * The platform's answer to a request its middleware let through: gin's
   * 404 for a path and method it has no route for. In `acceptUnknown`
   * mode, an unknown (UUID) id named with a bearer is first made a
   * workspace that was there all along, with that bearer as its token.
   */
  answer(path: string, method: string, r: RouteRequest): Answer {
    if (METHODS[path] !== method) return NOT_FOUND;
    const id = r.workspaceId;
    if (
      id && this.#acceptUnknown && r.bearer && !this.rows.has(this.key(id)) &&
      !this.#badId(id)
    ) this.set(id, r.bearer);
    const row = this.row(id);
    if (path === "register") return this.#register(r, row);
    if (path === "heartbeat") return this.#heartbeat(r, row);
    return path === "state" ? this.#state(r, row) : this.#workspace(r, row);
  }

  /**
   * The registry calls' checks after validation (`undefined` lets the
   * request on): a non-UUID id fails the token check open, then every query
   * of the handler fails (`failure`, a 500; the marker's UPDATE too); then
   * the token check: a workspace with no live token, or no row, is let
   * through, but in `acceptUnknown` mode an id the emulator never knew is a
   * workspace whose token the request did not present.
   */
  #registryCheck(
    r: RouteRequest,
    row: Row | undefined,
    id: string,
    failure: string,
  ): Answer | undefined {
    if (this.#badId(id)) {
      r.authorized = true;
      return error(500, failure);
    }
    const auth = row
      ? this.#auth(row, id, r.bearer, r.blip)
      : !this.#acceptUnknown || this.rows.has(this.key(id))
      ? "ok"
      : r.bearer === undefined
      ? "missing"
      : "invalid";
    r.authorized = auth === "ok";
    if (auth !== "ok") return refusal(auth);
  }

  /** An answer with the inbound secret (a fault's, or this one). */
  #withSecret(answer: object, r: RouteRequest, secret: unknown): Answer {
    if (r.secretOverride) secret = r.secretOverride.value;
    return {
      status: 200,
      body: secret === undefined
        ? answer
        : { ...answer, platform_inbound_secret: secret },
    };
  }

  /** Whether a body decodes into the platform's struct (`strictTypes`). */
  #typed(body: Record<string, unknown>, fields: Fields): boolean {
    return !(this.#o.strictTypes ?? true) ||
      Object.entries(fields).every(([k, ok]) => body[k] == null || ok(body[k]));
  }

  /**
   * POST /registry/register: validation, then the token check (a workspace
   * with no live token, or no row, is let through), then the upsert. Every
   * non-200 answer after the token check stamps the register-failure
   * marker.
   */
  #register(r: RouteRequest, row: Row | undefined): Answer {
    const body = r.body;
    if (
      !body || typeof body.id !== "string" || body.id === "" ||
      body.agent_card === undefined || !this.#typed(body, REGISTER)
    ) return error(400, "invalid request body");
    const asked = body.delivery_mode as string | null | undefined;
    if (asked && asked !== "push" && asked !== "poll") {
      return error(400, "delivery_mode must be 'push' or 'poll'");
    }
    if (body.kind && body.kind !== "workspace" && body.kind !== "platform") {
      return error(400, "kind must be 'workspace' or 'platform'");
    }
    const id = body.id;
    const refused = this.#registryCheck(r, row, id, "registration failed");
    if (refused) return refused;
    const failed = (answer: Answer): Answer => {
      if (row) row.lastRegisterFailureAt = this.now();
      return answer;
    };
    if (body.kind === "platform") {
      return failed(error(
        403,
        "kind='platform' may only be assigned by the platform-agent install path",
      ));
    }
    const mode = asked || row?.deliveryMode || "push";
    if (mode === "push" && (typeof body.url !== "string" || body.url === "")) {
      return failed(error(400, "url is required for push-mode workspaces"));
    }
    if (!row) { // the upsert's INSERT: a ghost workspace, with no token
      this.rows.delete(this.key(id));
      row = this.set(id, null);
      this.created.push(row.id);
    }
    const minted = this.#upsert(row, body, mode);
    return this.#withSecret(
      {
        status: "registered",
        delivery_mode: mode,
        ...(minted ? { auth_token: minted } : {}),
      },
      r,
      row.secret,
    );
  }

  /**
   * An accepted register. The upsert skips a paused or removed row (it
   * answers 200 and leaves the row alone); otherwise it refreshes the card
   * and delivery mode and sets `online` (from any status). Either way it
   * sets the liveness key, clears the register-failure marker, and mints a
   * token when none is live (a dead one for a removed workspace). Returns
   * the minted token, if any.
   */
  #upsert(
    row: Row,
    body: Record<string, unknown>,
    mode: string,
  ): string | undefined {
    this.#expire(row);
    row.registers++;
    row.lastRegisterFailureAt = undefined;
    if (!row.deleted && !row.paused) {
      row.agentCard = body.agent_card;
      row.deliveryMode = mode;
      if (typeof body.mcp_server_present === "boolean") {
        row.mcpServerPresent = body.mcp_server_present;
      }
      row.status = "online";
      row.provisioning = false;
      row.banner = undefined;
    }
    if (row.keyExpiresAt === undefined && row.registers > 1) {
      row.registersAfterGap++;
    }
    row.keyExpiresAt = this.now() + this.#staleAfterMs;
    if (row.live.size > 0) return undefined;
    const n = row.minted.length + 1;
    const token = this.#o.mintToken?.(row.id, n) ??
      (n === 1 ? `issued-${row.id}` : `issued-${row.id}-${n}`);
    row.minted.push(token);
    row.live.add(token);
    if (!row.token) row.token = token;
    return token;
  }

  /**
   * POST /registry/heartbeat: validation, the token check (let through with
   * no live token or no row), then the update, which skips removed rows and
   * touches nothing when there is no row. With no row, the inbound secret
   * the platform mints cannot be stored: its cache hands the same one out
   * for 5 minutes, then a new one.
   */
  #heartbeat(r: RouteRequest, row: Row | undefined): Answer {
    const body = r.body;
    if (
      !body || typeof body.workspace_id !== "string" ||
      body.workspace_id === "" || !this.#typed(body, HEARTBEAT)
    ) return error(400, "invalid request body");
    const id = body.workspace_id;
    const refused = this.#registryCheck(r, row, id, "failed to update");
    if (refused) return refused;
    if (row) this.#update(row, body);
    let stray = this.#strays.get(id);
    if (!row && !(stray && this.now() < stray.until)) {
      const bytes = crypto.getRandomValues(new Uint8Array(32));
      stray = {
        secret: Buffer.from(bytes).toString("base64url"),
        until: this.now() + SECRET_CACHE_MS,
      };
      this.#strays.set(id, stray);
    }
    return this.#withSecret(
      { status: "ok", generation: row?.generation ?? 0 },
      r,
      row ? row.secret : stray!.secret,
    );
  }

  /**
   * An accepted heartbeat: applied unless the workspace was removed (the
   * update skips removed rows), extending the liveness key only while it
   * exists, filling a missing card from its `agent_card` (which also clears
   * the register-failure marker), and moving the status as the platform's
   * `evaluateStatus` does from the status it read first: `online` turns
   * `degraded` when wedged, at `error_rate` >= 0.5, or within 5 minutes of
   * a failed register; `degraded` turns `online` at `error_rate` < 0.1 with
   * an empty `runtime_state` and no failed register in 5 minutes;
   * `awaiting_agent` (and a new or resumed workspace) turns `online`.
   */
  #update(row: Row, body: Record<string, unknown>): void {
    const current = this.status(row);
    if (row.deleted) return;
    const now = this.now();
    row.heartbeats++;
    row.lastHeartbeat = body;
    row.lastHeartbeatAt = now;
    if (row.keyExpiresAt !== undefined) {
      row.keyExpiresAt = now + this.#staleAfterMs;
    }
    if (body.agent_card !== undefined) { // any JSON, null included
      if (row.agentCard === undefined) row.agentCard = body.agent_card;
      row.lastRegisterFailureAt = undefined;
    }
    if (row.paused) return;
    // The update's inline CASE: provisioning (a resumed or new workspace)
    // is online before the status is evaluated.
    const from = row.provisioning || current === "never-seen"
      ? "online"
      : current;
    row.provisioning = false;
    const errorRate = typeof body.error_rate === "number" ? body.error_rate : 0;
    const runtimeState = typeof body.runtime_state === "string"
      ? body.runtime_state
      : "";
    const sample = typeof body.sample_error === "string"
      ? body.sample_error
      : "";
    const failedRecently = row.lastRegisterFailureAt !== undefined &&
      now - row.lastRegisterFailureAt < FAILED_REGISTER_HOLD_MS;
    if (from === "online") {
      row.status = "online";
      row.banner = undefined;
      // Each branch broadcasts WORKSPACE_DEGRADED; the last one's text stays.
      if (runtimeState === "wedged") row.banner = sample;
      if (errorRate >= 0.5) row.banner = sample;
      if (failedRecently) row.banner = REGISTER_FAILED_BANNER;
      if (row.banner !== undefined) row.status = "degraded";
    } else if (from === "degraded") {
      if (errorRate < 0.1 && runtimeState === "" && !failedRecently) {
        row.status = "online";
        row.banner = undefined;
      }
    } else {
      row.status = "online";
      row.banner = undefined;
    }
  }

  /**
   * GET /workspaces/:id/state. The middleware lets through the admin token,
   * or a live token of this very id (of a workspace not removed); the
   * handler then wants a workspace token wherever one is live (so the admin
   * token only reads a workspace with none), and its query of the tokens
   * fails on a non-UUID id (500 `auth check failed`). No row, or a removed
   * one: 404 with `deleted: true`.
   */
  #state(r: RouteRequest, row: Row | undefined): Answer {
    const id = r.workspaceId ?? "";
    if (this.#o.adminToken === undefined || r.bearer !== this.#o.adminToken) {
      const auth = this.#auth(row, id, r.bearer, r.blip, true);
      if (auth !== "ok") return refusal(auth);
    } else if (this.#badId(id)) return error(500, "auth check failed");
    else if (row?.live.size) return refusal("invalid");
    r.authorized = true;
    if (!row || row.deleted) {
      const soft = row ? { status: "removed" } : {};
      return {
        status: 404,
        body: { workspace_id: id, ...soft, deleted: true },
      };
    }
    return {
      status: 200,
      body: {
        workspace_id: id,
        status: this.#shown(row),
        paused: row.paused,
        deleted: false,
      },
    };
  }

  /**
   * GET /workspaces/:id: open. 400 for a non-UUID id, 404 when there is no
   * row (never made, or purged), 410 when soft-deleted (`removed_at` may be
   * `null`; `?include_removed=true` answers 200 instead), else 200 with the
   * workspace; in `acceptUnknown` mode, an id not yet heard from is
   * `awaiting_agent`.
   */
  #workspace(r: RouteRequest, row: Row | undefined): Answer {
    const id = r.workspaceId ?? "";
    if (this.#badId(id)) return error(400, "invalid workspace ID");
    if (!row && !(this.#acceptUnknown && !this.rows.has(this.key(id)))) {
      return error(404, "workspace not found");
    }
    if (row) r.authorized = true;
    if (row?.deleted === "soft" && r.search.get("include_removed") !== "true") {
      return {
        status: 410,
        body: {
          error: "workspace removed",
          id,
          removed_at: row.deletedAt ?? null,
          hint:
            "Create a replacement workspace in Canvas, then open Settings → Workspace Tokens → + New Token",
        },
      };
    }
    return {
      status: 200,
      body: {
        id: row?.id ?? id,
        name: row?.id ?? id,
        status: row ? this.#shown(row) : "awaiting_agent",
        delivery_mode: row?.deliveryMode ?? "push",
        agent_card: row?.agentCard ?? null,
      },
    };
  }

  /** The `status` the platform's answers show. */
  #shown(row: Row): string {
    const status = this.status(row);
    if (row.provisioning) return "provisioning";
    return status === "never-seen" ? "awaiting_agent" : status;
  }

  /** The platform's status now (the health sweep and the key applied). */
  status(row: Row): EmulatedWorkspace["status"] {
    this.#expire(row);
    if (row.deleted) return "removed";
    if (row.paused) return "paused";
    if (row.status === "never-seen") return "never-seen";
    const last = row.lastHeartbeatAt;
    if (last !== undefined && this.now() - last > this.#staleAfterMs) {
      return "awaiting_agent";
    }
    return row.status;
  }

  /** The key expired since last looked at: `awaiting_agent`, once. */
  #expire(row: Row): void {
    if (row.keyExpiresAt === undefined || this.now() < row.keyExpiresAt) {
      return;
    }
    row.keyExpiresAt = undefined;
    row.livenessExpiries++;
    if (!row.deleted && !row.paused) row.status = "awaiting_agent";
  }

  /** A credential rotation: the known tokens stop, a stand-in is live. */
  revoke(row: Row): void {
    row.revokedTokens.push(...row.live);
    row.live.clear();
    row.rotated = `rotated-${crypto.randomUUID()}`;
    row.live.add(row.rotated);
    row.revoked = true;
  }

  /** A cleanup: every token revoked, none live. */
  revokeAll(row: Row): void {
    row.revokedTokens.push(...row.live);
    if (row.rotated) {
      row.revokedTokens.splice(row.revokedTokens.indexOf(row.rotated), 1);
    }
    row.rotated = undefined;
    row.live.clear();
    row.revoked = true;
  }

  /** Gives back the tokens revoke or revokeAll took. */
  restore(row: Row): void {
    if (row.rotated) row.live.delete(row.rotated);
    row.rotated = undefined;
    for (const token of row.revokedTokens) row.live.add(token);
    row.revokedTokens = [];
    row.revoked = false;
  }

  /** Deletion: soft (removed) or hard (purged); every token revoked. */
  remove(
    row: Row,
    how: "hard" | "soft",
    removedAt: string | null = new Date().toISOString(),
  ): void {
    row.deleted = how;
    row.deletedAt = removedAt;
    row.revokedTokens.push(...row.live);
    row.live.clear();
    row.keyExpiresAt = undefined;
  }

  /** Resumed by an operator: `provisioning` until its next heartbeat. */
  resume(row: Row): void {
    row.paused = false;
    row.provisioning = true;
  }

  /** A copy for callers. */
  view(row: Row): EmulatedWorkspace {
    const status = this.status(row);
    const {
      live,
      revokedTokens: _revoked,
      rotated: _rotated,
      provisioning: _provisioning,
      keyExpiresAt,
      ...shown
    } = row;
    return {
      ...shown,
      liveTokens: [...live],
      minted: [...row.minted],
      status,
      banner: status === "degraded" ? row.banner : undefined,
      livenessKey: keyExpiresAt !== undefined,
    };
  }
}
