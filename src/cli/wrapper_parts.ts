/**
 * What wrapper mode (`-- <server command>`) needs beyond a plain run, in one
 * module that `main.ts` loads only for a wrapped run: the MCP tracker and
 * stream tap, the server's environment, starting the child, and the run
 * that follows it.
 *
 * @module
 */
export { createMcpTracker } from "../mcp/tracker.ts";
export { createMcpStreamTap } from "../mcp/stream_tap.ts";
export { childEnvironment } from "./child_env.ts";
export { runWrapped, startWrapped } from "./wrap.ts";
