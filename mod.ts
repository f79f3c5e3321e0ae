/**
 * # @molecule/heartbeat
 *
 * Keeps external agent workspaces alive on a Molecule platform: registers
 * each workspace, then heartbeats it every 20 seconds on a fixed-rate
 * schedule, with backoff on failures, the reference client's auth-failure
 * escalation, and inbound-secret persistence. Runs on Deno, Node and any
 * runtime with `fetch`.
 *
 * Run as the main module (`deno run -A jsr:@molecule/heartbeat`), this
 * module starts the command and exits with its code; imported, it starts
 * nothing.
 *
 * The API, by what it is for:
 *
 * - keep workspaces alive: {@link startHeartbeat} and its
 *   {@link HeartbeatHandle} (status, events, add and remove workspaces);
 * - one request at a time: {@link register}, {@link sendHeartbeat},
 *   {@link fetchWorkspaceState}, {@link lookupWorkspace};
 * - where secrets and issued tokens go: {@link SecretStore},
 *   {@link MemorySecretStore}, {@link FileSecretStore}, {@link TokenStore},
 *   {@link MemoryTokenStore}, {@link FileTokenStore},
 *   {@link resolveConfigsDir}, and the {@link FileSystem} adapters;
 * - beside an MCP server: {@link createMcpTracker},
 *   {@link createMcpStreamTap}, {@link trackTransport};
 * - one masking path for every text: {@link maskSecrets};
 * - errors: {@link HeartbeatError} and its subclasses.
 *
 * `@molecule/heartbeat/testing` is a platform emulator to test against;
 * `@molecule/heartbeat/node` the `node:fs` file adapter;
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
  WorkspaceLifeState,
  WorkspaceStatus,
} from "./src/schedule/types.ts";

// The platform's endpoints, one request at a time.
export {
  register,
  type RegisterOptions,
  type RegisterResult,
} from "./src/platform/register.ts";
export {
  buildHeartbeatBody,
  type HeartbeatBody,
  type HeartbeatResult,
  type HeartbeatStats,
  sendHeartbeat,
  type SendHeartbeatOptions,
} from "./src/platform/heartbeat.ts";
export {
  fetchWorkspaceState,
  type FetchWorkspaceStateOptions,
  type WorkspaceState,
  type WorkspaceStateKind,
} from "./src/platform/workspace_state.ts";
export {
  lookupWorkspace,
  type LookupWorkspaceOptions,
  type WorkspaceLookup,
  type WorkspaceLookupKind,
} from "./src/platform/workspace_lookup.ts";
export type { Outcome, OutcomeKind } from "./src/platform/outcome.ts";
export type { FetchLike, PlatformAnswer } from "./src/platform/http.ts";
export {
  type AgentCard,
  type AgentSkill,
  buildAgentCard,
} from "./src/platform/agent_card.ts";
export { isValidToken, type TokenSource } from "./src/shared/token.ts";

// Where secrets go.
export {
  MemorySecretStore,
  type SecretStore,
} from "./src/storage/secret_store.ts";
export {
  FileSecretStore,
  type FileSecretStoreOptions,
} from "./src/storage/file_secret_store.ts";
export {
  MemoryTokenStore,
  type TokenStore,
} from "./src/storage/token_store.ts";
export {
  FileTokenStore,
  type FileTokenStoreOptions,
} from "./src/storage/file_token_store.ts";
export {
  type ConfigsDir,
  resolveConfigsDir,
  type ResolveConfigsDirOptions,
} from "./src/storage/configs_dir.ts";
export type {
  FileInfo,
  FileSystem,
  ReadTextOptions,
} from "./src/storage/file_system.ts";
export { createDenoFileSystem } from "./src/storage/file_system_deno.ts";
export { defaultFileSystem } from "./src/storage/default_file_system.ts";
export {
  fileToken,
  type WatchedFile,
  watchFile,
  type WatchFileOptions,
} from "./src/storage/watched_file.ts";

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

// Masking, errors, environment, time, constants.
export { maskSecrets, REDACTED } from "./src/shared/mask.ts";
export {
  ConfigError,
  HeartbeatError,
  InvalidTokenError,
  RegisterAuthError,
} from "./src/shared/errors.ts";
export { FileReadError } from "./src/storage/file_system.ts";
export { envFromRecord, type EnvReader, processEnv } from "./src/shared/env.ts";
export { type Clock, systemClock } from "./src/shared/clock.ts";
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
