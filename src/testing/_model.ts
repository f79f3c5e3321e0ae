/**
 * The emulator's workspaces (internal): tokens, status, the Redis liveness
 * key, as today's platform keeps them. The one owner of that state; the
 * routes ask it and tell it.
 *
 * @module
 */
import type { EmulatedWorkspace } from "./types.ts";

/** A workspace as the emulator keeps it. */
export interface Row {
  id: string;
  /** The first token it was given, or the first minted. */
  token: string;
  live: Set<string>;
  /** Tokens taken by revoke/revokeAll, given back by restore. */
  revokedTokens: string[];
  /** The stand-in token a rotation made live (the agent does not know it). */
  rotated: string | undefined;
  minted: string[];
  revoked: boolean;
  status: "online" | "degraded" | "awaiting_agent" | "never-seen";
  registers: number;
  heartbeats: number;
  agentCard: unknown;
  deliveryMode: string | undefined;
  url: string;
  mcpServerPresent: boolean | undefined;
  lastHeartbeat: Record<string, unknown> | undefined;
  lastHeartbeatAt: number | undefined;
  secret: string | undefined;
  paused: boolean;
  /** Resumed and not yet heard from. */
  provisioning: boolean;
  deleted: "hard" | "soft" | undefined;
  deletedAt: string | undefined;
  /** When the liveness key expires; undefined when there is none. */
  keyExpiresAt: number | undefined;
  livenessExpiries: number;
  registersAfterGap: number;
  /** When a register last failed (4xx/5xx), for the way back to online. */
  failedRegisterAt: number | undefined;
  generation: number;
}

/** How long a failed register keeps a degraded workspace degraded, in ms. */
const FAILED_REGISTER_HOLD_MS = 5 * 60_000;

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
  #o: ModelOptions;

  constructor(options: ModelOptions) {
    this.#o = options;
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
      failedRegisterAt: undefined,
      generation: 1,
    };
    this.rows.set(id, row);
    return row;
  }

  /**
   * The registry calls' auth (`wsauth` with its let-through): a workspace
   * with no live token is let through whatever the bearer; otherwise the
   * bearer must be one of its live tokens.
   */
  registryAuth(
    row: Row,
    bearer: string | undefined,
  ): "ok" | "missing" | "invalid" {
    if (row.live.size === 0) return "ok";
    if (bearer === undefined) return "missing";
    return row.live.has(bearer) ? "ok" : "invalid";
  }

  /**
   * `/state`'s strict auth: a bearer that is a live token of a workspace
   * that is not removed (or the admin token).
   */
  strictAuth(
    row: Row | undefined,
    bearer: string | undefined,
  ): "ok" | "missing" | "invalid" {
    if (bearer === undefined) return "missing";
    if (!row || row.deleted) return "invalid";
    return row.live.has(bearer) ? "ok" : "invalid";
  }

  /**
   * An accepted register: the upsert (a paused or removed workspace answers
   * 200 and changes nothing), the liveness key set, and a token minted when
   * none is live. Returns the minted token, if any.
   */
  register(row: Row, body: Record<string, unknown>): string | undefined {
    this.#expire(row);
    row.registers++;
    if (row.deleted || row.paused) return undefined;
    const card = JSON.stringify(body.agent_card);
    if (row.agentCard !== undefined && card !== JSON.stringify(row.agentCard)) {
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
    const now = this.#o.now();
    if (row.keyExpiresAt === undefined && row.registers > 1) {
      row.registersAfterGap++;
    }
    row.keyExpiresAt = now + this.#o.staleAfterMs;
    if (row.status === "never-seen" || row.status === "awaiting_agent") {
      row.status = "online";
    }
    if (row.live.size > 0) return undefined;
    const token = this.#o.mintToken(row.id, row.minted.length + 1);
    row.minted.push(token);
    row.live.add(token);
    if (!row.token) row.token = token;
    return token;
  }

  /** A register refused for its content (4xx) or failing (5xx). */
  registerFailed(row: Row): void {
    row.failedRegisterAt = this.#o.now();
  }

  /**
   * An accepted heartbeat: applied unless the workspace was removed (the
   * update skips removed rows), extending the liveness key only while it
   * exists, and moving the status as the platform does.
   */
  heartbeat(row: Row, body: Record<string, unknown>): void {
    this.#expire(row);
    if (row.deleted) return;
    const now = this.#o.now();
    row.heartbeats++;
    row.lastHeartbeat = body;
    row.lastHeartbeatAt = now;
    if (row.keyExpiresAt !== undefined) {
      row.keyExpiresAt = now + this.#o.staleAfterMs;
    }
    if (row.paused) return;
    row.provisioning = false;
    const errorRate = typeof body.error_rate === "number" ? body.error_rate : 0;
    const wedged = body.runtime_state === "wedged";
    if (row.status !== "degraded") {
      row.status = errorRate >= 0.5 || wedged ? "degraded" : "online";
    } else if (
      errorRate < 0.1 && (body.runtime_state ?? "") === "" &&
      (row.failedRegisterAt === undefined ||
        now - row.failedRegisterAt > FAILED_REGISTER_HOLD_MS)
    ) row.status = "online";
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
  remove(row: Row, how: "hard" | "soft"): void {
    row.deleted = how;
    row.deletedAt = new Date().toISOString();
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
    return {
      id: row.id,
      token: row.token,
      liveTokens: [...row.live],
      minted: [...row.minted],
      status,
      revoked: row.revoked,
      registers: row.registers,
      heartbeats: row.heartbeats,
      agentCard: row.agentCard,
      deliveryMode: row.deliveryMode,
      mcpServerPresent: row.mcpServerPresent,
      lastHeartbeat: row.lastHeartbeat,
      lastHeartbeatAt: row.lastHeartbeatAt,
      secret: row.secret,
      paused: row.paused,
      deleted: row.deleted,
      deletedAt: row.deletedAt,
      livenessKey: row.keyExpiresAt !== undefined,
      livenessExpiries: row.livenessExpiries,
      registersAfterGap: row.registersAfterGap,
      generation: row.generation,
    };
  }
}
