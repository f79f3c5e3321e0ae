// The official MCP SDK, for tests. Its package.json maps the types of
// "./*" to "<file>.js.d.ts", which does not exist, so Deno's type checker
// cannot find them for subpaths such as client/stdio.js (Node and Deno load
// the modules fine). The ignores below only silence that lookup.

// @ts-ignore: the SDK's subpath types do not resolve (see above)
export { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
// @ts-ignore: the SDK's subpath types do not resolve (see above)
export { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-ignore: the SDK's subpath types do not resolve (see above)
export { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
export { Client } from "@modelcontextprotocol/sdk/client";
