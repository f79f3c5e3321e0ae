import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type HeartbeatHandle,
  type HeartbeatOptions,
  startHeartbeat,
} from "../mod.ts";
import { FakeClock } from "./helpers/fake_clock.ts";
import {
  type FakeAnswer,
  fakeFetch,
  type SeenRequest,
} from "./helpers/fake_fetch.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";
import { FAKE_URL, fakeFleet, ok } from "./helpers/fake_fleet.ts";

const URL_ = FAKE_URL;

function setup(
  answer: (req: SeenRequest) => FakeAnswer,
  extra: Partial<HeartbeatOptions> = {},
) {
  return fakeFleet(answer, extra);
}

async function done(hb: HeartbeatHandle) {
  await hb.stop();
}

test("the first beat follows the lookup and register at once, then beats come on a fixed 20 s grid", async () => {
  const { clock, fetch, hb, beats } = setup(ok);
  await clock.advance(0);
  // Look before you register: GET /workspaces/:id, then the register.
  assert.deepEqual(
    fetch.seen.slice(0, 2).map((r) => r.path),
    ["/workspaces/ws-1", "/registry/register"],
  );
  assert.equal(beats().length, 1);
  assert.equal(beats()[0].at, 0);
  await clock.advance(100_000);
  assert.deepEqual(beats().map((b) => b.at), [
    0,
    20_000,
    40_000,
    60_000,
    80_000,
    100_000,
  ]);
  await done(hb);
});

test("slow answers do not make the schedule drift", async () => {
  const clock = new FakeClock();
  const seen: number[] = [];
  // A fetch that takes 3 s of clock time for every beat.
  const fetch = (input: string | URL | Request) => {
    const path = new URL(String(input)).pathname;
    if (path === "/registry/heartbeat") seen.push(clock.now());
    return new Promise<Response>((resolve) =>
      clock.setTimeout(() => resolve(Response.json({ status: "ok" })), 3_000)
    );
  };
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: [{ id: "ws-1", token: "t" }],
    clock,
    fetch,
  });
  await clock.advance(3_000 + 200_000);
  // Beats do not wait on register (which takes 3 s here): beat 0 goes at 0,
  // and every beat stays on the 20 s grid.
  assert.deepEqual(seen.slice(0, 5), [0, 20_000, 40_000, 60_000, 80_000]);
  assert.equal(seen.at(-1), 200_000);
  await done(hb);
});

test("never two beats in flight for one workspace", async () => {
  const clock = new FakeClock();
  let inFlight = 0;
  let maxInFlight = 0;
  let beats = 0;
  // Every beat hangs for 25 s, longer than the interval (as if the timeout were ignored).
  const fetch = (input: string | URL | Request, init?: RequestInit) => {
    const path = new URL(String(input)).pathname;
    if (path !== "/registry/heartbeat") {
      return Promise.resolve(Response.json({ status: "online" }));
    }
    beats++;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    return new Promise<Response>((resolve, reject) => {
      const timer = clock.setTimeout(() => {
        inFlight--;
        resolve(Response.json({ status: "ok" }));
      }, 25_000);
      init?.signal?.addEventListener("abort", () => {
        clock.clearTimeout(timer);
        inFlight--;
        reject(init.signal!.reason);
      });
    });
  };
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: [{ id: "ws-1", token: "t" }],
    clock,
    fetch,
  });
  await clock.advance(200_000);
  assert.equal(maxInFlight, 1);
  assert.ok(beats >= 5, `beats: ${beats}`);
  await done(hb);
});

test("by default a fleet beats in evenly spaced groups of at most 8, each on an exact period", async () => {
  const clock = new FakeClock();
  const fetch = fakeFetch(ok, clock.now);
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: Array.from(
      { length: 20 },
      (_, i) => ({ id: `ws-${i}`, token: "t" }),
    ),
    clock,
    fetch,
  });
  await clock.advance(59_999);
  const beats = fetch.seen.filter((r) => r.path === "/registry/heartbeat");
  assert.equal(beats.length, 60);
  // Three groups (ceil(20 / 8)) a third of the interval apart: 7, 7 and 6 beats.
  const perInstant = new Map<number, number>();
  for (const b of beats) perInstant.set(b.at, (perInstant.get(b.at) ?? 0) + 1);
  assert.deepEqual(
    [...perInstant].slice(0, 3),
    [[0, 7], [6_666, 7], [13_333, 6]],
  );
  // Every workspace beats exactly every 20 s.
  const times = new Map<string, number[]>();
  for (const b of beats) {
    const id = String(b.body.workspace_id);
    times.set(id, [...(times.get(id) ?? []), b.at]);
  }
  assert.equal(times.size, 20);
  for (const [id, at] of times) {
    assert.deepEqual(
      at.slice(1).map((t, i) => t - at[i]),
      [20_000, 20_000],
      id,
    );
  }
  await done(hb);
});

test("a fleet beating over 256 times a second gets bigger groups: at most 32 wake-ups a second", async () => {
  const clock = new FakeClock();
  const fetch = fakeFetch(ok, clock.now);
  // 600 workspaces at 1 s: 600 beats a second, groups of ceil(600 / 32) = 19.
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: Array.from(
      { length: 600 },
      (_, i) => ({ id: `ws-${i}`, token: "t" }),
    ),
    intervalMs: 1_000,
    clock,
    fetch,
  });
  await clock.advance(999);
  const beats = fetch.seen.filter((r) => r.path === "/registry/heartbeat");
  assert.equal(beats.length, 600);
  const perInstant = new Map<number, number>();
  for (const b of beats) perInstant.set(b.at, (perInstant.get(b.at) ?? 0) + 1);
  assert.equal(perInstant.size, 32);
  assert.equal(Math.max(...perInstant.values()), 19);
  await done(hb);
});

test("with beatGroupSize 1, a fleet's beats spread one by one over the interval", async () => {
  const clock = new FakeClock();
  const fetch = fakeFetch(ok, clock.now);
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: Array.from(
      { length: 4 },
      (_, i) => ({ id: `ws-${i}`, token: "t" }),
    ),
    beatGroupSize: 1,
    clock,
    fetch,
  });
  await clock.advance(39_999);
  const beats = fetch.seen.filter((r) => r.path === "/registry/heartbeat");
  assert.deepEqual(
    beats.map((b) => [b.body.workspace_id, b.at]),
    [
      ["ws-0", 0],
      ["ws-1", 5_000],
      ["ws-2", 10_000],
      ["ws-3", 15_000],
      ["ws-0", 20_000],
      ["ws-1", 25_000],
      ["ws-2", 30_000],
      ["ws-3", 35_000],
    ],
  );
  await done(hb);
});

test("registration runs with bounded concurrency", async () => {
  const clock = new FakeClock();
  let running = 0;
  let peak = 0;
  let registers = 0;
  const fetch = (input: string | URL | Request) => {
    const path = new URL(String(input)).pathname;
    if (path !== "/registry/register") {
      return Promise.resolve(Response.json({ status: "ok" }));
    }
    registers++;
    running++;
    peak = Math.max(peak, running);
    return new Promise<Response>((resolve) =>
      clock.setTimeout(() => {
        running--;
        resolve(Response.json({ status: "registered" }));
      }, 100)
    );
  };
  const hb = startHeartbeat({
    platformUrl: URL_,
    workspaces: Array.from(
      { length: 50 },
      (_, i) => ({ id: `ws-${i}`, token: "t" }),
    ),
    registerConcurrency: 4,
    clock,
    fetch,
  });
  await clock.advance(5_000);
  const ready = await hb.ready;
  assert.equal(registers, 50);
  assert.equal(peak, 4);
  assert.equal(ready.registered.length, 50);
  await done(hb);
});

test("after failures the next attempt comes sooner with backoff, within the retry budget, then on the grid", async () => {
  let failing = true;
  const { clock, hb, beats } = setup(
    (req) =>
      req.path === "/registry/heartbeat" && failing
        ? { status: 503, body: { error: "down" } }
        : ok(),
    { random: () => 0.999 },
  );
  await captureLogs(async () => {
    await clock.advance(0);
    await clock.advance(120_000);
  });
  const times = beats().map((b) => b.at);
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  // Full jitter at its top draw: 1 s, 2 s, while the budget (2 retries to
  // start with) lasts; then the grid slot, with about one early retry per
  // interval earned back (10 % of a beat plus one per interval for the fleet).
  assert.deepEqual(gaps.slice(0, 2), [999, 1998]);
  assert.equal(times[3], 20_000, "budget spent: the next try is the grid slot");
  // Never silent for much more than an interval (a retry may stand in for the
  // grid slot just after it), never more than two tries in one interval.
  assert.ok(gaps.every((g) => g <= 21_000), JSON.stringify(times));
  for (let start = 20_000; start < 120_000; start += 20_000) {
    const inWindow = times.filter((t) => t >= start && t < start + 20_000);
    assert.ok(
      inWindow.length <= 2,
      `${inWindow.length} beats in [${start}, +20 s)`,
    );
  }
  // The platform comes back: a beat lands within one interval, then the grid resumes.
  failing = false;
  const recoveredAt = clock.now();
  await clock.advance(20_000);
  const after = beats().filter((b) => b.at > recoveredAt);
  assert.ok(after.length >= 1 && after[0].at - recoveredAt <= 20_000);
  await clock.advance(60_000);
  const status = hb.status().workspaces[0];
  assert.equal(status.consecutiveFailures, 0);
  const tail = beats().slice(-3).map((b) => b.at % 20_000);
  assert.deepEqual(tail, [0, 0, 0], "back on the 20 s grid");
  await done(hb);
});

test("Retry-After is honoured up to the interval", async () => {
  let answer: FakeAnswer = { status: 429, headers: { "retry-after": "7" } };
  const { clock, hb, beats } = setup(
    (req) => req.path === "/registry/heartbeat" ? answer : ok(),
    {
      random: () => 0,
    },
  );
  await captureLogs(async () => {
    await clock.advance(0);
    answer = { status: 503, headers: { "retry-after": "3600" } };
    await clock.advance(7_000);
    assert.deepEqual(beats().map((b) => b.at), [0, 7_000]);
    await clock.advance(20_000);
  });
  assert.deepEqual(beats().map((b) => b.at), [0, 7_000, 27_000]);
  await done(hb);
});

test("a timer resumed late (laptop sleep) sends one beat at once, not a burst", async () => {
  const { clock, hb, beats } = setup(ok);
  await clock.advance(20_000);
  assert.equal(beats().length, 2);
  clock.jump(185_000); // asleep: now 205 s, slots 40..200 s missed
  await clock.advance(0);
  assert.deepEqual(beats().map((b) => b.at), [0, 20_000, 205_000]);
  await clock.advance(15_000);
  // Back on the grid at 220 s, not a beat a moment after the late one.
  assert.deepEqual(beats().map((b) => b.at), [0, 20_000, 205_000, 220_000]);
  await done(hb);
});

test("auth failures escalate at 3 and every 20 after, and a success resets the count", async () => {
  let status = 401;
  const { clock, hb } = setup((req) =>
    req.path === "/registry/heartbeat"
      ? (status === 200
        ? ok()
        : { status, body: { error: "invalid workspace auth token" } })
      : ok()
  );
  const escalations: number[] = [];
  hb.addEventListener(
    "auth-escalation",
    (e) => escalations.push((e as CustomEvent).detail.count),
  );
  const lines = await captureLogs(async (records) => {
    await clock.advance(0);
    await clock.advance(22 * 20_000); // beats 1..23
    const s = hb.status().workspaces[0];
    assert.equal(s.authFailures, 23);
    assert.equal(s.lastStatus, 401);
    status = 503; // a non-auth failure leaves the count alone
    await clock.advance(20_000);
    assert.equal(hb.status().workspaces[0].authFailures, 23);
    status = 200;
    await clock.advance(20_000);
    assert.equal(hb.status().workspaces[0].authFailures, 0);
    return levelsAndTexts(records);
  });
  assert.deepEqual(escalations, [3, 23]);
  const auth = lines.filter((l) => /auth failure|REVOKED/.test(l));
  assert.equal(auth.filter((l) => l.startsWith("warning")).length, 2);
  assert.equal(auth.filter((l) => l.startsWith("error")).length, 2);
  assert.match(
    auth[2],
    /^error: 3 consecutive heartbeat auth failures \(HTTP 401\).*ws-1.*Tokens tab/,
  );
  assert.match(auth[3], /^error: 23 consecutive/);
  // After 403 too.
  status = 403;
  await captureLogs(async () => {
    await clock.advance(60_000);
  });
  assert.deepEqual(escalations, [3, 23, 3]);
  await done(hb);
});

test("a token function is asked before every request, so a rotated token is used", async () => {
  let token = "old";
  let asked = 0;
  const { clock, fetch, hb } = setup(ok, {
    workspaces: [{
      id: "ws-1",
      token: () => {
        asked++;
        return Promise.resolve(token);
      },
    }],
  });
  await clock.advance(20_000);
  token = "new";
  await clock.advance(20_000);
  // The lookup, register, beat, the state question after the first
  // accepted beat, beat; then the rotated token.
  assert.deepEqual(
    fetch.seen.map((r) => `${r.path} ${r.headers.get("authorization")}`),
    [
      "/workspaces/ws-1 Bearer old",
      "/registry/register Bearer old",
      "/registry/heartbeat Bearer old",
      "/workspaces/ws-1/state Bearer old",
      "/registry/heartbeat Bearer old",
      "/registry/heartbeat Bearer new",
    ],
  );
  assert.equal(asked, 6, "asked once per request");
  await done(hb);
});

test("live stats go into each beat, uptime counts whole seconds, bad fields fall back to zeros", async () => {
  let n = 0;
  const { clock, hb, beats } = setup(ok, {
    stats: () => {
      n++;
      return n === 2
        ? {
          error_rate: Number.NaN,
          active_tasks: -1,
          current_task: 5 as unknown as string,
        }
        : {
          error_rate: 0.25,
          sample_error: "boom",
          active_tasks: 2,
          current_task: "indexing",
          runtime_state: "wedged",
          monthly_spend: 123,
        };
    },
  });
  await clock.advance(45_500);
  // Every beat carries the agent card, as the platform's own runtime sends it.
  const bodies = beats().map((b) => {
    const { agent_card, ...rest } = b.body;
    assert.deepEqual(agent_card, { name: "molecule-mcp-ws-1", skills: [] });
    return rest;
  });
  assert.deepEqual(bodies[0], {
    workspace_id: "ws-1",
    error_rate: 0.25,
    sample_error: "boom",
    active_tasks: 2,
    uptime_seconds: 0,
    current_task: "indexing",
    runtime_state: "wedged",
    monthly_spend: 123,
  });
  assert.deepEqual(bodies[1], {
    workspace_id: "ws-1",
    error_rate: 0,
    sample_error: "",
    active_tasks: 0,
    uptime_seconds: 20,
    current_task: "",
    runtime_state: "",
    monthly_spend: 0,
  });
  assert.equal(bodies[2].uptime_seconds, 40);
  await done(hb);
});

test("without a stats function a beat carries the reference's zeros", async () => {
  const { clock, hb, beats } = setup(ok);
  await clock.advance(0);
  assert.deepEqual(beats()[0].body, {
    agent_card: { name: "molecule-mcp-ws-1", skills: [] },
    workspace_id: "ws-1",
    error_rate: 0,
    sample_error: "",
    active_tasks: 0,
    uptime_seconds: 0,
    current_task: "",
    runtime_state: "",
    monthly_spend: 0,
  });
  await done(hb);
});

test("a stats function that throws is warned about once and zeros are sent", async () => {
  const { clock, hb, beats } = setup(ok, {
    stats: () => {
      throw new Error("stats broke");
    },
  });
  const lines = await captureLogs(async (records) => {
    await clock.advance(40_000);
    return levelsAndTexts(records);
  });
  assert.equal(beats().length, 3);
  assert.equal(lines.filter((l) => l.includes("stats broke")).length, 1);
  await done(hb);
});

test("stop clears every timer and resolves; nothing runs afterwards", async () => {
  const { clock, hb, beats } = setup(ok);
  await clock.advance(20_000);
  await hb.stop();
  assert.equal(clock.timers.length, 0);
  await clock.advance(100_000);
  assert.equal(beats().length, 2);
  assert.equal(hb.status().stopped, true);
});

test("startHeartbeat without a platform URL (a missing PLATFORM_URL in a user's script) is one TypeError naming platformUrl, and a non-UUID warning names the ids in one value", async () => {
  const noUrl = { workspaces: [{ id: "ws-1", token: "tok-ws-1-000" }] };
  for (const platformUrl of [undefined, "", "  "]) {
    assert.throws(
      () =>
        startHeartbeat({
          ...noUrl,
          platformUrl: platformUrl as unknown as string,
        }),
      (e: unknown) =>
        e instanceof TypeError &&
        /no platform URL for workspace ws-1: set platformUrl/.test(e.message),
    );
  }
  const clock = new FakeClock();
  const warning = await captureLogs(async (records) => {
    const hb = startHeartbeat({
      platformUrl: FAKE_URL,
      workspaces: [
        "a",
        "b",
        "5F0C9A7E-1111-4222-8333-444455556666",
        "d",
        "5f0c9a7e-1111-4222-8333-444455556666",
      ].map((id) => ({
        id,
        token: `tok-${id}-000`,
      })),
      clock,
      fetch: () => new Promise<Response>(() => {}),
    });
    await hb.stop();
    return records.find((r) =>
      r.message.join("").includes("not lower-case UUIDs")
    );
  });
  assert.ok(warning, "the warning");
  assert.equal(
    warning.properties.ids,
    "a, b, 5F0C9A7E-1111-4222-8333-444455556666, and 1 more",
  );
  assert.equal("more" in warning.properties, false);
});

test("a token in the stats' texts (a tracker's sample error quoting it) is masked in the beat, in status() and in the warning when stats throw", async () => {
  const token = "tok-secret-stats-0123456789";
  let throwIt = false;
  const { clock, hb, beats } = fakeFleet(ok, {
    stats: () => {
      if (throwIt) throw new Error(`stats failed with Bearer ${token}`);
      return {
        sample_error: `upstream refused Bearer ${token}\n  at call()`,
        current_task: `calling with ${token}`,
      };
    },
  }, token);
  const logs = await captureLogs(async (records) => {
    await clock.advance(25_000);
    throwIt = true;
    await clock.advance(20_000);
    await hb.stop();
    return levelsAndTexts(records);
  });
  const first = beats()[0].body;
  // Masked, its line breaks kept (a traceback stays one).
  assert.equal(
    first.sample_error,
    "upstream refused Bearer [redacted]\n  at call()",
  );
  assert.equal(first.current_task, "calling with [redacted]");
  assert.doesNotMatch(JSON.stringify(hb.status()), new RegExp(token));
  assert.ok(logs.some((l) => /stats function threw/.test(l)), logs.join("\n"));
  assert.doesNotMatch(logs.join("\n"), new RegExp(token));
});

test('a token function that returns no string is a failure of that function, never the token "undefined"; a token that is neither a string nor a function is a TypeError at start', async () => {
  const { clock, hb, fetch } = fakeFleet(ok, {
    workspaces: [{
      id: "ws-1",
      token: (() => undefined) as unknown as () => string,
    }],
  });
  await clock.advance(25_000);
  await hb.stop();
  assert.equal(fetch.seen.length, 0, "nothing sent without a token");
  for (const token of [undefined, null, 42]) {
    assert.throws(
      () =>
        startHeartbeat({
          platformUrl: FAKE_URL,
          workspaces: [{ id: "ws-1", token: token as unknown as string }],
        }),
      (e: unknown) =>
        e instanceof TypeError &&
        /the token of workspace ws-1 must be a string or a function/.test(
          e.message,
        ),
    );
  }
  assert.throws(
    () =>
      startHeartbeat({
        platformUrl: FAKE_URL,
        workspaces: [null as unknown as { id: string; token: string }],
      }),
    (e: unknown) => e instanceof TypeError && /workspace id/.test(e.message),
  );
});

test("number options that are not positive (NaN from an unset variable, 0, negative) and a platform URL that is not http(s) are TypeErrors naming them", () => {
  const workspaces = [{ id: "ws-1", token: "tok-1" }];
  for (
    const name of [
      "intervalMs",
      "timeoutMs",
      "beatGroupSize",
      "registerConcurrency",
      "maxInFlight",
      "staleWindowMs",
    ]
  ) {
    for (const value of [NaN, 0, -1, Infinity]) {
      assert.throws(
        () =>
          startHeartbeat({ platformUrl: FAKE_URL, workspaces, [name]: value }),
        (e: unknown) =>
          e instanceof TypeError &&
          e.message === `${name} must be a positive number, not ${value}`,
        `${name}: ${value}`,
      );
    }
  }
  for (const platformUrl of ["not a url", "ftp://platform.test", "http://"]) {
    assert.throws(
      () => startHeartbeat({ platformUrl, workspaces }),
      (e: unknown) =>
        e instanceof TypeError && /must be an http\(s\) URL/.test(e.message),
      platformUrl,
    );
  }
});

test("a token store that cannot be read when a token is refused is one warning saying so (not silence before 'regenerate it')", async () => {
  const { clock, hb } = fakeFleet(
    (req) =>
      req.path === "/registry/heartbeat"
        ? { status: 401, body: { error: "invalid workspace auth token" } }
        : ok(),
    {
      secretStore: {
        load: () => Promise.reject(new Error("EACCES: permission denied")),
        save: () => Promise.resolve(),
      },
    },
  );
  const logs = await captureLogs(async (records) => {
    await clock.advance(25_000);
    await hb.stop();
    return levelsAndTexts(records);
  });
  assert.ok(
    logs.some((l) =>
      /warning: the token store could not be read for ws-1.*EACCES/.test(l)
    ),
    logs.join("\n"),
  );
});

test("an outage's end is said: one line when beats are accepted again after failures; the lookup before register warns once per reason, not at every retry", async () => {
  let down = true;
  const { clock, hb, beats } = fakeFleet(() =>
    down ? { error: new TypeError("connection refused") } : ok()
  );
  const logs = await captureLogs(async (records) => {
    await clock.advance(120_000);
    down = false;
    await clock.advance(40_000);
    await hb.stop();
    return levelsAndTexts(records);
  });
  assert.ok(beats().length >= 6);
  const lookups = logs.filter((l) =>
    /^warning: .*is not registered yet/.test(l)
  );
  assert.equal(lookups.length, 1, logs.join("\n"));
  const recovered = logs.filter((l) => /accepted again/.test(l));
  assert.equal(recovered.length, 1, logs.join("\n"));
  assert.match(
    recovered[0],
    /^warning: heartbeat of ws-1 accepted again, after \d+ failed tries over 1[0-9]{2} s$/,
  );
});
