import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createMcpStreamTap,
  createMcpTracker,
  type McpTracker,
  trackTransport,
} from "../mod.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";

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
const cancelled = (requestId: number | string) => ({
  jsonrpc: "2.0",
  method: "notifications/cancelled",
  params: { requestId },
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
    runtime_state: "",
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
    minCallsForErrorRate: 1,
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
  const tracker = createMcpTracker({ maxActive: 3, minCallsForErrorRate: 1 });
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
  // A huge request whose name is too long to read is a call all the same,
  // unnamed; an ordinary line after it is read as usual.
  tap.client(enc.encode(JSON.stringify(call(8, "z".repeat(2000))) + "\n"));
  assert.deepEqual(
    [tracker.stats().active_tasks, tracker.stats().current_task],
    [1, ""],
  );
  tap.client(line(call(9, "after")));
  assert.equal(tracker.stats().active_tasks, 2);
});

test("tap: huge lines as other writers order them: an answer with its id first ends the call; a request with huge arguments is a call, named", () => {
  const { tracker, tap, enc } = tapped(1024);
  const big = "y".repeat(50_000);
  const feed = (side: "client" | "server", text: string) => {
    const bytes = enc.encode(text + "\n");
    for (let i = 0; i < bytes.length; i += 4096) {
      tap[side](bytes.subarray(i, i + 4096));
    }
  };
  // Arguments of 50 kB: the call is counted under its name.
  feed(
    "client",
    JSON.stringify({
      jsonrpc: "2.0",
      id: 11,
      method: "tools/call",
      params: { name: "upload", arguments: { data: big } },
    }),
  );
  assert.deepEqual(
    [tracker.stats().active_tasks, tracker.stats().current_task],
    [1, "upload"],
  );
  // An answer whose id comes before its result (as the Python SDK writes
  // it), with an "id" nested in the result that must not be taken for it.
  feed(
    "server",
    JSON.stringify({
      jsonrpc: "2.0",
      id: 11,
      result: { content: [{ type: "text", id: 99, text: big }] },
    }),
  );
  assert.equal(tracker.stats().active_tasks, 0);
  // A huge answer to another id ends nothing.
  feed("client", JSON.stringify(call("a-1", "search")));
  feed(
    "server",
    `{"jsonrpc":"2.0","id":"b-2","result":{"text":"${big}"}}`,
  );
  assert.equal(tracker.stats().active_tasks, 1);
  // Nor does a huge line whose first member is an object (no id to read).
  feed("server", `{"result":{"id":"a-1","text":"${big}"},"jsonrpc":"2.0"}`);
  assert.equal(tracker.stats().active_tasks, 1);
});

test("tap: a huge request whose id, method and name come after its arguments is a call, named; a name nested in the arguments is not taken for it", () => {
  const { tracker, tap, enc } = tapped(1024);
  const big = "y".repeat(50_000);
  const feed = (text: string) => {
    const bytes = enc.encode(text + "\n");
    for (let i = 0; i < bytes.length; i += 4096) {
      tap.client(bytes.subarray(i, i + 4096));
    }
  };
  feed(
    `{"jsonrpc":"2.0","params":{"arguments":{"data":"${big}"},"name":"hang"},"id":2,"method":"tools/call"}`,
  );
  assert.deepEqual(
    [tracker.stats().active_tasks, tracker.stats().current_task],
    [1, "hang"],
  );
  // The name first in params (head), id and method last (tail).
  feed(
    `{"params":{"name":"upload","arguments":{"data":"${big}"}},"method":"tools/call","id":"x-3"}`,
  );
  assert.equal(tracker.stats().active_tasks, 2);
  // Not a tools/call: nothing.
  feed(`{"params":{"data":"${big}"},"id":5,"method":"resources/read"}`);
  assert.equal(tracker.stats().active_tasks, 2);
  // A "name" that ends the arguments is not the tool's (its only call).
  const alone = tapped(1024);
  const bytes = enc.encode(
    `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"arguments":{"data":"${big}","name":"bob"}}}\n`,
  );
  for (let i = 0; i < bytes.length; i += 4096) {
    alone.tap.client(bytes.subarray(i, i + 4096));
  }
  assert.deepEqual(
    [alone.tracker.stats().active_tasks, alone.tracker.stats().current_task],
    [1, ""],
  );
});

test("tap: a tracker that throws never breaks the relay", () => {
  const broken: McpTracker = {
    fromClient() {
      throw new Error("boom");
    },
    fromServer() {
      throw new Error("boom");
    },
    serverOutput() {
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
      runtime_state: "",
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
  const tracker = createMcpTracker({ minCallsForErrorRate: 1 });
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

test("tracker: error_rate only once five calls ended in the window (0 before); totals count every ended call", () => {
  let t = 0;
  const tracker = createMcpTracker({ now: () => t });
  for (let i = 0; i < 4; i++) {
    tracker.fromClient(call(i, "a"));
    tracker.fromServer(rpcError(i, `failure ${i}`));
  }
  let s = tracker.stats();
  assert.equal(s.error_rate, 0, "4 failed calls are not yet a rate");
  assert.equal(s.sample_error, "failure 3", "the failure text is still shown");
  tracker.fromClient(call(4, "a"));
  tracker.fromServer(ok(4));
  s = tracker.stats();
  assert.equal(s.error_rate, 4 / 5);
  assert.deepEqual(tracker.totals(), { ok: 1, error: 4 });
  // Out of the window, the five no longer count; totals do.
  t += 301_000;
  tracker.fromClient(call(9, "a"));
  tracker.fromServer(rpcError(9, "again"));
  assert.equal(tracker.stats().error_rate, 0);
  assert.deepEqual(tracker.totals(), { ok: 1, error: 5 });
});

test("tracker: a call unanswered past wedgedAfterMs is wedged, masked and cut to 200; one warning each way; its answer clears it", async () => {
  await captureLogs(async (records) => {
    let t = 5_000;
    const tracker = createMcpTracker({
      now: () => t,
      wedgedAfterMs: 300_000,
      mask: (text) => text.replaceAll("tok-secret-123", "[redacted]"),
    });
    tracker.fromClient(call(1, "search"));
    t += 100_000;
    tracker.fromClient(call(2, "fetch"));
    t += 200_000; // search waited exactly 300 s: not longer
    assert.equal(tracker.stats().runtime_state, "");
    t += 12_000;
    tracker.serverOutput(); // output is no answer
    let s = tracker.stats();
    assert.equal(s.runtime_state, "wedged");
    assert.equal(s.sample_error, 'tool "search" has not answered for 312 s');
    assert.equal(s.active_tasks, 2);
    t += 20_000;
    s = tracker.stats();
    assert.equal(s.sample_error, 'tool "search" has not answered for 332 s');
    // The oldest answers; the next (212 s) is young enough: cleared.
    tracker.fromServer(ok(1));
    s = tracker.stats();
    assert.equal(s.runtime_state, "");
    assert.equal(s.sample_error, "");
    await Promise.resolve();
    assert.deepEqual(
      levelsAndTexts(records).filter((l) => l.includes("wedged")),
      [
        'warning: the MCP server looks wedged: tool "search" has not answered for 312 s; heartbeats say runtime_state "wedged" until it answers',
        'warning: the MCP server is no longer wedged (after 20 s): runtime_state is "" again',
      ],
    );
    tracker.fromServer(ok(2));
    // A tool name with a secret and 250 characters: masked, then cut.
    tracker.fromClient(call(3, `tok-secret-123${"n".repeat(236)}`));
    t += 400_000;
    s = tracker.stats();
    assert.equal(s.runtime_state, "wedged");
    assert.equal(s.sample_error.length, 200);
    assert.ok(s.sample_error.startsWith('tool "[redacted]nnn'), s.sample_error);
    assert.ok(!s.sample_error.includes("tok-secret-123"));
  });
});

test("tracker: a cancelled call clears the wedge; an idle server's silence before a call is not a wedge; 0 turns it off", () => {
  let t = 0;
  const tracker = createMcpTracker({ now: () => t, wedgedAfterMs: 60_000 });
  tracker.fromClient(call(1, "slow"));
  t += 61_000;
  assert.equal(tracker.stats().runtime_state, "wedged");
  tracker.fromClient(cancelled(1));
  assert.equal(tracker.stats().runtime_state, "");
  // Ten silent minutes with nothing asked, then a call: not wedged.
  t += 600_000;
  tracker.fromClient(call(2, "fresh"));
  t += 1_000;
  assert.equal(tracker.stats().runtime_state, "");

  const off = createMcpTracker({ now: () => t, wedgedAfterMs: 0 });
  off.fromClient(call(1, "slow"));
  t += 10 * 3_600_000;
  assert.deepEqual(
    [off.stats().runtime_state, off.stats().sample_error],
    ["", ""],
  );
});

test("tracker: a server silent while calls keep waiting is wedged though each call is young; its next output clears it", () => {
  let t = 0;
  const tracker = createMcpTracker({ now: () => t, wedgedAfterMs: 60_000 });
  // The client gives up on each call after 40 s and asks again: no call is
  // ever old, but the server has said nothing since the first.
  const cancel = (id: number) => tracker.fromClient(cancelled(id));
  tracker.fromClient(call(1, "search"));
  t += 40_000;
  tracker.fromClient(call(2, "search"));
  cancel(1);
  t += 40_000;
  tracker.fromClient(call(3, "search"));
  cancel(2);
  t += 40_000;
  const s = tracker.stats();
  assert.equal(s.runtime_state, "wedged");
  assert.equal(
    s.sample_error,
    "the MCP server has written nothing for 120 s while 1 tool call waits",
  );
  tracker.serverOutput();
  assert.equal(tracker.stats().runtime_state, "");
});

test("tracker: a client that cancels each call and then asks again, the server silent all along, is wedged", () => {
  let t = 0;
  const tracker = createMcpTracker({ now: () => t, wedgedAfterMs: 60_000 });
  const cancel = (id: number) => tracker.fromClient(cancelled(id));
  // Cancel first, then retry (nothing pending for a moment each time).
  for (let id = 1; id <= 4; id++) {
    tracker.fromClient(call(id, "search"));
    t += 30_000;
    cancel(id);
    t += 100;
  }
  tracker.fromClient(call(5, "search"));
  t += 1_000;
  const s = tracker.stats();
  assert.equal(s.runtime_state, "wedged");
  assert.match(
    s.sample_error,
    /has written nothing for 12\d s while 1 tool call waits/,
  );
  tracker.serverOutput();
  assert.equal(tracker.stats().runtime_state, "");
});

test("tracker: current_task is masked, as the beats and /status carry it", () => {
  const tracker = createMcpTracker({
    mask: (text) => text.replaceAll("tok-issued-0123456789", "[redacted]"),
  });
  tracker.fromClient(call(1, "run-with-tok-issued-0123456789"));
  assert.equal(tracker.stats().current_task, "run-with-[redacted]");
});

test("tap: every server chunk counts as output, even one that is not a message", () => {
  let t = 0;
  const tracker = createMcpTracker({ now: () => t, wedgedAfterMs: 60_000 });
  const tap = createMcpStreamTap(tracker);
  const enc = new TextEncoder();
  tap.client(enc.encode(JSON.stringify(call(1, "a")) + "\n"));
  tap.client(enc.encode(JSON.stringify(call(2, "b")) + "\n"));
  t += 50_000;
  tracker.fromServer(ok(1)); // one answer; "b" waits on
  t += 30_000;
  tap.server(enc.encode("progress without a newline"));
  t += 30_000;
  // b waited 110 s: wedged by age whatever the output.
  assert.equal(tracker.stats().runtime_state, "wedged");
});
