// A workspace's life (issue 20): the state machine, every way out of a
// beat rescheduling, callbacks under the beat's deadline, refusals in
// context, sleep and wake, and the smaller holes the review found.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type HeartbeatOptions,
  MemorySecretStore,
  startHeartbeat,
} from "../mod.ts";
import { NEXT } from "../src/schedule/_life.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { FakeClock } from "./helpers/fake_clock.ts";
import {
  type FakeAnswer,
  fakeFetch,
  type SeenRequest,
} from "./helpers/fake_fetch.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";
import { FAKE_URL, fakeFleet, ok } from "./helpers/fake_fleet.ts";
import { waitFor } from "./helpers/wait.ts";

const URL_ = FAKE_URL;

function setup(
  answer: (req: SeenRequest) => FakeAnswer,
  extra: Partial<HeartbeatOptions> = {},
) {
  return fakeFleet(answer, extra, "tok-1-000000");
}

/** Resolves with whether `promise` settled within `ms` real milliseconds. */
async function within(promise: Promise<unknown>, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = await Promise.race([
    promise.then(() => true),
    new Promise<boolean>((r) => timer = setTimeout(() => r(false), ms)),
  ]);
  clearTimeout(timer);
  return settled;
}

test("the state machine: final states allow only removed; a workspace goes registering → beating → backing-off → beating → paused → beating", async () => {
  assert.deepEqual(NEXT.deleted, ["removed"]);
  assert.deepEqual(NEXT.rejected, ["removed"]);
  assert.deepEqual(NEXT.removed, []);
  assert.ok(!NEXT.beating.includes("rejected"), "never rejected once beating");
  let register: FakeAnswer = { status: 503, body: { error: "down" } };
  let heartbeat: FakeAnswer = ok();
  let state: FakeAnswer = {
    status: 200,
    body: { status: "online", paused: false, deleted: false },
  };
  const { clock, hb } = setup(
    (req) =>
      req.path === "/registry/register"
        ? register
        : req.path === "/registry/heartbeat"
        ? heartbeat
        : state,
    { statePollEvery: 1, pausedCheckMs: 5_000 },
  );
  const seen: string[] = [];
  const note = () => {
    const s = hb.status().workspaces[0].state!;
    if (seen.at(-1) !== s) seen.push(s);
    assert.equal(hb.metrics().unarmed, 0, `nothing armed while ${s}`);
  };
  await captureLogs(async () => {
    await clock.advance(0);
    note(); // register failed, beats go on
    register = ok();
    await clock.advance(21_000); // the register retry
    note();
    heartbeat = { status: 503, body: { error: "down" } };
    await clock.advance(20_000);
    note();
    heartbeat = ok();
    await clock.advance(20_000);
    note();
    state = {
      status: 200,
      body: { status: "paused", paused: true, deleted: false },
    };
    await clock.advance(20_000);
    note();
    state = {
      status: 200,
      body: { status: "online", paused: false, deleted: false },
    };
    await clock.advance(5_000);
    note();
  });
  assert.deepEqual(seen, [
    "registering",
    "beating",
    "backing-off",
    "beating",
    "paused",
    "beating",
  ]);
  await hb.stop();
  assert.equal(hb.metrics().unarmed, 0);
});

test("an unexpected throw inside a beat (a stats getter that throws) is logged and the schedule goes on", async () => {
  let n = 0;
  const { clock, hb, beats } = setup(ok, {
    stats: () => {
      n++;
      if (n !== 2) return { active_tasks: 1 };
      // A value whose field throws when read: buildHeartbeatBody throws.
      return Object.defineProperty({}, "active_tasks", {
        get() {
          throw new Error("a getter that throws");
        },
        enumerable: true,
      });
    },
  });
  const lines = await captureLogs(async (records) => {
    await clock.advance(100_000);
    return levelsAndTexts(records);
  });
  // Beats at 0, (20 s: threw), 40, 60, 80, 100 s.
  assert.deepEqual(beats().map((b) => b.at), [
    0,
    40_000,
    60_000,
    80_000,
    100_000,
  ]);
  assert.ok(
    lines.some((l) =>
      /^error: internal error in a beat of ws-1.*goes on/.test(l)
    ),
    lines.join("\n"),
  );
  assert.equal(hb.metrics().unarmed, 0);
  await hb.stop();
});

test("a stats function that never answers: the beat goes out at its deadline with the last figures, one warning, and stop() resolves", async () => {
  let n = 0;
  const { clock, hb, beats } = setup(ok, {
    timeoutMs: 5_000,
    stats: () => {
      n++;
      return n === 1
        ? { active_tasks: 3, current_task: "indexing" }
        : new Promise(() => {}); // never settles
    },
  });
  const lines = await captureLogs(async (records) => {
    await clock.advance(70_000);
    return levelsAndTexts(records);
  });
  // Beat 0 at once; the next ones wait for the deadline (5 s), then go.
  assert.deepEqual(beats().map((b) => b.at), [0, 25_000, 45_000, 65_000]);
  assert.ok(beats().every((b) => b.body.active_tasks === 3));
  assert.equal(
    lines.filter((l) => /stats function did not answer/.test(l)).length,
    1,
    lines.join("\n"),
  );
  assert.ok(await within(hb.stop(), 2_000), "stop() resolved");
});

test("a token function that never answers: nothing is sent for it, one warning, the others beat, and stop() resolves", async () => {
  const { clock, hb, fetch } = setup(ok, {
    timeoutMs: 5_000,
    workspaces: [
      { id: "stuck", token: () => new Promise<string>(() => {}) },
      { id: "fine", token: "tok-fine-00000" },
    ],
  });
  const failures: string[] = [];
  hb.addEventListener(
    "failure",
    (e) => failures.push((e as CustomEvent).detail.reason),
  );
  const lines = await captureLogs(async (records) => {
    await clock.advance(60_000);
    return levelsAndTexts(records);
  });
  const sent = (id: string) =>
    fetch.seen.filter((r) =>
      r.body.workspace_id === id || r.body.id === id ||
      r.path.includes(`/${id}`)
    );
  assert.equal(sent("stuck").length, 0);
  assert.ok(sent("fine").length >= 3);
  assert.ok(
    failures.length >= 2 &&
      failures.every((r) => /token function timed out/.test(r)),
  );
  assert.equal(
    lines.filter((l) => /token function of stuck did not answer/.test(l))
      .length,
    1,
    lines.join("\n"),
  );
  assert.ok(hb.metrics().beatFailures.timeout >= 2);
  assert.equal(hb.metrics().unarmed, 0);
  assert.ok(await within(hb.stop(), 2_000), "stop() resolved");
});

test("stop() resolves whatever a store does: a secret store whose save never answers", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": "tok-store-000000" },
  });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: "tok-store-000000" }],
    intervalMs: 100,
    secretStore: {
      load: () => Promise.resolve(undefined),
      save: () => new Promise<void>(() => {}),
    },
  });
  await waitFor(() => hb.status().workspaces[0].beatsAccepted >= 2);
  const t0 = performance.now();
  assert.ok(await within(hb.stop(), 3_000), "stop() resolved");
  assert.ok(performance.now() - t0 < 2_500);
});

test("refusals in context: a register retry refused after the beats were accepted is a warning and a slow retry, never a drop", async () => {
  let register: FakeAnswer = { status: 503, body: { error: "down" } };
  const { clock, hb, fetch } = setup((req) =>
    req.path === "/registry/register" ? register : ok()
  );
  const events: string[] = [];
  for (const type of ["rejected", "register-failed", "deleted"]) {
    hb.addEventListener(type, () => events.push(type));
  }
  const lines = await captureLogs(async (records) => {
    await clock.advance(0); // register 503, beat accepted
    register = {
      status: 401,
      body: { error: "invalid workspace auth token" },
    };
    await clock.advance(60_000);
    return levelsAndTexts(records);
  });
  const ready = await hb.ready;
  assert.equal(ready.failed.length, 1);
  assert.deepEqual(ready.rejected, []);
  const s = hb.status().workspaces[0];
  assert.equal(s.rejected, false);
  assert.equal(s.state, "registering");
  assert.ok(s.beatsAccepted >= 3, "it is still served");
  assert.ok(!events.includes("rejected"), events.join());
  assert.ok(
    lines.some((l) =>
      /^warning: register of workspace ws-1 was refused with HTTP 401, although the platform accepted its token before/
        .test(l)
    ),
    lines.join("\n"),
  );
  // Slowly: one refused retry in the minute, the next 5 minutes later.
  const registers = () =>
    fetch.seen.filter((r) => r.path === "/registry/register").length;
  assert.equal(registers(), 2);
  await captureLogs(() => clock.advance(299_000));
  assert.equal(registers(), 3);
  assert.equal(hb.status().workspaces[0].rejected, false);
  await hb.stop();
});

test("sleep and wake: the wall clock jumps 2 h while the monotonic one does not; every workspace beats at once (a fleet spread over under 2 s), and none registers again", async () => {
  const clock = new FakeClock();
  let slept = 0;
  const fetch = fakeFetch(ok, clock.now);
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: Array.from(
      { length: 50 },
      (_, i) => ({ id: `ws-${i}`, token: `tok-${i}-000000` }),
    ),
    intervalMs: 20_000,
    clock,
    wallClock: () => 1_700_000_000_000 + clock.now() + slept,
    fetch,
    random: () => 0.5,
  });
  const lines = await captureLogs(async (records) => {
    await clock.advanceFast(41_000);
    const registersBefore = fetch.seen.filter((r) =>
      r.path === "/registry/register"
    ).length;
    assert.equal(registersBefore, 50);
    slept = 2 * 3600_000; // suspended; the monotonic clock stood still
    const wokeAt = clock.now();
    await clock.advanceFast(4_000); // the watchdog looks every 2 s
    const after = fetch.seen.filter((r) => r.at > wokeAt);
    const beats = after.filter((r) => r.path === "/registry/heartbeat");
    const registers = after.filter((r) => r.path === "/registry/register");
    assert.equal(new Set(beats.map((r) => r.body.workspace_id)).size, 50);
    const first = Math.min(...beats.map((r) => r.at));
    const last = Math.max(...beats.map((r) => r.at));
    assert.ok(first - wokeAt <= 2_000, `first beat ${first - wokeAt} ms after`);
    assert.ok(last - first <= 2_000, `spread over ${last - first} ms`);
    // The gap (2 h) passed the stale window, but a register has side effects
    // a heartbeat has not: the first accepted beat brings each one back.
    assert.equal(registers.length, 0);
    return levelsAndTexts(records);
  });
  assert.ok(
    lines.some((l) =>
      /the machine slept for 7200 s: 50 workspace\(s\) beat now/.test(l)
    ),
    lines.join("\n"),
  );
  // status() counts the sleep: no "all is well" after two hours away.
  assert.ok(hb.status().workspaces.every((w) => w.sinceLastSuccessMs! < 5_000));
  assert.ok(hb.status().uptimeSeconds >= 7_200);
  await hb.stop();
});

test("sleep and wake with the platform unreachable: status() and metrics() count the time slept, not only the time awake", async () => {
  const clock = new FakeClock();
  let slept = 0;
  let down = false;
  const fetch = fakeFetch(
    () => down ? { error: new TypeError("network is unreachable") } : ok(),
    clock.now,
  );
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: [{ id: "ws-1", token: "tok-1-000000" }],
    clock,
    wallClock: () => 1_700_000_000_000 + clock.now() + slept,
    fetch,
  });
  await clock.advance(1_000);
  slept = 600_000;
  down = true; // woke up on a train
  await captureLogs(() => clock.advance(3_000));
  const s = hb.status().workspaces[0];
  assert.ok(s.consecutiveFailures >= 1, "the wake beat was sent, and failed");
  assert.ok(s.sinceLastSuccessMs! >= 600_000, `${s.sinceLastSuccessMs}`);
  assert.ok(hb.metrics().oldestAcceptedBeatAgeSeconds >= 600);
  await hb.stop();
});

test("sleep and wake against the emulator: the beat after the wake goes on a fresh connection", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": "tok-wake-000000" },
  });
  let slept = 0;
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: "tok-wake-000000" }],
    intervalMs: 60_000,
    wallClock: () => Date.now() + slept,
  });
  try {
    await waitFor(() =>
      hb.status().workspaces[0].beatsAccepted === 1 &&
      hb.status().workspaces[0].registered
    );
    const connections = platform.connections;
    const registers = platform.requestsTo("register").length;
    slept = 3600_000;
    await waitFor(
      () => hb.status().workspaces[0].beatsAccepted === 2,
      6_000,
      "the beat after the wake",
    );
    // No register after the gap: the beat alone brings the workspace back.
    assert.equal(platform.requestsTo("register").length, registers);
    assert.equal(platform.workspace("ws-1")!.status, "online");
    assert.ok(
      platform.connections > connections,
      `connections ${connections} → ${platform.connections}: the pooled one was reused`,
    );
  } finally {
    await hb.stop();
  }
});

test("hole: a workspace removed while its register answer was under way gets no registered event and no secret written", async () => {
  const clock = new FakeClock();
  const store = new MemorySecretStore();
  const fetch = (input: string | URL | Request) => {
    const path = new URL(String(input)).pathname;
    const body = path === "/registry/register"
      ? { status: "registered", platform_inbound_secret: "secret-gone-000" }
      : { status: "ok" };
    const ms = path === "/registry/register" ? 5_000 : 0;
    return new Promise<Response>((resolve) =>
      clock.setTimeout(() => resolve(Response.json(body)), ms)
    );
  };
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: [{ id: "stays", token: "tok-stays-0000" }],
    intervalMs: 20_000,
    secretStore: store,
    statePollEvery: 0,
    clock,
    fetch,
  });
  const registered: string[] = [];
  hb.addEventListener(
    "registered",
    (e) => registered.push((e as CustomEvent).detail.workspaceId),
  );
  await clock.advance(6_000);
  hb.addWorkspace({ id: "gone", token: "tok-gone-00000" });
  await clock.advance(1_000); // its register is under way
  assert.equal(hb.removeWorkspace("gone"), true);
  await clock.advance(10_000);
  assert.deepEqual(registered, ["stays"]);
  assert.deepEqual([...store.values["inbound-secret"].keys()], ["stays"]);
  assert.deepEqual(hb.status().workspaces.map((w) => w.workspaceId), ["stays"]);
  await hb.stop();
});

/**
 * A /state refusal and a register crossing: the register's lookup, a beat,
 * /state refused (sent with the configured token), the register answered
 * at 3 s (with a minted token, when `mint`), then the lookup of that /state
 * question at 6 s. With a mint, the platform has no live token before it
 * (beats are let through, /state refuses every token); without one, the
 * first /state is a blip.
 */
async function stateRefusedAcrossRegister(mint: boolean) {
  const clock = new FakeClock();
  const minted = "tok-minted-000001";
  const live = mint ? minted : "tok-old-000000";
  const seen: { path: string; at: number; token: string }[] = [];
  let lookups = 0;
  const fetch = (input: string | URL | Request, init?: RequestInit) => {
    const path = new URL(String(input)).pathname;
    const token = new Headers(init?.headers).get("authorization") ?? "";
    seen.push({ path, at: clock.now(), token });
    let status = 200;
    let body: unknown = { status: "ok" };
    let ms = 0;
    if (path === "/registry/register") {
      const first = seen.filter((r) => r.path === path).length === 1;
      body = {
        status: "registered",
        ...(first && mint ? { auth_token: minted } : {}),
      };
      ms = 3_000;
    } else if (path.endsWith("/state")) {
      const ok = clock.now() >= 3_000 && token === `Bearer ${live}`;
      status = ok ? 200 : 401;
      body = ok
        ? { status: "online", paused: false, deleted: false }
        : { error: "invalid token" };
    } else if (path.startsWith("/workspaces/")) {
      lookups++;
      body = { id: "ws-1", status: "online" };
      ms = lookups === 2 ? 6_000 : 0; // the /state question's lookup
    }
    return new Promise<Response>((resolve) =>
      clock.setTimeout(() => resolve(Response.json(body, { status })), ms)
    );
  };
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: [{ id: "ws-1", token: "tok-old-000000" }],
    intervalMs: 20_000,
    statePollEvery: 1,
    clock,
    fetch,
    random: () => 0.5,
  });
  await captureLogs(async () => {
    await clock.advance(30_000);
  });
  await hb.stop();
  const order = seen.map((r) => r.path).join("\n");
  // The race took place: /state refused with the configured token before
  // the register was answered.
  const states = seen.filter((r) => r.path.endsWith("/state"));
  assert.equal(states[0].token, "Bearer tok-old-000000");
  assert.ok(states[0].at < 3_000, order);
  // The next /state goes with the live token: the dropped question is
  // asked again at once (the lookup answered at 6 s), not at the next poll.
  assert.equal(states.at(-1)!.token, `Bearer ${live}`);
  assert.ok(
    states.some((r) => r.token === `Bearer ${live}` && r.at < 10_000),
    seen.map((r) => `${r.at} ${r.path} ${r.token}`).join("\n"),
  );
  assert.equal(hb.status().workspaces.length, 1);
  return {
    registers: seen.filter((r) => r.path === "/registry/register"),
    order,
  };
}

test("a /state refusal sent with the token a register then replaced by a mint is out of date: no second register", async () => {
  const { registers, order } = await stateRefusedAcrossRegister(true);
  assert.equal(registers.length, 1, order);
});

test("a /state refusal from before the first register was accepted is out of date: no second register", async () => {
  const { registers, order } = await stateRefusedAcrossRegister(false);
  assert.equal(registers.length, 1, order);
});

test("a /state that keeps refusing the token while its beats are accepted: one register for that token, then one warning naming what to check, and no register after every poll", async () => {
  const cases = [
    {
      refusal: { status: 401, body: { error: "invalid workspace auth token" } },
      says: /keeps refusing its token \(HTTP 401\).*Tokens tab/,
    },
    {
      refusal: {
        status: 403,
        body: { error: "org token not authorized for this workspace's org" },
      },
      says: /keeps refusing its token \(HTTP 403, .*org token of another org/,
    },
  ];
  for (const { refusal, says } of cases) {
    let accepted = false;
    const { clock, fetch, hb } = setup(
      (req) =>
        req.path.endsWith("/state")
          ? accepted
            ? {
              status: 200,
              body: { status: "online", paused: false, deleted: false },
            }
            : refusal
          : req.path.startsWith("/workspaces/")
          ? { status: 200, body: { id: "ws-1", status: "online" } }
          : req.path === "/registry/register"
          ? { status: 200, body: { status: "registered" } }
          : ok(),
      { statePollEvery: 1 },
    );
    const registers = () =>
      fetch.seen.filter((r) => r.path === "/registry/register").length;
    const lines = await captureLogs(async (records) => {
      await clock.advance(300_000); // 15 beats, each followed by a poll
      const all = levelsAndTexts(records);
      const warned = all.filter((l) => /keeps refusing/.test(l));
      assert.equal(registers(), 2, all.join("\n")); // the first, and one more
      assert.equal(warned.length, 1, all.join("\n"));
      assert.match(warned[0], /^warning: /);
      assert.match(warned[0], says);
      assert.ok(
        hb.status().workspaces[0].beatsAccepted >= 15,
        "the beats go on",
      );
      // /state accepts the token once: a later refusal is a new one, worth
      // one register again.
      accepted = true;
      await clock.advance(20_000);
      accepted = false;
      await clock.advance(100_000);
      assert.equal(registers(), 3, levelsAndTexts(records).join("\n"));
      return levelsAndTexts(records);
    });
    await hb.stop();
    assert.ok(!lines.some((l) => /^error/.test(l)), lines.join("\n"));
  }
});

test("a heartbeat answered with a redirect is one error as the trouble starts (and again after it healed), not one on every beat", async () => {
  let redirect = true;
  const { clock, hb, beats } = setup((req) =>
    req.path === "/registry/heartbeat"
      ? redirect
        ? { status: 302, headers: { location: "https://login.example/sso" } }
        : ok()
      : req.path.startsWith("/workspaces/")
      ? { status: 200, body: { id: "ws-1", status: "online" } }
      : { status: 200, body: { status: "registered" } }
  );
  const lines = await captureLogs(async (records) => {
    await clock.advance(200_000);
    assert.ok(beats().length >= 10, `${beats().length} beats`);
    const said = () =>
      levelsAndTexts(records).filter((l) => /redirect to https/.test(l));
    assert.equal(said().length, 1, said().join("\n"));
    assert.match(said()[0], /^error: .*PLATFORM_URL.*\(said once\)/);
    redirect = false;
    await clock.advance(40_000);
    redirect = true;
    await clock.advance(100_000);
    assert.equal(said().length, 2, said().join("\n"));
    return levelsAndTexts(records);
  });
  await hb.stop();
  assert.ok(lines.length > 0);
});
