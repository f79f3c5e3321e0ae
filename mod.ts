/**
 * # @molecule/heartbeat
 *
 * Keeps external agent workspaces alive on a Molecule platform: registers
 * each workspace, then heartbeats it every 20 seconds on a fixed-rate
 * schedule, with backoff on failures, the reference client's auth-failure
 * escalation, and inbound-secret persistence. Runs on Deno, Node and any
 * runtime with `fetch`.
 *
 * Run as the main module (`deno run -A --no-config jsr:@molecule/heartbeat`), this
 * module starts the command and exits with its code; imported, it starts
 * nothing.
 *
 * The API, by what it is for:
 *
 * - keep workspaces alive: {@link startHeartbeat} and its
 *   {@link HeartbeatHandle} (status, events, add and remove workspaces);
 * - where the inbound secret and issued tokens go: {@link SecretStore},
 *   {@link MemorySecretStore}, {@link FileSecretStore}, in the configs dir
 *   {@link resolveConfigsDir} finds;
 * - beside an MCP server: {@link createMcpTracker},
 *   {@link createMcpStreamTap}, {@link trackTransport};
 * - one masking path for every text: {@link maskSecrets};
 * - errors: {@link HeartbeatError}, the base of the library's own errors
 *   (a wrong argument is a `TypeError`).
 *
 * `@molecule/heartbeat/platform` makes one request at a time (register,
 * a heartbeat, the state and lookup questions, the agent card);
 * `@molecule/heartbeat/testing` is a platform emulator to test against;
 * `@molecule/heartbeat/cli` the command as a function.
 *
 * @example Keep one workspace alive until aborted
 * ```ts
 * import { startHeartbeat } from "@molecule/heartbeat";
 * const controller = new AbortController();
 * const hb = startHeartbeat({
 *   platformUrl: "http://127.0.0.1:8080",
 *   workspaces: [{ id: "ws-1", token: "t" }],
 *   signal: controller.signal,
 * });
 * controller.abort();
 * await hb.stopped;
 * ```
 *
 * @module
 */

// Keep workspaces alive.
export {
  HeartbeatHandle,
  startHeartbeat,
} from "./src/schedule/start_heartbeat.ts";
export type {
  BeatFailureReason,
  HeartbeatEventMap,
  HeartbeatMetrics,
  HeartbeatOptions,
  HeartbeatStatus,
  ReadyResult,
  WorkspaceConfig,
  WorkspacePhase,
  WorkspaceStatus,
} from "./src/schedule/types.ts";
export type { HeartbeatStats } from "./src/platform/heartbeat.ts";
export type { TokenSource } from "./src/shared/token.ts";

// Where the inbound secret and issued tokens go.
export {
  MemorySecretStore,
  type SecretKind,
  type SecretStore,
} from "./src/storage/secret_store.ts";
export {
  FileSecretStore,
  type FileSecretStoreOptions,
} from "./src/storage/file_secret_store.ts";
export {
  type ConfigsDir,
  resolveConfigsDir,
  type ResolveConfigsDirOptions,
} from "./src/storage/configs_dir.ts";

// Beside an MCP server.
export {
  createMcpTracker,
  type McpTracker,
  type McpTrackerOptions,
  type McpWorkStats,
} from "./src/mcp/tracker.ts";
export {
  createMcpStreamTap,
  type McpStreamTap,
  type McpStreamTapOptions,
} from "./src/mcp/stream_tap.ts";
export { trackTransport, type TransportLike } from "./src/mcp/transport.ts";

// Masking, errors, constants.
export { maskSecrets, REDACTED } from "./src/shared/mask.ts";
export { HeartbeatError } from "./src/shared/errors.ts";
export {
  HEARTBEAT_INTERVAL_MS,
  LOG_CATEGORY,
  REQUEST_TIMEOUT_MS,
  STALE_AFTER_MS,
} from "./src/shared/constants.ts";
export { VERSION } from "./src/shared/version.ts";

if (import.meta.main) {
  const { runAsMain } = await import("./src/cli/main.ts");
  await runAsMain();
}
