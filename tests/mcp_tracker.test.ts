import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createMcpStreamTap,
  createMcpTracker,
  type McpTracker,
  trackTransport,
} from "../mod.ts";

const call = (id: number | string, name: string) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, arguments: { secret: "do-not-send-me" } },
});
const ok = (id: number | string) => ({
  jsonrpc: "2.0",
  id,
  result: { content: [{ type: "text", text: "fine" }] },
});
const toolError = (id: number | string, text: string) => ({
  jsonrpc: "2.0",
  id,
  result: { isError: true, content: [{ type: "text", text }] },
});
const rpcError = (id: number | string, message: string) => ({
  jsonrpc: "2.0",
  id,
  error: { code: -32602, message },
});

function clocked() {
  let t = 1_000_000;
  const tracker = createMcpTracker({ now: () => t });
  return {
    tracker,
    advance: (ms: number) => t += ms,
  };
}

test("tracker: calls under way, the longest-running named, never its arguments", () => {
  const { tracker, advance } = clocked();
  assert.deepEqual(tracker.stats(), {
    active_tasks: 0,
    current_task: "",
    error_rate: 0,
    sample_error: "",
  });
  tracker.fromClient(call(1, "slow-search"));
  advance(10);
  tracker.fromClient(call("b", "quick"));
  let s = tracker.stats();
  assert.equal(s.active_tasks, 2);
  assert.equal(s.current_task, "slow-search");
  assert.ok(!JSON.stringify(s).includes("do-not-send-me"));
  tracker.fromServer(ok(1));
  s = tracker.stats();
  assert.equal(s.active_tasks, 1);
  assert.equal(s.current_task, "quick");
  // A string id "1" is not the number 1.
  tracker.fromServer(ok("1"));
  assert.equal(tracker.stats().active_tasks, 1);
  tracker.fromServer(ok("b"));
  assert.equal(tracker.stats().current_task, "");
});

test("tracker: cancellation ends a call uncounted; other requests, notifications and junk change nothing", () => {
  const { tracker } = clocked();
  tracker.fromClient(call(5, "long"));
  tracker.fromClient({
    jsonrpc: "2.0",
    method: "notifications/cancelled",
    params: { requestId: 5, reason: "user" },
  });
  assert.equal(tracker.stats().active_tasks, 0);
  for (
    const junk of [
      null,
      42,
      "tools/call",
      { id: 9 },
      { jsonrpc: "2.0", id: 9, method: "tools/list" },
      { jsonrpc: "2.0", id: {}, method: "tools/call" },
      { jsonrpc: "2.0", method: "tools/call" },
    ]
  ) tracker.fromClient(junk);
  // The server's own request with a colliding id is not an answer.
  tracker.fromClient(call(9, "x"));
  tracker.fromServer({
    jsonrpc: "2.0",
    id: 9,
    method: "sampling/createMessage",
  });
  assert.equal(tracker.stats().active_tasks, 1);
  assert.equal(tracker.stats().error_rate, 0);
});

test("tracker: error rate over the last five minutes, sample error masked and cut to 200", () => {
  let t = 0;
  const tracker = createMcpTracker({
    now: () => t,
    mask: (text) => text.replaceAll("tok-secret-123", "[redacted]"),
  });
  tracker.fromClient(call(1, "a"));
  tracker.fromServer(rpcError(1, "bad args"));
  tracker.fromClient(call(2, "a"));
  tracker.fromServer(
    toolError(2, `failed with tok-secret-123\n${"x".repeat(500)}`),
  );
  let s = tracker.stats();
  assert.equal(s.error_rate, 1);
  assert.equal(s.sample_error.length, 200);
  assert.ok(s.sample_error.startsWith("failed with [redacted] xxx"));
  for (let i = 0; i < 38; i++) {
    tracker.fromClient(call(100 + i, "a"));
    tracker.fromServer(ok(100 + i));
  }
  s = tracker.stats();
  assert.equal(s.error_rate, 2 / 40);
  assert.ok(
    s.sample_error !== "",
    "the latest failure stays while in the window",
  );
  t += 310_000;
  s = tracker.stats();
  assert.equal(s.error_rate, 0);
  assert.equal(s.sample_error, "");
});

test("tracker: batches in both directions; bounded number of calls", () => {
  const tracker = createMcpTracker({ maxActive: 3 });
  tracker.fromClient([call(1, "a"), call(2, "b"), { junk: true }]);
  assert.equal(tracker.stats().active_tasks, 2);
  tracker.fromServer([ok(1), rpcError(2, "no")]);
  assert.equal(tracker.stats().active_tasks, 0);
  assert.equal(tracker.stats().error_rate, 0.5);
  for (let i = 0; i < 10; i++) tracker.fromClient(call(i + 10, "x"));
  assert.equal(tracker.stats().active_tasks, 3);
});

function tapped(maxLineBytes?: number) {
  const tracker = createMcpTracker();
  const tap = createMcpStreamTap(tracker, { maxLineBytes });
  const enc = new TextEncoder();
  const line = (m: unknown) => enc.encode(JSON.stringify(m) + "\n");
  return { tracker, tap, line, enc };
}

test("tap: lines split across chunks, CR LF, several per chunk, a last line without newline", () => {
  const { tracker, tap, line, enc } = tapped();
  const bytes = line(call(1, "one"));
  for (let i = 0; i < bytes.length; i += 3) {
    tap.client(bytes.subarray(i, i + 3));
  }
  assert.equal(tracker.stats().active_tasks, 1);
  const two = enc.encode(
    JSON.stringify(call(2, "two")) + "\r\n" + JSON.stringify(call(3, "three")),
  );
  tap.client(two);
  assert.equal(tracker.stats().active_tasks, 2);
  tap.clientEnd();
  assert.equal(tracker.stats().active_tasks, 3);
  tap.server(line(ok(1)));
  tap.server(enc.encode("not json at all\n{broken\n\n"));
  tap.server(line(toolError(2, "nope")));
  assert.equal(tracker.stats().active_tasks, 1);
  assert.equal(tracker.stats().sample_error, "nope");
});

test("tap: a huge line is never held whole; a huge answer ending in a call's id ends it uncounted", () => {
  const { tracker, tap, line, enc } = tapped(1024);
  tap.client(line(call(7, "big-result")));
  const huge = JSON.stringify({
    result: { content: [{ type: "text", text: "y".repeat(50_000) }] },
    jsonrpc: "2.0",
    id: 7,
  }) + "\n";
  const bytes = enc.encode(huge);
  for (let i = 0; i < bytes.length; i += 4096) {
    tap.server(bytes.subarray(i, i + 4096));
  }
  const s = tracker.stats();
  assert.equal(s.active_tasks, 0);
  assert.equal(s.error_rate, 0, "uncounted");
  // A huge request is not tracked at all (it changes nothing).
  tap.client(enc.encode(JSON.stringify(call(8, "z".repeat(2000))) + "\n"));
  assert.equal(tracker.stats().active_tasks, 0);
  // And an ordinary line after it is read as usual.
  tap.client(line(call(9, "after")));
  assert.equal(tracker.stats().current_task, "after");
});

test("tap: a tracker that throws never breaks the relay", () => {
  const broken: McpTracker = {
    fromClient() {
      throw new Error("boom");
    },
    fromServer() {
      throw new Error("boom");
    },
    isActive: () => true,
    active: 1,
    forget() {
      throw new Error("boom");
    },
    totals: () => ({ ok: 0, error: 0 }),
    stats: () => ({
      active_tasks: 0,
      current_task: "",
      error_rate: 0,
      sample_error: "",
    }),
  };
  const tap = createMcpStreamTap(broken);
  const bytes = new TextEncoder().encode(JSON.stringify(call(1, "x")) + "\n");
  tap.client(bytes);
  tap.server(bytes);
  tap.clientEnd();
  tap.serverEnd();
});

test("trackTransport: messages in are the client's, messages sent the server's; handlers set later are wrapped", async () => {
  const tracker = createMcpTracker();
  const sent: unknown[] = [];
  const seen: unknown[] = [];
  const transport = trackTransport({
    onmessage: undefined as ((m: unknown, extra?: unknown) => void) | undefined,
    send(m: unknown) {
      sent.push(m);
      return Promise.resolve();
    },
  }, tracker);
  assert.equal(transport.onmessage, undefined);
  transport.onmessage = (m, extra) => seen.push([m, extra]);
  transport.onmessage(call(1, "echo"), { authInfo: 1 });
  assert.deepEqual(seen, [[call(1, "echo"), { authInfo: 1 }]]);
  assert.equal(tracker.stats().current_task, "echo");
  await transport.send(rpcError(1, "failed"));
  assert.deepEqual(sent, [rpcError(1, "failed")]);
  assert.equal(tracker.stats().error_rate, 1);
});

test("tap: server lines that begin with no call under way are skipped, those that begin during one are read", () => {
  const { tracker, tap, line, enc } = tapped();
  // Begins before any call: skipped whole, even across chunks.
  tap.server(enc.encode('{"jsonrpc":"2.0","id":1,"res'));
  tap.client(line(call(1, "a")));
  tap.server(enc.encode('ult":{"isError":true,"content":[]}}\n'));
  assert.equal(
    tracker.stats().active_tasks,
    1,
    "the skipped line ended nothing",
  );
  // Begins during the call: read.
  tap.server(line(toolError(1, "real failure")));
  assert.equal(tracker.stats().active_tasks, 0);
  assert.equal(tracker.stats().sample_error, "real failure");
});
