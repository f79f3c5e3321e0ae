/**
 * # @molecule/heartbeat
 *
 * Keeps external agent workspaces alive on a Molecule platform: registers
 * each workspace once, then heartbeats it every 20 seconds on a fixed-rate
 * schedule, with backoff on failures, the reference client's auth-failure
 * escalation, and inbound-secret persistence. Runs on Deno, Node and any
 * runtime with `fetch`.
 *
 * Run as the main module (`deno run -A jsr:@molecule/heartbeat`), this
 * module starts the command; imported, it starts nothing.
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
export * from "./src/constants.ts";
export * from "./src/errors.ts";
export * from "./src/env.ts";
export * from "./src/agent_card.ts";
export * from "./src/token.ts";
export * from "./src/backoff.ts";
export * from "./src/retry_after.ts";
export * from "./src/auth_escalation.ts";
export * from "./src/schedule.ts";
export * from "./src/clock.ts";
export * from "./src/timer_queue.ts";
export * from "./src/limiter.ts";
export * from "./src/http.ts";
export * from "./src/outcome.ts";
export * from "./src/register.ts";
export * from "./src/heartbeat.ts";
export * from "./src/secret.ts";
export * from "./src/file_system.ts";
export * from "./src/file_secret_store.ts";
export * from "./src/configs_dir.ts";
export * from "./src/start_heartbeat.ts";
export * from "./src/watched_file.ts";
export * from "./src/mcp_tracker.ts";
export * from "./src/mcp_stream_tap.ts";
export * from "./src/mcp_transport.ts";
export * from "./src/workspace_state.ts";
export * from "./src/mask.ts";
export * from "./src/workspace_id.ts";
export * from "./src/trouble_log.ts";
export * from "./src/retry_budget.ts";
export * from "./src/shared_deadline.ts";
export * from "./src/version.ts";

if (import.meta.main) {
  const { main } = await import("./cli.ts");
  await main();
}
