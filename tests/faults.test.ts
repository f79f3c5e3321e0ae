// Fault scenarios against the platform emulator over real loopback HTTP, the
// ones not already in heartbeat_integration.test.ts: an outage mid-run, 429
// with Retry-After, a token revoked long enough to escalate twice and then
// restored. Each checks that nothing crashes, what is logged at which level,
// and how soon the schedule recovers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemorySecretStore, startHeartbeat } from "../mod.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";
import { waitFor } from "./helpers/wait.ts";

const TOKEN = "tok-faults-0123456789";

test("outage mid-run (connection refused), then recovery: warnings only, a beat lands within one interval, the secret is stored", async () => {
  const first = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  const port = first.port;
  const store = new MemorySecretStore();
  const hb = startHeartbeat({
    platformUrl: first.url,
    workspaces: [{ id: "ws-1", token: TOKEN }],
    intervalMs: 500,
    secretStore: store,
  });
  await captureLogs(async (records) => {
    await waitFor(() => hb.status().workspaces[0].beatsAccepted >= 2);
    await first.close();
    const downAt = performance.now();
    await waitFor(
      () => hb.status().workspaces[0].consecutiveFailures >= 2,
      5000,
      "failures during the outage",
    );
    assert.ok(performance.now() - downAt < 3000);
    await using second = await startPlatformEmulator({
      uuidIds: false,
      port,
      workspaces: { "ws-1": TOKEN },
      secretFor: () => "secret-after-the-outage",
    });
    const upAt = performance.now();
    await waitFor(
      () =>
        second.requestsTo("heartbeat", "ws-1").some((r) => r.status === 200),
      3000,
      "a beat after recovery",
    );
    const took = performance.now() - upAt;
    // Backoff is capped at the interval: at most one interval (plus slack for a busy machine).
    assert.ok(
      took <= 500 + 400,
      `first beat ${took.toFixed(0)} ms after recovery`,
    );
    await waitFor(
      () =>
        store.values["inbound-secret"].get("ws-1") ===
          "secret-after-the-outage",
      2000,
      "the secret delivered after recovery is stored",
    );
    await hb.stop();
    const lines = levelsAndTexts(records);
    assert.ok(
      lines.some((l) => l.startsWith("warning: heartbeat of ws-1 failed")),
      lines.join("\n"),
    );
    assert.ok(!lines.some((l) => l.startsWith("error")), lines.join("\n"));
  });
});

test("429 with Retry-After: the next try waits as long as asked (up to the interval), then the schedule resumes", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: TOKEN }],
    intervalMs: 2000,
  });
  await captureLogs(async (records) => {
    await waitFor(() => platform.requestsTo("heartbeat").length >= 1);
    platform.fail(
      { kind: "status", status: 429, headers: { "Retry-After": "1" } },
      { path: "heartbeat", times: 1 },
    );
    await waitFor(
      () => platform.requestsTo("heartbeat").some((r) => r.status === 429),
      5000,
      "the 429",
    );
    const limited = platform.requestsTo("heartbeat").find((r) =>
      r.status === 429
    )!;
    await waitFor(
      () => platform.requestsTo("heartbeat").some((r) => r.at > limited.at),
      5000,
      "the try after the 429",
    );
    const next = platform.requestsTo("heartbeat").find((r) =>
      r.at > limited.at
    )!;
    const waited = next.at - limited.at;
    // Retry-After says 1 s: not sooner (backoff alone would be ~0.1-1 s), not a whole interval later.
    assert.ok(
      waited >= 990 && waited <= 1900,
      `waited ${waited.toFixed(0)} ms`,
    );
    assert.equal(next.status, 200);
    await hb.stop();
    const lines = levelsAndTexts(records);
    assert.ok(
      lines.some((l) =>
        l.startsWith("warning: heartbeat of ws-1 failed") && l.includes("429")
      ),
      lines.join("\n"),
    );
  });
});

test("token revoked: warnings at 1-2, an error once refusals span 3 s (a 401 can be a blip), then every 20; restored: accepted and the count resets", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  const escalations: number[] = [];
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: TOKEN }],
    intervalMs: 40,
    // No scheduled /state: a poll refused just after the revoke, while the
    // beats were still accepted, sends a register (refused, with a line of
    // its own) before the first refused beat.
    statePollEvery: 0,
  });
  hb.addEventListener("auth-escalation", (e) => {
    escalations.push((e as CustomEvent).detail.count);
  });
  await captureLogs(async (records) => {
    // Registered too: beats do not wait on register, and a register still
    // under way when the token goes would be refused with a line of its own.
    await waitFor(() =>
      hb.status().workspaces[0].beatsAccepted >= 1 &&
      hb.status().workspaces[0].registered
    );
    platform.revoke("ws-1");
    const revokedAt = performance.now();
    await waitFor(() => escalations.length >= 2, 15_000, "two escalations");
    const firstAt = performance.now() - revokedAt;
    platform.restore("ws-1");
    await waitFor(
      () => hb.status().workspaces[0].authFailures === 0,
      3000,
      "the count reset by an accepted beat",
    );
    await hb.stop();
    // 40 ms beats: the 3rd refusal comes long before 3 s of refusals.
    const [first, second] = escalations;
    assert.ok(first > 3, `first escalation at ${first}`);
    assert.equal(second, first + 20);
    assert.ok(firstAt >= 3_000, `${firstAt} ms`);
    const auth = levelsAndTexts(records).filter((l) =>
      l.includes("401") || l.includes("REVOKED")
    );
    const errors = auth.filter((l) => l.startsWith("error"));
    assert.equal(errors.length, 2, auth.join("\n"));
    assert.match(
      errors[0],
      new RegExp(`^error: ${first} consecutive heartbeat auth failures`),
    );
    assert.match(errors[1], new RegExp(`^error: ${second} consecutive`));
    assert.match(auth[0], /^warning: .*auth failure 1\/3/);
    assert.match(auth[1], /^warning: .*auth failure 2\/3/);
    assert.equal(hb.status().workspaces[0].consecutiveFailures, 0);
  });
});

test("a compressed answer that unpacks past 64 KiB (a few hundred bytes of brotli or gzip, Content-Length small) is cut at 64 KiB unpacked, never read whole; a 403 web page is named as one (the CORS layer or a firewall), never the token", async () => {
  const { createServer } = await import("node:http");
  const { brotliCompressSync, gzipSync } = await import("node:zlib");
  const { sendHeartbeat } = await import("../src/platform/mod.ts");
  // 32 MiB of JSON-looking text: a few KiB compressed.
  const big = Buffer.alloc(32 * 1024 * 1024, " ");
  big.write('{"status":"ok","x":"');
  big.write('"}', big.length - 2);
  const bodies = { br: brotliCompressSync(big), gzip: gzipSync(big) };
  let answer: "br" | "gzip" | "waf" = "br";
  const server = createServer((req, res) => {
    req.resume();
    if (answer === "waf") {
      res.writeHead(403, { "content-type": "text/html" });
      return res.end(
        "<html><body>Request blocked by the firewall</body></html>",
      );
    }
    const body = bodies[answer];
    assert.ok(body.length < 64 * 1024, `${answer}: ${body.length} bytes`);
    res.writeHead(200, {
      "content-type": "application/json",
      "content-encoding": answer,
      "content-length": String(body.length),
    });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  try {
    for (const encoding of ["br", "gzip"] as const) {
      answer = encoding;
      const result = await sendHeartbeat({
        platformUrl: `http://127.0.0.1:${port}`,
        workspaceId: "ws-1",
        token: TOKEN,
      });
      assert.equal(result.kind, "not-platform", encoding);
      assert.match(result.reason, /a body over 64 KiB/, encoding);
    }
    answer = "waf";
    const waf = await sendHeartbeat({
      platformUrl: `http://127.0.0.1:${port}`,
      workspaceId: "ws-1",
      token: TOKEN,
    });
    assert.equal(waf.kind, "cors");
    assert.match(
      waf.reason,
      /403 with a web page \(text\/html\).*firewall.*Origin.*not the token/,
    );
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test("a token the platform quotes JSON-escaped in an error body (Go writes & < > as \\u0026 \\u003c \\u003e) is masked in the reason", async () => {
  const { createServer } = await import("node:http");
  const { sendHeartbeat } = await import("../src/platform/mod.ts");
  const token = 'Ab1&Cd2<Ef3>Gh4"Ij5Kl6Mn7';
  const quoted = JSON.stringify(token).slice(1, -1).replace(
    /[<>&]/g,
    (c) => `\\u00${c.charCodeAt(0).toString(16)}`,
  );
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(500, { "content-type": "application/json" });
    res.end(`{"error":"token ${quoted} failed"}`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  try {
    const result = await sendHeartbeat({
      platformUrl: `http://127.0.0.1:${port}`,
      workspaceId: "ws-1",
      token,
    });
    assert.equal(result.kind, "transient");
    assert.match(result.reason, /token \[redacted\] failed/);
    assert.doesNotMatch(result.reason, /Gh4|Kl6/);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
