/**
 * A Molecule platform emulator to test agents against: today's registry
 * endpoints (register, heartbeat, `/workspaces/:id/state`,
 * `/workspaces/:id`) on a real HTTP server on loopback, with the platform's
 * rules: its CORS layer (an `Origin` that does not match the `Host` it sees
 * is 403 with an empty body), UUID workspace ids, token rules (an
 * `auth_token` minted when no token is live, even a dead one for a removed
 * workspace; a deleted workspace's heartbeats answered 200), the upsert
 * that creates a workspace for an unknown id, the register-failure marker
 * that degrades a workspace, its tenant guard and fixed-window rate
 * limiter, the Redis liveness key, and fault injection (401 blips of the
 * token check included). Runs on Node and on Deno. Beside it, the
 * {@link Clock} that `startHeartbeat`'s `clock` option takes (a fake one
 * drives a schedule without waiting), and {@link systemClock}, the real one.
 *
 * @example Test an agent against a failing platform
 * ```ts
 * import { startPlatformEmulator } from "@molecule/heartbeat/testing";
 * const id = "6f1c0a4e-2b7d-4c1e-9a55-3d2f8e7b9c01";
 * const platform = await startPlatformEmulator({ workspaces: { [id]: "t" } });
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
export { type Clock, systemClock } from "../shared/clock.ts";
