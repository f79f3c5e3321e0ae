// Fairness under the in-flight cap (issue 20 point 2): workspaces added
// together spread over the next interval, and a beat that finds the cap
// full waits first-come for the next free slot, so no workspace loses its
// turn again and again while others beat.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startHeartbeat } from "../mod.ts";
import { burstOffset } from "../src/schedule/_slots.ts";
import { FakeClock } from "./helpers/fake_clock.ts";

const URL_ = "http://platform.test";

/** A fetch answering every request after `ms` of the fake clock, counting requests in flight. */
function slowFetch(clock: FakeClock, ms: number) {
  const state = { inFlight: 0, peak: 0, beats: new Map<string, number[]>() };
  const fetch = (input: string | URL | Request, init?: RequestInit) => {
    const path = new URL(String(input)).pathname;
    if (path === "/registry/heartbeat") {
      const id = String(JSON.parse(String(init!.body)).workspace_id);
      state.beats.set(id, [...(state.beats.get(id) ?? []), clock.now()]);
    }
    state.inFlight++;
    state.peak = Math.max(state.peak, state.inFlight);
    return new Promise<Response>((resolve) =>
      clock.setTimeout(() => {
        state.inFlight--;
        resolve(Response.json({ status: "ok" }));
      }, ms)
    );
  };
  return { fetch, state };
}

test("burstOffset: the first at once, then halves, quarters… of the interval, on a grid of positions", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((k) => burstOffset(k, 8_000, 8)),
    [0, 4000, 2000, 6000, 1000, 5000, 3000, 7000],
  );
  // 40 added together over 20 s: 40 distinct offsets, none 500 ms from another.
  const offsets = Array.from(
    { length: 40 },
    (_, k) => burstOffset(k, 20_000, 640),
  )
    .sort((a, b) => a - b);
  assert.equal(new Set(offsets).size, 40);
  assert.ok(offsets.every((o, i) => i === 0 || o - offsets[i - 1] >= 312));
});

test("40 workspaces added at once beside 1, cap 16, answers in 3 s: every one accepted in the first two intervals, none skipped twice in a row", async () => {
  const clock = new FakeClock();
  const { fetch, state } = slowFetch(clock, 3_000);
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: [{ id: "first", token: "tok-first-0" }],
    intervalMs: 20_000,
    maxInFlight: 16,
    statePollEvery: 0,
    clock,
    fetch,
  });
  await clock.advanceFast(1_000);
  for (let i = 0; i < 40; i++) {
    hb.addWorkspace({ id: `added-${i}`, token: `tok-added-${i}` });
  }
  const addedAt = clock.now();
  await clock.advanceFast(40_000);
  const status = hb.status().workspaces;
  const late = status.filter((w) =>
    (state.beats.get(w.workspaceId) ?? []).filter((t) => t >= addedAt)
      .length === 0
  );
  assert.deepEqual(late.map((w) => w.workspaceId), []);
  assert.ok(status.every((w) => w.beatsAccepted >= 1));
  await clock.advanceFast(160_000); // ten intervals in all
  for (const w of hb.status().workspaces) {
    const times = state.beats.get(w.workspaceId)!;
    // Never a gap of two intervals: a skipped beat went at the next free slot.
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.ok(gaps.every((g) => g < 40_000), `${w.workspaceId}: ${gaps}`);
    assert.ok(w.beatsAccepted >= 8, `${w.workspaceId}: ${w.beatsAccepted}`);
  }
  assert.ok(state.peak <= 16 + 8, `peak in flight ${state.peak}`);
  assert.equal(hb.metrics().unarmed, 0);
  await hb.stop();
});

test("1,000 workspaces added at once, cap 16, the platform answering in 50 ms: every one accepted within two intervals", async () => {
  const clock = new FakeClock();
  const { fetch, state } = slowFetch(clock, 50);
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: [{ id: "first", token: "tok-first-0" }],
    intervalMs: 20_000,
    maxInFlight: 16,
    clock,
    fetch,
  });
  await clock.advanceFast(100);
  for (let i = 0; i < 1_000; i++) {
    hb.addWorkspace({ id: `ws-${i}`, token: `tok-ws-${i}-000` });
  }
  await clock.advanceFast(40_000);
  const never = hb.status().workspaces.filter((w) => w.beatsAccepted === 0);
  assert.deepEqual(never.map((w) => w.workspaceId), []);
  assert.ok(hb.status().workspaces.every((w) => w.registered));
  assert.ok(state.peak <= 16 + 8, `peak in flight ${state.peak}`);
  assert.equal(hb.metrics().unarmed, 0);
  await hb.stop();
});

test("after a hang, the queue that grew under the cap drains at twice the healthy rate: the recovery is no herd and opens few connections", async () => {
  const clock = new FakeClock();
  const state = {
    hung: false,
    fresh: 0,
    peakFresh: 0,
    accepted: new Set<string>(),
  };
  const fetch = (input: string | URL | Request, init?: RequestInit) => {
    const path = new URL(String(input)).pathname;
    const signal = init?.signal ?? undefined;
    if (state.hung) {
      // Accepted and never answered: only the deadline ends it.
      return new Promise<Response>((_, reject) =>
        signal?.addEventListener("abort", () => reject(signal.reason), {
          once: true,
        })
      );
    }
    state.fresh++;
    state.peakFresh = Math.max(state.peakFresh, state.fresh);
    return new Promise<Response>((resolve) =>
      clock.setTimeout(() => {
        state.fresh--;
        if (path === "/registry/heartbeat") {
          state.accepted.add(JSON.parse(String(init!.body)).workspace_id);
        }
        resolve(Response.json({ status: "ok" }));
      }, 20)
    );
  };
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: Array.from({ length: 1_000 }, (_, i) => ({
      id: `ws-${i}`,
      token: `tok-ws-${i}-000`,
    })),
    intervalMs: 10_000,
    timeoutMs: 5_000,
    maxInFlight: 64,
    beatGroupSize: 8,
    statePollEvery: 0,
    clock,
    fetch,
  });
  await clock.advanceFast(15_000);
  assert.ok(hb.status().workspaces.every((w) => w.beatsAccepted >= 1));
  // The cap fills with hung requests within a second (100 beats a second),
  // so they time out together, again and again.
  state.hung = true;
  await clock.advanceFast(30_000);
  assert.equal(hb.metrics().requestsInFlight, 64);
  state.hung = false;
  state.peakFresh = 0;
  state.accepted.clear();
  await clock.advanceFast(15_000); // one interval and one timeout
  // Unpaced, each slot the hung requests freed together went to the queue at
  // once: 64 requests (and pooled connections) out together. Paced at twice
  // the fleet's rate (200 a second) with answers in 20 ms: a few at once,
  // after a burst of a group (8).
  assert.ok(
    state.peakFresh <= 8 + 8,
    `peak of new requests at once: ${state.peakFresh}`,
  );
  assert.equal(state.accepted.size, 1_000, "every workspace beat again");
  assert.equal(hb.metrics().unarmed, 0);
  await hb.stop();
});

test("24 workspaces at a 60 s interval under a cap of 16, each asked its state at start (as --once does), answers in 100 ms: the start's queue drains at the cap's size a second, not at twice the beat rate (0.8 a second): every one registered within 5 s", async () => {
  const clock = new FakeClock();
  const { fetch, state } = slowFetch(clock, 100);
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: Array.from({ length: 24 }, (_, i) => ({
      id: `ws-${i}`,
      token: `tok-ws-${i}-000`,
    })),
    intervalMs: 60_000,
    maxInFlight: 16,
    checkStateAtStart: true,
    clock,
    fetch,
  });
  await clock.advanceFast(5_000);
  const waiting = hb.status().workspaces.filter((w) => !w.registered);
  assert.deepEqual(waiting.map((w) => w.workspaceId), []);
  assert.ok(state.peak <= 16 + 8, `peak in flight ${state.peak}`);
  await hb.stop();
});
