import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type HeartbeatOptions,
  MemorySecretStore,
  startHeartbeat,
} from "../mod.ts";
import {
  type PlatformEmulator,
  startPlatformEmulator,
} from "../src/testing/emulator.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";
import { sleep, waitFor } from "./helpers/wait.ts";

const TOKEN = "tok-0123456789abcdef";

function run(
  platform: PlatformEmulator,
  extra: Partial<HeartbeatOptions> = {},
) {
  const store = new MemorySecretStore();
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: TOKEN }],
    intervalMs: 100,
    secretStore: store,
    ...extra,
  });
  const events: string[] = [];
  for (
    const type of [
      "registered",
      "rejected",
      "register-failed",
      "beat",
      "failure",
      "auth-escalation",
      "secret-stored",
      "secret-failed",
    ]
  ) {
    hb.addEventListener(type, () => events.push(type));
  }
  return { hb, store, events };
}

test("beats reach the platform on one kept-alive connection, the secret is written once", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  // A timeout far above the 100 ms interval: on a loaded machine a register
  // slower than the interval would time out and be retried (that is tested
  // elsewhere); here it must happen once.
  const { hb, store, events } = run(platform, { timeoutMs: 5_000 });
  // Wait on what the client saw: the emulator records a request before its
  // answer reaches the client, and stop() would abort that last one.
  await waitFor(
    () => hb.status().workspaces[0].beatsAccepted >= 12,
    5000,
    "12 accepted beats",
  );
  await hb.stop();
  const beats = platform.requestsTo("heartbeat");
  assert.ok(
    beats.every((b) =>
      b.authorized && b.origin === platform.url &&
      b.contentType === "application/json"
    ),
  );
  assert.equal(platform.requestsTo("register").length, 1);
  // The first beat, the lookup and the register may go out side by side
  // (beats never wait on register); then every beat reuses a connection.
  assert.ok(platform.connections <= 3, `connections: ${platform.connections}`);
  assert.equal(
    store.saves["inbound-secret"],
    1,
    "the unchanged secret is written once, not on every beat",
  );
  assert.equal(store.values["inbound-secret"].get("ws-1"), "secret-ws-1");
  const s = hb.status().workspaces[0];
  assert.equal(s.registered, true);
  assert.ok(s.beatsAccepted >= 12);
  assert.equal(s.lastStatus, 200);
  assert.equal(s.secretStored, true);
  assert.ok(s.sinceLastSuccessMs! < 1000);
  assert.ok(!Number.isNaN(Date.parse(s.lastSuccessAt!)));
  assert.deepEqual([...new Set(events)].sort(), [
    "beat",
    "registered",
    "secret-stored",
  ]);
  assert.equal(platform.workspace("ws-1")!.status, "online");
});

test("a changed secret is written again; a secret only in the register answer is stored", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  platform.fail({ kind: "status", status: 503 }, { path: "heartbeat" });
  const { hb, store } = run(platform);
  await captureLogs(async () => {
    await waitFor(
      () => store.saves["inbound-secret"] === 1,
      3000,
      "secret from register",
    );
    platform.heal();
    platform.setSecret("ws-1", "rotated-secret");
    await waitFor(
      () => store.values["inbound-secret"].get("ws-1") === "rotated-secret",
      3000,
      "rotated secret",
    );
    await sleep(300);
    await hb.stop();
  });
  assert.equal(store.saves["inbound-secret"], 2);
});

test("a secret already stored is not written again after a restart", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  const store = new MemorySecretStore();
  await store.save("inbound-secret", "ws-1", "secret-ws-1");
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: TOKEN }],
    intervalMs: 50,
    secretStore: store,
  });
  await waitFor(() => platform.requestsTo("heartbeat").length >= 5);
  await hb.stop();
  assert.equal(store.saves["inbound-secret"], 1);
});

test("bad secrets are ignored with one warning; beats go on", async () => {
  for (const value of ["line\nbreak", 42, "x".repeat(5000), { nested: true }]) {
    await using platform = await startPlatformEmulator({
      uuidIds: false,
      workspaces: { "ws-1": TOKEN },
    });
    platform.fail({ kind: "secret", value });
    const { hb, store } = run(platform);
    const lines = await captureLogs(async (records) => {
      await waitFor(() => platform.requestsTo("heartbeat").length >= 4);
      await hb.stop();
      return levelsAndTexts(records);
    });
    assert.equal(store.saves["inbound-secret"], 0);
    assert.equal(
      lines.filter((l) =>
        l.startsWith("warning") && l.includes("platform_inbound_secret")
      ).length,
      1,
    );
    assert.ok(hb.status().workspaces[0].beatsAccepted >= 3);
  }
});

test("a failing secret store is one warning per reason; the next beat that carries the secret retries", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  let failures = 2;
  const saved: string[] = [];
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: TOKEN }],
    intervalMs: 50,
    secretStore: {
      load: () => Promise.resolve(undefined),
      save: (_kind, _id, secret) => {
        if (failures-- > 0) {
          return Promise.reject(new Error("EROFS: read-only file system"));
        }
        saved.push(secret);
        return Promise.resolve();
      },
    },
  });
  const failed: unknown[] = [];
  hb.addEventListener(
    "secret-failed",
    (e) => failed.push((e as CustomEvent).detail),
  );
  const lines = await captureLogs(async (records) => {
    await waitFor(() => saved.length === 1, 3000, "the secret to land");
    await sleep(200);
    await hb.stop();
    return levelsAndTexts(records);
  });
  assert.deepEqual(saved, ["secret-ws-1"]);
  assert.equal(failed.length, 2);
  assert.equal(
    lines.filter((l) => l.startsWith("warning") && l.includes("EROFS")).length,
    1,
    "the same failure twice is warned about once",
  );
});

test("strange answers are no secret and no crash: 10 MB body, non-JSON, reset mid-body", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
    secretFor: () => undefined,
  });
  const { hb, store } = run(platform, { intervalMs: 150 });
  await captureLogs(async () => {
    await waitFor(() => platform.requestsTo("heartbeat").length >= 1);
    const fault = platform.fail(
      { kind: "huge-body", bytes: 10 * 1024 * 1024 },
      { path: "heartbeat", times: 2 },
    );
    await waitFor(() => platform.requestsTo("heartbeat").length >= 3);
    fault();
    platform.fail({ kind: "non-json" }, { path: "heartbeat", times: 2 });
    await waitFor(() => platform.requestsTo("heartbeat").length >= 5);
    platform.fail({ kind: "reset-mid-body" }, { path: "heartbeat", times: 1 });
    await waitFor(() => platform.requestsTo("heartbeat").length >= 6);
    platform.fail({ kind: "reset" }, { path: "heartbeat", times: 1 });
    await waitFor(() => platform.requestsTo("heartbeat").length >= 8);
    assert.equal(
      store.saves["inbound-secret"],
      0,
      "no secret came from the strange answers",
    );
    platform.setSecret("ws-1", "the-real-secret");
    await waitFor(
      () => store.values["inbound-secret"].get("ws-1") === "the-real-secret",
      3000,
      "a normal answer's secret",
    );
  });
  await hb.stop();
  assert.equal(store.saves["inbound-secret"], 1);
  assert.equal(hb.status().workspaces[0].consecutiveFailures, 0);
});

test("a hung platform times out each request and the schedule holds", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  const { hb } = run(platform, { intervalMs: 200 });
  const reasons: string[] = [];
  hb.addEventListener(
    "failure",
    (e) => reasons.push((e as CustomEvent).detail.reason),
  );
  await captureLogs(async () => {
    await waitFor(() => platform.requestsTo("heartbeat").length >= 1);
    platform.fail({ kind: "hang" }, { path: "heartbeat" });
    await waitFor(() => reasons.length >= 3, 5000, "three timeouts");
    platform.heal();
    const healedAt = performance.now();
    await waitFor(
      () => hb.status().workspaces[0].consecutiveFailures === 0,
      3000,
      "recovery",
    );
    assert.ok(
      performance.now() - healedAt < 200 + 200 + 600,
      "a beat landed within one interval (plus a timeout)",
    );
  });
  await hb.stop();
  assert.ok(reasons.every((r) => r === "request timed out"), reasons.join());
});

test("a redirect is not followed and names its Location", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  platform.fail({
    kind: "redirect",
    location: "https://evil.example/registry/heartbeat",
    status: 301,
  }, { path: "heartbeat" });
  const { hb } = run(platform);
  const lines = await captureLogs(async (records) => {
    await waitFor(() => platform.requestsTo("heartbeat").length >= 3);
    await hb.stop();
    return levelsAndTexts(records);
  });
  const errors = lines.filter((l) => l.startsWith("error"));
  // Said once as the trouble starts, not on every beat.
  assert.equal(errors.length, 1, lines.join("\n"));
  assert.match(
    errors[0],
    /HTTP 301 redirect to https:\/\/evil\.example\/registry\/heartbeat.*PLATFORM_URL/,
  );
  assert.equal(hb.status().workspaces[0].lastStatus, 301);
});

test("other 4xx are warned with status and body, and leave the auth count alone", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  const { hb } = run(platform, { intervalMs: 60 });
  const lines = await captureLogs(async (records) => {
    await waitFor(() => platform.requestsTo("heartbeat").length >= 1);
    platform.revoke("ws-1");
    await waitFor(() => hb.status().workspaces[0].authFailures >= 2);
    platform.restore("ws-1");
    platform.fail({
      kind: "status",
      status: 400,
      body: '{"error":"invalid request body"}',
    }, { path: "heartbeat", times: 2 });
    await waitFor(() =>
      platform.requestsTo("heartbeat").filter((r) => r.status === 400)
        .length === 2
    );
    const s = hb.status().workspaces[0];
    assert.ok(s.authFailures >= 2, "400 did not reset the auth count");
    await waitFor(
      () => hb.status().workspaces[0].authFailures === 0,
      2000,
      "success resets",
    );
    await hb.stop();
    return levelsAndTexts(records);
  });
  assert.ok(
    lines.some((l) =>
      /^warning: heartbeat of ws-1 failed: HTTP 400: \{"error":"invalid request body"\}/
        .test(l)
    ),
    lines.join("\n"),
  );
});

test("a register that failed transiently is retried in the background while beats go on", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  platform.fail({ kind: "status", status: 503 }, {
    path: "register",
    times: 3,
  });
  const { hb, events } = run(platform, { intervalMs: 400 });
  await captureLogs(async () => {
    const ready = await hb.ready;
    assert.equal(ready.failed.length, 1);
    assert.equal(ready.registered.length, 0);
    await waitFor(
      () => hb.status().workspaces[0].registered,
      5000,
      "register to succeed",
    );
  });
  await hb.stop();
  assert.equal(platform.requestsTo("register").length, 4);
  assert.ok(
    platform.requestsTo("heartbeat").length >= 1,
    "beats did not wait for register",
  );
  assert.equal(events.filter((e) => e === "register-failed").length, 3);
});

test("a workspace whose token is refused at register is dropped; the others go on", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { good: TOKEN, bad: "other-token" },
  });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "good", token: TOKEN }, {
      id: "bad",
      token: "not-the-token",
    }],
    intervalMs: 50,
  });
  const rejected: unknown[] = [];
  hb.addEventListener(
    "rejected",
    (e) => rejected.push((e as CustomEvent).detail),
  );
  const lines = await captureLogs(async (records) => {
    const ready = await hb.ready;
    assert.deepEqual(ready.rejected, [{ workspaceId: "bad", status: 401 }]);
    assert.deepEqual(ready.registered, ["good"]);
    await waitFor(() => platform.requestsTo("heartbeat", "good").length >= 3);
    await hb.stop();
    return levelsAndTexts(records);
  });
  assert.deepEqual(rejected, [{
    workspaceId: "bad",
    status: 401,
    reason: "token",
  }]);
  // One refusal is no verdict: its beats go on (refused) until the
  // register a few seconds later is refused too; then nothing more.
  const badBeats = platform.requestsTo("heartbeat", "bad");
  const rejectedAt = platform.requestsTo("register", "bad").at(-1)!.at;
  assert.equal(platform.requestsTo("register", "bad").length, 2);
  assert.ok(badBeats.every((r) => r.at <= rejectedAt + 100));
  assert.ok(
    lines.some((l) =>
      /^error: register rejected with HTTP 401.*bad.*refused again.*Tokens tab/
        .test(l)
    ),
  );
  assert.equal(hb.status().workspaces[1].rejected, true);
});

test("stop aborts a hung request, clears timers and resolves at once", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  platform.fail({ kind: "hang" }, { path: "heartbeat" });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: TOKEN }],
    intervalMs: 20_000,
  });
  await waitFor(() => platform.requestsTo("heartbeat").length === 1);
  const t0 = performance.now();
  await hb.stop();
  assert.ok(
    performance.now() - t0 < 500,
    `stop took ${performance.now() - t0} ms`,
  );
  assert.equal(hb.status().stopped, true);
});

test("an AbortSignal stops everything, even during register", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  platform.fail({ kind: "hang" }, { path: "register" });
  const controller = new AbortController();
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: TOKEN }],
    signal: controller.signal,
  });
  await waitFor(() => platform.requestsTo("register").length === 1);
  controller.abort();
  await hb.stopped;
  assert.deepEqual(await hb.ready, {
    registered: [],
    rejected: [],
    failed: [],
    deleted: [],
  });
  assert.ok(
    platform.requestsTo("heartbeat").length <= 1,
    "beats do not wait on register: at most the first went out beside it",
  );
});

test("many workspaces in one process share few connections and spread their beats", async () => {
  await using platform = await startPlatformEmulator({ uuidIds: false });
  const n = 200;
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: Array.from(
      { length: n },
      (_, i) => ({ id: `ws-${i}`, token: `${TOKEN}-${i}` }),
    ),
    intervalMs: 1000,
  });
  // Beats do not wait for registers (8 at a time, each after a lookup).
  await waitFor(
    () =>
      new Set(platform.requestsTo("heartbeat").map((r) => r.workspaceId))
          .size === n && platform.requestsTo("register").length >= n,
    20_000,
    "every workspace beaten and registered",
  );
  await hb.stop();
  assert.equal(platform.requestsTo("register").length, n);
  // The first beats spread over the first interval: no 100 ms window holds most of them.
  const first = new Map<string, number>();
  for (const r of platform.requestsTo("heartbeat")) {
    if (!first.has(r.workspaceId!)) first.set(r.workspaceId!, r.at);
  }
  const times = [...first.values()].sort((a, b) => a - b);
  assert.ok(times.at(-1)! - times[0] > 700, "spread over the interval");
  // The reference opens one connection per beat (400+ here, and one per
  // register); a pool reuses a few, for the 200 lookups and registers too
  // (40 to 60 here; a loaded CI machine's slower answers kept more open at
  // once: 75).
  assert.ok(
    platform.connections <= 120,
    `connections: ${platform.connections}`,
  );
});

test("tokens and secrets never appear in a log line or property, at any level", async () => {
  const secret = "inbound-secret-value-42";
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
    secretFor: () => secret,
  });
  const records = await captureLogs(async (records) => {
    const { hb } = run(platform, { intervalMs: 40 });
    await waitFor(() => platform.requestsTo("heartbeat").length >= 2);
    // A platform that echoes the token and the secret in its error bodies.
    platform.fail(
      { kind: "status", status: 500, body: `bad bearer ${TOKEN}` },
      { times: 2 },
    );
    platform.fail(
      { kind: "status", status: 400, body: `{"echo":"${TOKEN}"}` },
      { times: 1 },
    );
    await waitFor(() => platform.requestsTo("heartbeat").length >= 7);
    platform.revoke("ws-1");
    await waitFor(() => hb.status().workspaces[0].authFailures >= 3);
    await hb.stop();
    return [...records];
  });
  assert.ok(records.length > 5);
  for (const r of records) {
    const all = JSON.stringify({
      message: r.message,
      properties: r.properties,
      raw: r.rawMessage,
    });
    assert.ok(!all.includes(TOKEN), `token leaked: ${all}`);
    assert.ok(!all.includes(secret), `secret leaked: ${all}`);
  }
});

test("platform down at start, then up: register is retried and a beat lands within one interval of recovery", async () => {
  // Reserve a port, close it: nothing listens there until the emulator starts on it.
  const probe = await startPlatformEmulator({ uuidIds: false });
  const port = probe.port;
  await probe.close();
  const hb = startHeartbeat({
    platformUrl: `http://127.0.0.1:${port}`,
    workspaces: [{ id: "ws-1", token: TOKEN }],
    intervalMs: 1000,
  });
  await captureLogs(async () => {
    const ready = await hb.ready;
    assert.equal(ready.failed.length, 1);
    await sleep(400);
    assert.equal(hb.status().workspaces[0].beatsAccepted, 0);
    await using platform = await startPlatformEmulator({
      uuidIds: false,
      port,
      workspaces: { "ws-1": TOKEN },
    });
    const upAt = performance.now();
    await waitFor(
      () => hb.status().workspaces[0].beatsAccepted > 0,
      3000,
      "a beat after recovery",
    );
    assert.ok(
      performance.now() - upAt <= 1000 + 500,
      `took ${performance.now() - upAt} ms`,
    );
    await waitFor(
      () => hb.status().workspaces[0].registered,
      3000,
      "register after recovery",
    );
    await hb.stop();
    assert.equal(platform.workspace("ws-1")!.status, "online");
  });
});

test("a 5xx storm mid-run: retries back off (never faster than the floor), then the schedule recovers", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  const { hb } = run(platform, { intervalMs: 1000 });
  await captureLogs(async () => {
    await waitFor(() => platform.requestsTo("heartbeat").length >= 1);
    platform.fail({ kind: "status", status: 502 }, { path: "heartbeat" });
    const stormAt = performance.now();
    await sleep(3000);
    const during = platform.requestsTo("heartbeat").filter((r) =>
      r.at >= stormAt
    );
    // Backoff from 100 ms up to the 1 s cap: at least the grid's 3 tries, far fewer than a hot loop.
    assert.ok(
      during.length >= 3 && during.length <= 30,
      `tries during the storm: ${during.length}`,
    );
    platform.heal();
    const healedAt = performance.now();
    await waitFor(
      () => hb.status().workspaces[0].consecutiveFailures === 0,
      2000,
      "recovery",
    );
    assert.ok(performance.now() - healedAt <= 1000 + 500);
  });
  await hb.stop();
});
