import { test } from "node:test";
import assert from "node:assert/strict";
import { buildAgentCard } from "../src/platform/mod.ts";
import { buildHeartbeatBody } from "../src/platform/heartbeat.ts";
import { envFromRecord } from "../src/shared/env.ts";
import { parseRetryAfter } from "../src/platform/http.ts";
import { abortedByCaller } from "../src/platform/http.ts";
import { maskSecrets, rememberSecret } from "../src/shared/mask.ts";
import { classifyAnswer } from "../src/platform/outcome.ts";
import { authFailureLevel } from "../src/schedule/_beat.ts";
import { backoffDelay } from "../src/schedule/_retry.ts";
import { createLimiter } from "../src/schedule/_in_flight_cap.ts";
import { nextSlot, phaseOffset } from "../src/schedule/_slots.ts";
import { createTimerQueue } from "../src/schedule/_timer_queue.ts";
import { isValidSecret } from "../src/storage/secret_store.ts";
import { FakeClock } from "./helpers/fake_clock.ts";

test("agent card: default name is molecule-mcp- plus the first 8 characters of the id", () => {
  assert.deepEqual(buildAgentCard("abcdef0123456789", envFromRecord({})), {
    name: "molecule-mcp-abcdef01",
    skills: [],
  });
});

test("agent card: MOLECULE_AGENT_NAME overrides; whitespace-only means unset", () => {
  assert.equal(
    buildAgentCard("id", envFromRecord({ MOLECULE_AGENT_NAME: "  scout " }))
      .name,
    "scout",
  );
  assert.equal(
    buildAgentCard("id", envFromRecord({ MOLECULE_AGENT_NAME: " \t " })).name,
    "molecule-mcp-id",
  );
});

test("agent card: description key only when set, skills split on commas and trimmed", () => {
  const card = buildAgentCard(
    "ws",
    envFromRecord({
      MOLECULE_AGENT_DESCRIPTION: " reads papers ",
      MOLECULE_AGENT_SKILLS: "research, code-review,, ,memory-curation ",
    }),
  );
  assert.deepEqual(card, {
    name: "molecule-mcp-ws",
    description: "reads papers",
    skills: [{ name: "research" }, { name: "code-review" }, {
      name: "memory-curation",
    }],
  });
  const none = buildAgentCard(
    "ws",
    envFromRecord({ MOLECULE_AGENT_DESCRIPTION: "   " }),
  );
  assert.equal("description" in none, false);
});

test("backoff: full jitter between a floor and min(cap, base × 2^(n-1))", () => {
  const top = () => 0.999999;
  assert.equal(
    backoffDelay(1, { baseMs: 1000, capMs: 20_000, random: top }),
    999,
  );
  assert.equal(
    backoffDelay(4, { baseMs: 1000, capMs: 20_000, random: top }),
    7999,
  );
  assert.equal(
    backoffDelay(40, { baseMs: 1000, capMs: 20_000, random: top }),
    19_999,
  );
  assert.equal(
    backoffDelay(3, { baseMs: 1000, capMs: 20_000, random: () => 0 }),
    100,
  );
  for (let i = 1; i < 50; i++) {
    const d = backoffDelay(i, { baseMs: 1000, capMs: 5000 });
    assert.ok(d >= 100 && d <= 5000);
  }
});

test("Retry-After: seconds, HTTP dates, garbage", () => {
  assert.equal(parseRetryAfter("5"), 5000);
  assert.equal(parseRetryAfter(" 0 "), 0);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("-3"), undefined);
  assert.equal(parseRetryAfter("1.5"), undefined);
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now), 30_000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), undefined);
});

test("auth escalation levels follow the reference: warn < 3, error at 3 and 3 + 20k", () => {
  const levels = Array.from({ length: 64 }, (_, i) => authFailureLevel(i + 1));
  assert.deepEqual(levels.slice(0, 4), ["warning", "warning", "error", "none"]);
  const errors = levels.flatMap((l, i) => l === "error" ? [i + 1] : []);
  assert.deepEqual(errors, [3, 23, 43, 63]);
});

test("schedule: phase offsets spread a fleet, nextSlot keeps the grid", () => {
  assert.equal(phaseOffset(0, 1, 20_000), 0);
  assert.deepEqual([0, 1, 2, 3].map((i) => phaseOffset(i, 4, 20_000)), [
    0,
    5000,
    10_000,
    15_000,
  ]);
  // Groups of at most 3: ceil(7 / 3) = 3 offsets, sizes 3, 2, 2.
  const grouped = Array.from(
    { length: 7 },
    (_, i) => phaseOffset(i, 7, 30_000, 3),
  );
  assert.deepEqual(grouped, [0, 10_000, 20_000, 0, 10_000, 20_000, 0]);
  assert.equal(phaseOffset(5, 8, 20_000, 8), 0);
  assert.equal(phaseOffset(0, 1, 20_000, 8), 0);
  assert.equal(nextSlot(0, 20_000, 0, 9_999), 20_000);
  assert.equal(nextSlot(100, 20_000, 20_100, 20_150), 40_100);
  // A late beat at 119 s of a grid at 0, 20, ...: next at 140 s.
  assert.equal(nextSlot(0, 20_000, 119_000, 119_040), 140_000);
  // Sent at 131 s: 140 s is too close (less than half an interval), so 160 s.
  assert.equal(nextSlot(0, 20_000, 131_000, 131_010), 160_000);
  // A request slower than the interval: the first slot after it ended.
  assert.equal(nextSlot(0, 20_000, 0, 25_000), 40_000);
});

test("secrets: 1-4096 characters, no control characters, strings only", () => {
  assert.equal(isValidSecret("a"), true);
  assert.equal(isValidSecret("x".repeat(4096)), true);
  assert.equal(isValidSecret("x".repeat(4097)), false);
  assert.equal(isValidSecret(""), false);
  assert.equal(isValidSecret("a\u0000b"), false);
  assert.equal(isValidSecret("a\rb"), false);
  assert.equal(isValidSecret("a\u007fb"), false);
  assert.equal(isValidSecret(12), false);
  assert.equal(isValidSecret({ s: "x" }), false);
  assert.equal(isValidSecret(null), false);
});

test("heartbeat body: defaults, coercion, whole uptime seconds", () => {
  assert.deepEqual(buildHeartbeatBody("w", 12.9, undefined), {
    workspace_id: "w",
    error_rate: 0,
    sample_error: "",
    active_tasks: 0,
    uptime_seconds: 12,
    current_task: "",
    runtime_state: "",
    monthly_spend: 0,
  });
  const odd = buildHeartbeatBody("w", -1, "nonsense" as unknown as undefined);
  assert.equal(odd.uptime_seconds, 0);
  assert.equal(
    buildHeartbeatBody("w", 0, { active_tasks: Infinity }).active_tasks,
    0,
  );
});

test("answers classify: 2xx ok, 401/403 auth, an empty 403 cors, a web page not-platform, 3xx redirect, 5xx/429/408 transient, other 4xx rejected", () => {
  const c = (status: number, location?: string, json?: unknown) =>
    classifyAnswer({
      status,
      json,
      snippet: "",
      oversized: false,
      retryAfterMs: undefined,
      location,
    });
  const platformError = { error: "invalid workspace auth token" };
  assert.equal(c(200, undefined, { status: "ok" }).kind, "ok");
  assert.equal(c(204).kind, "ok");
  assert.equal(c(401).kind, "auth");
  assert.equal(c(401, undefined, platformError).kind, "auth");
  assert.equal(c(403, undefined, platformError).kind, "auth");
  // The platform's CORS layer: 403 with an empty body, before any token check.
  const cors = c(403);
  assert.equal(cors.kind, "cors");
  assert.match(cors.reason, /CORS.*Origin.*not the token/);
  // A 200 that is a web page (the canvas, a sign-in proxy) is not the platform.
  const page = classifyAnswer({
    status: 200,
    json: undefined,
    snippet: "<!doctype html><html>",
    oversized: false,
    retryAfterMs: undefined,
    location: undefined,
    contentType: "text/html; charset=utf-8",
  });
  assert.equal(page.kind, "not-platform");
  assert.match(page.reason, /a web page \(text\/html\).*PLATFORM_URL/);
  assert.equal(c(500).kind, "transient");
  assert.equal(c(503).kind, "transient");
  assert.equal(c(429).kind, "transient");
  assert.equal(c(408).kind, "transient");
  assert.equal(c(400).kind, "rejected");
  assert.equal(c(404).kind, "rejected");
  const r = c(308, "https://elsewhere.example/registry/heartbeat");
  assert.equal(r.kind, "redirect");
  assert.match(r.reason, /elsewhere\.example.*PLATFORM_URL/);
});

test("log text is masked: control characters and the token", () => {
  const maskForLog = (text: string, secret: string) =>
    maskSecrets(text, { extra: [secret] });
  assert.equal(
    maskForLog("bad token abcdef\n", "abcdef"),
    "bad token [redacted] ",
  );
  assert.equal(maskForLog("a test", "t"), "a test");
  assert.equal(maskForLog("\u001b[31mred", "zzz"), " [31mred");
});

test("timer queue: runs in due order, cancels, survives a throwing callback, uses one timer", async () => {
  const clock = new FakeClock();
  const errors: unknown[] = [];
  const q = createTimerQueue(clock, (e) => errors.push(e));
  const ran: string[] = [];
  q.at(30, () => ran.push("c"));
  const b = q.at(20, () => ran.push("b"));
  q.at(10, () => {
    throw new Error("x");
  });
  q.at(10, () => ran.push("a"));
  assert.equal(clock.timers.length, 1);
  q.cancel(b);
  await clock.advance(100);
  assert.deepEqual(ran, ["a", "c"]);
  assert.equal(errors.length, 1);
  assert.equal(q.size, 0);
  assert.equal(clock.timers.length, 0);
  // Many timers, random order: all in order, one underlying timer at a time.
  const order: number[] = [];
  const dues = Array.from({ length: 500 }, (_, i) => (i * 7919) % 1000);
  for (const d of dues) q.at(clock.now() + d, () => order.push(d));
  assert.equal(clock.timers.length, 1);
  await clock.advance(1000);
  assert.deepEqual(order, [...dues].sort((x, y) => x - y));
  q.at(clock.now() + 5, () => {});
  q.clear();
  assert.equal(clock.timers.length, 0);
});

test("limiter: at most n at once, all complete, errors propagate", async () => {
  const limit = createLimiter(3);
  let running = 0;
  let peak = 0;
  const task = async (i: number) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 1));
    running--;
    if (i === 5) throw new Error("five");
    return i;
  };
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, (_, i) => limit(() => task(i))),
  );
  assert.equal(peak, 3);
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 19);
});

test("abortedByCaller: a stop aborts, a deadline is a timeout", async () => {
  assert.equal(abortedByCaller(undefined), false);
  assert.equal(abortedByCaller(new AbortController().signal), false);
  assert.equal(abortedByCaller(AbortSignal.abort()), true);
  const deadline = AbortSignal.timeout(1);
  await new Promise((resolve) => deadline.addEventListener("abort", resolve));
  assert.equal(abortedByCaller(deadline), false);
  const stop = new AbortController();
  const either = AbortSignal.any([stop.signal, AbortSignal.timeout(60_000)]);
  stop.abort();
  assert.equal(abortedByCaller(either), true);
});

test("a 2xx's Content-Type in its error line goes through the mask before it is lower-cased, cut to 100 characters", () => {
  rememberSecret("Tok-Echoed-By-A-Proxy-0123");
  const answer = (contentType: string) =>
    classifyAnswer({
      status: 200,
      json: undefined,
      snippet: "x",
      oversized: false,
      retryAfterMs: undefined,
      location: undefined,
      contentType,
    }).reason;
  const echoed = answer("text/x-Tok-Echoed-By-A-Proxy-0123");
  assert.doesNotMatch(echoed.toLowerCase(), /tok-echoed-by-a-proxy/);
  assert.match(echoed, /\[redacted\]/);
  assert.ok(answer(`text/${"x".repeat(60_000)}`).length < 400);
});
