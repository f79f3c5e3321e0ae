/**
 * A Molecule platform emulator to test agents against: the registry
 * endpoints of today's platform on a real HTTP server on loopback, with
 * fault injection. Runs on Node and on Deno.
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
export {
  type EmulatedWorkspace,
  type Fault,
  type FaultScope,
  type PlatformEmulator,
  type PlatformEmulatorOptions,
  type RequestRecord,
  startPlatformEmulator,
} from "./emulator.ts";
