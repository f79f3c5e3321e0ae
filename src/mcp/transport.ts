/**
 * Embeds the heartbeat's live figures in an MCP server built with the
 * official SDK: a transport whose traffic feeds an {@link McpTracker}.
 *
 * @module
 */
import type { McpTracker } from "./tracker.ts";

/**
 * The part of an MCP SDK `Transport` (`@modelcontextprotocol/sdk`) that
 * {@link trackTransport} uses: any transport of the SDK fits.
 */
export interface TransportLike {
  /** Called by the transport with each message received. */
  onmessage?: (...args: never[]) => void;
  /** Sends a message. */
  send(...args: never[]): Promise<void>;
}

/**
 * Makes a server-side MCP transport report its traffic to a tracker:
 * messages it receives are the client's, messages sent through it the
 * server's. Call it before `server.connect(transport)`; the transport is
 * returned, changed in place. The tracker never sees a message after the
 * server does, and an error in it never reaches the server.
 *
 * @example An SDK server that heartbeats with its live work
 * ```ts ignore
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
 * import { createMcpTracker, startHeartbeat, trackTransport } from "@molecule/heartbeat";
 *
 * const tracker = createMcpTracker();
 * const server = new McpServer({ name: "my-tools", version: "1.0.0" });
 * // ... server.registerTool(...) ...
 * await server.connect(trackTransport(new StdioServerTransport(), tracker));
 * // The client gone (stdin at its end): stop beating, so the process ends.
 * const clientGone = new AbortController();
 * process.stdin.once("end", () => clientGone.abort());
 * startHeartbeat({
 *   platformUrl: Deno.env.get("PLATFORM_URL")!,
 *   workspaces: [{ id: Deno.env.get("WORKSPACE_ID")!, token: Deno.env.get("MOLECULE_WORKSPACE_TOKEN")! }],
 *   stats: () => tracker.stats(),
 *   signal: clientGone.signal,
 * });
 * ```
 *
 * @example The same with a stand-in transport
 * ```ts
 * import { createMcpTracker, trackTransport } from "@molecule/heartbeat";
 * const tracker = createMcpTracker();
 * const transport = trackTransport({
 *   onmessage: undefined as ((m: unknown) => void) | undefined,
 *   send: (_m: unknown) => Promise.resolve(),
 * }, tracker);
 * transport.onmessage = () => {};
 * transport.onmessage({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo" } });
 * console.log(tracker.stats().current_task); // "echo"
 * await transport.send({ jsonrpc: "2.0", id: 1, result: { content: [] } });
 * console.log(tracker.stats().active_tasks); // 0
 * ```
 *
 * @param transport The server's transport, not yet connected.
 * @param tracker Where the figures are kept.
 * @returns The same transport.
 */
export function trackTransport<T extends TransportLike>(
  transport: T,
  tracker: McpTracker,
): T {
  const target = transport as unknown as {
    onmessage?: (message: unknown, ...rest: unknown[]) => void;
    send(message: unknown, ...rest: unknown[]): Promise<void>;
  };
  const send = target.send.bind(target);
  target.send = (message, ...rest) => {
    try {
      tracker.fromServer(message);
    } catch {
      // never in the server's way
    }
    return send(message, ...rest);
  };
  let handler = target.onmessage;
  const wrapped = (message: unknown, ...rest: unknown[]) => {
    try {
      tracker.fromClient(message);
    } catch {
      // never in the server's way
    }
    handler?.(message, ...rest);
  };
  Object.defineProperty(target, "onmessage", {
    configurable: true,
    enumerable: true,
    get: () => handler === undefined ? undefined : wrapped,
    set: (fn) => handler = fn,
  });
  return transport;
}
