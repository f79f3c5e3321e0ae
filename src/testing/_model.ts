/**
 * The emulator's workspaces (internal): tokens, status, the Redis liveness
 * key, as today's platform keeps them. The one owner of that state; the
 * routes ask it and tell it.
 *
 * @module
 */
import { isRecord } from "../shared/_json.ts";
import type { EmulatedWorkspace } from "./types.ts";

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
  url: string;
  /** Resumed and not yet heard from. */
  provisioning: boolean;
  /** When the liveness key expires; undefined when there is none. */
  keyExpiresAt: number | undefined;
}

/** How long the register-failure marker degrades a workspace, in ms. */
const FAILED_REGISTER_HOLD_MS = 5 * 60_000;

/** The banner of a workspace the register-failure marker degraded. */
export const REGISTER_FAILED_BANNER =
  "Register failed — workspace auth token may be stale. Restart or reprovision to recover.";

/** Asked at a token check: whether a database blip (an injected `auth-blip`) fails it. */
export type BlipCheck = () => boolean;

/** The model's settings. */
export interface ModelOptions {
  now: () => number;
  staleAfterMs: number;
  secretFor: (id: string) => string | undefined;
  mintToken: (id: string, n: number) => string;
}

/** Every workspace the emulator knows, and the platform's rules over them. */
export class Model {
  readonly rows: Map<string, Row> = new Map();
  /** Ids a register inserted (the upsert of an id with no row). */
  readonly created: string[] = [];
  #o: ModelOptions;

  constructor(options: ModelOptions) {
    this.#o = options;
  }

  /**
   * The workspace's row, unless there is none: never made, or purged (a
   * hard-deleted row is kept only to be looked at).
   */
  row(id: string | undefined): Row | undefined {
    const row = id === undefined ? undefined : this.rows.get(id);
    return row && row.deleted !== "hard" ? row : undefined;
  }

  /**
   * The upsert's INSERT: a register of an id with no row makes an `online`
   * workspace named after it, with no token (so the register mints one).
   * Replaces a purged row of that id.
   */
  insert(id: string): Row {
    this.rows.delete(id);
    const row = this.set(id, null);
    this.created.push(id);
    return row;
  }

  /** Adds a workspace with its live token (none for `null`), or replaces its tokens. */
  set(id: string, token: string | null): Row {
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
      url: "",
      mcpServerPresent: undefined,
      lastHeartbeat: undefined,
      lastHeartbeatAt: undefined,
      secret: this.#o.secretFor(id),
      paused: false,
      provisioning: false,
      deleted: undefined,
      deletedAt: undefined,
      keyExpiresAt: undefined,
      livenessExpiries: 0,
      registersAfterGap: 0,
      lastRegisterFailureAt: undefined,
      banner: undefined,
      generation: 1,
    };
    this.rows.set(id, row);
    return row;
  }

  /**
   * The token check. The registry calls' (`requireWorkspaceToken`): a
   * workspace with no live token is let through whatever the bearer;
   * otherwise the bearer must be one of its live tokens, checked against
   * the database (`blip` says whether a database blip turns the check into
   * "invalid"), and no token of a removed workspace is ever valid.
   * `/state`'s (`strict`): a bearer that is a live token of a workspace
   * that is not removed (or the admin token, checked by the caller).
   */
  auth(
    row: Row | undefined,
    bearer: string | undefined,
    blip?: BlipCheck,
    strict = false,
  ): "ok" | "missing" | "invalid" {
    if (!strict && row?.live.size === 0) return "ok";
    if (bearer === undefined) return "missing";
    if (blip?.()) return "invalid";
    return row && !row.deleted && row.live.has(bearer) ? "ok" : "invalid";
  }

  /**
   * An accepted register. The upsert skips a paused or removed row (it
   * answers 200 and leaves the row alone); otherwise it refreshes the card,
   * URL and delivery mode and sets `online` (from any status). Either way
   * it sets the liveness key, clears the register-failure marker, and
   * mints a token when none is live (a dead one for a removed workspace).
   * Returns the minted token, if any.
   */
  register(row: Row, body: Record<string, unknown>): string | undefined {
    this.#expire(row);
    row.registers++;
    row.lastRegisterFailureAt = undefined;
    if (!row.deleted && !row.paused) {
      const card = JSON.stringify(body.agent_card);
      if (
        row.agentCard !== undefined && card !== JSON.stringify(row.agentCard)
      ) {
        row.generation++;
      }
      row.agentCard = body.agent_card;
      row.url = typeof body.url === "string" ? body.url : "";
      row.deliveryMode = typeof body.delivery_mode === "string"
        ? body.delivery_mode
        : row.deliveryMode ?? "push";
      if (typeof body.mcp_server_present === "boolean") {
        row.mcpServerPresent = body.mcp_server_present;
      }
      row.status = "online";
      row.provisioning = false;
      row.banner = undefined;
    }
    const now = this.#o.now();
    if (row.keyExpiresAt === undefined && row.registers > 1) {
      row.registersAfterGap++;
    }
    row.keyExpiresAt = now + this.#o.staleAfterMs;
    if (row.live.size > 0) return undefined;
    const token = this.#o.mintToken(row.id, row.minted.length + 1);
    row.minted.push(token);
    row.live.add(token);
    if (!row.token) row.token = token;
    return token;
  }

  /** A register answered non-200 after its bearer was accepted: the marker. */
  registerFailed(row: Row): void {
    row.lastRegisterFailureAt = this.#o.now();
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
  heartbeat(row: Row, body: Record<string, unknown>): void {
    const current = this.status(row);
    if (row.deleted) return;
    const now = this.#o.now();
    row.heartbeats++;
    row.lastHeartbeat = body;
    row.lastHeartbeatAt = now;
    if (row.keyExpiresAt !== undefined) {
      row.keyExpiresAt = now + this.#o.staleAfterMs;
    }
    const card = body.agent_card;
    if (isRecord(card)) {
      if (row.agentCard === undefined) row.agentCard = card;
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

  /** The platform's status now (the health sweep and the key applied). */
  status(row: Row): EmulatedWorkspace["status"] {
    this.#expire(row);
    if (row.deleted) return "removed";
    if (row.paused) return "paused";
    if (row.status === "never-seen") return "never-seen";
    const last = row.lastHeartbeatAt;
    if (last !== undefined && this.#o.now() - last > this.#o.staleAfterMs) {
      return "awaiting_agent";
    }
    return row.status;
  }

  /** The key expired since last looked at: `awaiting_agent`, once. */
  #expire(row: Row): void {
    if (row.keyExpiresAt === undefined || this.#o.now() < row.keyExpiresAt) {
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
      url: _url,
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
