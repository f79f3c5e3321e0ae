/**
 * A Molecule platform emulator to test agents against: today's registry
 * endpoints (register, heartbeat, `/workspaces/:id/state`,
 * `/workspaces/:id`) on a real HTTP server on loopback, with the platform's
 * token rules (an `auth_token` minted when no token is live; a deleted
 * workspace's heartbeats answered 200), its tenant guard and rate limiter,
 * the Redis liveness key, and fault injection. Runs on Node and on Deno.
 *
 * @example Test an agent against a failing platform
 * ```ts
 * import { startPlatformEmulator } from "@molecule/heartbeat/testing";
 * const platform = await startPlatformEmulator({ workspaces: { "ws-1": "t" } });
 * platform.fail({ kind: "status", status: 503 }, { path: "heartbeat", times: 2 });
 * // ... run the agent against platform.url ...
 * await platform.close();
 * ```
 *
 * @module
 */
export { startPlatformEmulator } from "./emulator.ts";
export type {
  EmulatedPath,
  EmulatedWorkspace,
  Fault,
  FaultScope,
  PlatformEmulator,
  PlatformEmulatorOptions,
  RequestRecord,
} from "./types.ts";
