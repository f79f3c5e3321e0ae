// The wrapper as an MCP client meets it: the official SDK client spawning
// `molecule-heartbeat -- <server>` with a real MCP server from npm
// (@modelcontextprotocol/server-everything), against the platform emulator.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  Client,
  InMemoryTransport,
  McpServer,
  StdioClientTransport,
} from "./helpers/mcp_sdk.ts";
import { createMcpTracker, startHeartbeat, trackTransport } from "../mod.ts";
import {
  type PlatformEmulator,
  startPlatformEmulator,
} from "../src/testing/emulator.ts";
import { nodeBin, passedEnv, runtimeArgs } from "./helpers/runtime.ts";
import { waitFor } from "./helpers/wait.ts";
import { scratch } from "./helpers/scratch.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const EVERYTHING = fileURLToPath(
  new URL(
    "../node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    import.meta.url,
  ),
);
const TOKEN = "sdk-token-0123456789";
const WS = "ws-mcp";

/** An SDK client connected to server-everything, wrapped or not. */
async function connect(
  options: { wrapped?: { platform: PlatformEmulator; dir: string } } = {},
): Promise<Client & AsyncDisposable> {
  const server = [nodeBin(), EVERYTHING, "stdio"];
  const [command, args] = options.wrapped
    ? runtimeArgs(MOD, ["--", ...server])
    : [server[0], server.slice(1)];
  const transport = new StdioClientTransport({
    command,
    args,
    env: {
      ...passedEnv(),
      HOME: process.env.HOME ?? "/tmp",
      ...(options.wrapped
        ? {
          PLATFORM_URL: options.wrapped.platform.url,
          WORKSPACE_ID: WS,
          MOLECULE_WORKSPACE_TOKEN: TOKEN,
          CONFIGS_DIR: options.wrapped.dir,
          MOLECULE_HEARTBEAT_INTERVAL: "0.2",
        }
        : {}),
    },
    stderr: "pipe",
  });
  const client = new Client({ name: "molecule-test", version: "1.0.0" });
  await client.connect(transport);
  return Object.assign(client, {
    [Symbol.asyncDispose]: () => client.close(),
  });
}

const lastBeat = (platform: PlatformEmulator) =>
  platform.workspace(WS)?.lastHeartbeat ?? {};

test("SDK client → wrapper → server-everything: same answers as direct, beats with live work, degraded and back, a 3 MiB message intact", async () => {
  await using dir = await scratch("molecule-mcp-");
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { [WS]: TOKEN },
  });
  await using direct = await connect();
  await using wrapped = await connect({ wrapped: { platform, dir: dir.path } });

  assert.deepEqual(await wrapped.listTools(), await direct.listTools());
  const echo = { name: "echo", arguments: { message: "hello ✓ \u2028 \\n" } };
  assert.deepEqual(await wrapped.callTool(echo), await direct.callTool(echo));
  await waitFor(
    () => (platform.workspace(WS)?.heartbeats ?? 0) >= 2,
    10_000,
    "beats beside the MCP traffic",
  );

  // A long-running tool shows as active work while it runs.
  const long = wrapped.callTool(
    {
      name: "trigger-long-running-operation",
      arguments: { duration: 2, steps: 4 },
    },
    undefined,
    { timeout: 30_000 },
  );
  await waitFor(
    () =>
      lastBeat(platform).active_tasks === 1 &&
      lastBeat(platform).current_task === "trigger-long-running-operation",
    10_000,
    "a beat reporting the long-running call",
  );
  await long;
  await waitFor(
    () =>
      lastBeat(platform).active_tasks === 0 &&
      lastBeat(platform).current_task === "",
    10_000,
    "a beat after the call ended",
  );

  // Failing calls raise the error rate past 0.5: the platform shows degraded.
  for (let i = 0; i < 3; i++) {
    const r = await wrapped.callTool({
      name: "get-sum",
      arguments: { a: "not a number", b: 1 },
    }).catch((e: Error) => ({ isError: true, thrown: e.message }));
    assert.equal((r as { isError?: boolean }).isError, true);
  }
  await waitFor(
    () => platform.workspace(WS)?.status === "degraded",
    10_000,
    "degraded after failures",
  );
  const failing = lastBeat(platform);
  assert.ok((failing.error_rate as number) >= 0.5, JSON.stringify(failing));
  assert.ok(
    typeof failing.sample_error === "string" &&
      failing.sample_error.length > 0 && failing.sample_error.length <= 200,
    JSON.stringify(failing),
  );

  // Good calls bring it back under 0.1.
  for (let i = 0; i < 40; i++) {
    await wrapped.callTool({ name: "get-sum", arguments: { a: i, b: 1 } });
  }
  await waitFor(
    () =>
      (lastBeat(platform).error_rate as number) < 0.1 &&
      platform.workspace(WS)?.status === "online",
    10_000,
    "online again after good calls",
  );

  // A multi-MiB message passes both ways intact.
  const big = {
    name: "echo",
    arguments: { message: "x".repeat(3 * 1024 * 1024 - 7) + "end✓" },
  };
  const [viaWrapper, viaDirect] = await Promise.all([
    wrapped.callTool(big, undefined, { timeout: 60_000 }),
    direct.callTool(big, undefined, { timeout: 60_000 }),
  ]);
  assert.deepEqual(viaWrapper, viaDirect);
  assert.equal(
    (viaWrapper.content as { text: string }[])[0].text.length,
    "Echo: ".length + big.arguments.message.length,
  );
});

test("SDK client → wrapper: with a hung platform, initialize is not delayed by register", async () => {
  await using dir = await scratch("molecule-mcp-");
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { [WS]: TOKEN },
  });
  platform.fail({ kind: "hang" });
  const started = performance.now();
  await using client = await connect({ wrapped: { platform, dir: dir.path } });
  const took = performance.now() - started;
  // Register waits for the platform until its 10 s timeout; initialize did not.
  assert.ok(
    platform.requestsTo("register").every((r) => r.status === 0),
    "no register was answered",
  );
  assert.ok(took < 10_000, `initialize took ${took} ms`);
  assert.ok((await client.listTools()).tools.length > 0);
});

test("SDK server in-process: trackTransport + startHeartbeat report its tool calls", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { [WS]: TOKEN },
  });
  const tracker = createMcpTracker();
  const server = new McpServer({ name: "embedded", version: "1.0.0" });
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  server.registerTool("wait", { description: "waits" }, async () => {
    await gate;
    return { content: [{ type: "text", text: "done" }] };
  });
  server.registerTool("fail", { description: "fails" }, () => ({
    isError: true,
    content: [{ type: "text", text: "it broke" }],
  }));
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(trackTransport(serverSide, tracker));
  const client = new Client({ name: "c", version: "1.0.0" });
  await client.connect(clientSide);
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: WS, token: TOKEN }],
    intervalMs: 100,
    stats: () => tracker.stats(),
  });
  try {
    const waiting = client.callTool({ name: "wait" });
    await waitFor(
      () => lastBeat(platform).current_task === "wait",
      5_000,
      "a beat naming the call",
    );
    assert.equal(hb.status().workspaces[0].stats?.active_tasks, 1);
    release();
    await waiting;
    await client.callTool({ name: "fail" });
    await waitFor(
      () => lastBeat(platform).sample_error === "it broke",
      5_000,
      "a beat with the failure",
    );
    // Two calls ended: too few for a rate (five are needed), not degraded.
    assert.equal(lastBeat(platform).error_rate, 0);
    assert.equal(lastBeat(platform).active_tasks, 0);
    for (let i = 0; i < 3; i++) await client.callTool({ name: "fail" });
    await waitFor(
      () => lastBeat(platform).error_rate === 4 / 5,
      5_000,
      "a beat with the rate of five calls",
    );
  } finally {
    await hb.stop();
    await client.close();
    await server.close();
  }
});
