// Today's platform (issue 17), against the emulator that plays it: the
// token register issues, deletion noticed while heartbeats answer 200, a
// revoked token told apart, a register after a gap, one org's fleet under
// the rate limiter, strict integer fields, register's 400/409, and the
// wrapper's mcp_server_present.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  FileSecretStore,
  type HeartbeatOptions,
  MemorySecretStore,
  startHeartbeat,
} from "../mod.ts";
import { REGISTER_SLOW_RETRY_MS } from "../src/schedule/_register_workers.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { FakeClock } from "./helpers/fake_clock.ts";
import { type FakeAnswer, fakeFetch } from "./helpers/fake_fetch.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";
import { runScript, startScript } from "./helpers/runtime.ts";
import { scratch } from "./helpers/scratch.ts";
import { sleep, waitFor } from "./helpers/wait.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const OLD = "configured-token-0123456789";

test("an issued token: the next beat uses it, it is stored 0600 in .auth_token, one info line says where (never the token), the issued-token event names the place", async () => {
  await using dir = await scratch("molecule-today-");
  // A workspace with no live token: its first register mints one.
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { ws: null },
  });
  const store = new FileSecretStore({ dir: dir.path });
  const issued: unknown[] = [];
  const lines = await captureLogs(async (records) => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: "ws", token: OLD }],
      intervalMs: 100,
      timeoutMs: 2_000,
      secretStore: store,
    });
    hb.addEventListener(
      "issued-token",
      (e) => issued.push((e as CustomEvent).detail),
    );
    try {
      await waitFor(() => issued.length === 1, 5_000, "the issued-token event");
      const minted = platform.workspace("ws")!.minted;
      assert.deepEqual(minted, ["issued-ws"]);
      assert.deepEqual(platform.liveTokens("ws"), ["issued-ws"]);
      // From now on only the minted token works: accepted beats prove it is used.
      const before = platform.requestsTo("heartbeat").length;
      await waitFor(() =>
        platform.requestsTo("heartbeat").length >= before + 3
      );
      const after = platform.requestsTo("heartbeat").slice(before);
      assert.ok(after.every((r) => r.status === 200 && r.authorized));
      assert.equal(hb.status().workspaces[0].authFailures, 0);
    } finally {
      await hb.stop();
    }
    return levelsAndTexts(records);
  });
  const path = join(dir.path, ".auth_token");
  assert.deepEqual(issued, [{ workspaceId: "ws", storedAt: path }]);
  assert.equal(await readFile(path, "utf8"), "issued-ws");
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const info = lines.filter((l) => /issued a new token/.test(l));
  assert.equal(info.length, 1, lines.join("\n"));
  assert.ok(info[0].includes(path));
  assert.ok(!lines.some((l) => l.includes("issued-ws")), "never the token");
});

test("a restart with the stale configured token recovers through the stored one, before anything is escalated", async () => {
  await using dir = await scratch("molecule-today-");
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { ws: null },
  });
  const run = async () => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: "ws", token: OLD }],
      intervalMs: 100,
      timeoutMs: 2_000,
      secretStore: new FileSecretStore({ dir: dir.path, perWorkspace: true }),
    });
    const events: string[] = [];
    for (const type of ["rejected", "auth-escalation", "issued-token"]) {
      hb.addEventListener(type, () => events.push(type));
    }
    await waitFor(() => hb.status().workspaces[0].beatsAccepted >= 3);
    const ready = await hb.ready;
    await hb.stop();
    return { ready, events, status: hb.status().workspaces[0] };
  };
  const first = await run();
  assert.deepEqual(first.events, ["issued-token"]);
  assert.equal(
    await readFile(join(dir.path, ".auth_token.ws"), "utf8"),
    "issued-ws",
  );
  // The same configuration again: its token was replaced by the issued one.
  const lines = await captureLogs(async (records) => {
    const second = await run();
    assert.deepEqual(second.ready.registered, ["ws"]);
    assert.deepEqual(second.events, []);
    assert.equal(second.status.state, "beating");
    return levelsAndTexts(records);
  });
  assert.ok(
    lines.some((l) =>
      /token of ws was refused: trying the token stored in .*\.auth_token\.ws/
        .test(l)
    ),
    lines.join("\n"),
  );
  assert.ok(!lines.some((l) => /^error/.test(l)), lines.join("\n"));
  assert.deepEqual(platform.workspace("ws")!.minted, ["issued-ws"]);
});

test("a cleanup revoked every token (heartbeats still let through): /state refuses, the lookup says it exists, a register gets a new token", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { ws: OLD },
  });
  const store = new MemorySecretStore();
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws", token: OLD }],
    intervalMs: 100,
    timeoutMs: 2_000,
    statePollEvery: 3,
    secretStore: store,
  });
  try {
    await waitFor(() => hb.status().workspaces[0].beatsAccepted >= 2);
    platform.revokeAll("ws");
    await waitFor(
      () => store.values["auth-token"].get("ws") === "issued-ws",
      5_000,
    );
    const before = platform.requestsTo("state").length;
    await waitFor(() => platform.requestsTo("state").length >= before + 1);
    assert.equal(platform.requestsTo("state").at(-1)!.status, 200);
    assert.ok(platform.requestsTo("workspace").every((r) => r.status === 200));
    assert.equal(hb.status().workspaces[0].deleted, false);
  } finally {
    await hb.stop();
  }
});

test("deleted while its heartbeats answer 200: noticed within one state poll (the deleted event), nothing more sent", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { gone: OLD },
  });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "gone", token: OLD }],
    intervalMs: 100,
    timeoutMs: 2_000,
    statePollEvery: 4,
  });
  const deleted: unknown[] = [];
  hb.addEventListener(
    "deleted",
    (e) => deleted.push((e as CustomEvent).detail),
  );
  try {
    await captureLogs(async () => {
      await waitFor(() => hb.status().workspaces[0].beatsAccepted >= 5);
      platform.remove("gone", "hard");
      const at = platform.requestsTo("heartbeat").length;
      await waitFor(() => deleted.length === 1, 5_000, "the deleted event");
      const beats = platform.requestsTo("heartbeat").slice(at);
      // Within one poll: at most the 4 beats of one poll period (+1 under way).
      assert.ok(beats.length <= 5, `${beats.length} beats before`);
      assert.ok(beats.every((r) => r.status === 200), "answered 200 meanwhile");
      assert.equal(platform.requestsTo("workspace").at(-1)!.status, 404);
    });
    assert.deepEqual(deleted, [{ workspaceId: "gone" }]);
    const n = platform.requests.length;
    await sleep(400);
    assert.ok(platform.requests.length <= n + 1);
  } finally {
    await hb.stop();
  }
});

test("command (mod.ts): a workspace deleted mid-run exits 4 with one error, while its heartbeats answered 200", async () => {
  await using dir = await scratch("molecule-today-");
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-deleted": OLD },
  });
  const run = startScript(MOD, {
    args: ["--interval", "0.2", "--state-poll", "3"],
    env: {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: "ws-deleted",
      MOLECULE_WORKSPACE_TOKEN: OLD,
      CONFIGS_DIR: dir.path,
    },
  });
  await waitFor(
    () => platform.requestsTo("heartbeat").length >= 3,
    10_000,
    "beats",
  );
  platform.remove("ws-deleted", "soft");
  const done = await run.done;
  assert.equal(done.code, 4, done.stderr);
  assert.match(done.stderr, /workspace ws-deleted was deleted on the platform/);
  assert.ok(!/REVOKED/.test(done.stderr), done.stderr);
  assert.equal(platform.requestsTo("workspace").at(-1)!.status, 410);
});

test("command (mod.ts): a minted token is stored in <configs dir>/.auth_token with mode 0600; --once with a deleted workspace exits 4", async () => {
  await using dir = await scratch("molecule-today-");
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-new": null, "ws-old": OLD },
  });
  const env = (id: string) => ({
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: id,
    MOLECULE_WORKSPACE_TOKEN: OLD,
    CONFIGS_DIR: dir.path,
  });
  const once = await runScript(MOD, { args: ["--once"], env: env("ws-new") });
  assert.equal(once.code, 0, once.stderr);
  const path = join(dir.path, ".auth_token");
  assert.equal(await readFile(path, "utf8"), "issued-ws-new");
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.ok(!once.stderr.includes("issued-ws-new"));
  platform.remove("ws-old", "hard");
  const gone = await runScript(MOD, { args: ["--once"], env: env("ws-old") });
  assert.equal(gone.code, 4, gone.stderr);
});

test("a gap longer than the stale window is followed by no register: the first accepted heartbeat brings the workspace back online", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { ws: OLD },
    staleAfterMs: 600,
  });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws", token: OLD }],
    intervalMs: 100,
    timeoutMs: 2_000,
    staleWindowMs: 600,
    statePollEvery: 0,
  });
  try {
    await waitFor(() => hb.status().workspaces[0].beatsAccepted >= 2);
    assert.equal(platform.requestsTo("register").length, 1);
    await captureLogs(async () => {
      platform.fail({ kind: "status", status: 503 }); // every endpoint
      await sleep(1_000); // an outage longer than the window
      assert.equal(platform.workspace("ws")!.livenessKey, false);
      assert.equal(platform.workspace("ws")!.status, "awaiting_agent");
      const accepted = hb.status().workspaces[0].beatsAccepted;
      platform.heal();
      await waitFor(
        () => hb.status().workspaces[0].beatsAccepted > accepted,
        3_000,
      );
    });
    // Nothing reads the liveness key: a register would only add side
    // effects (a degraded workspace forced online, a broadcast, a mint).
    assert.equal(platform.workspace("ws")!.status, "online");
    await sleep(400);
    assert.equal(platform.requestsTo("register").length, 1);
  } finally {
    await hb.stop();
  }
});

test("300 workspaces of one org, the org id set, the platform's rate limit (600 a minute): every beat accepted", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    orgId: "org-300",
    rateLimit: 600,
  });
  const n = 300;
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: Array.from(
      { length: n },
      (_, i) => ({ id: `ws-${i}`, token: `${OLD}-${i}` }),
    ),
    orgId: "org-300",
    intervalMs: 1_000,
    timeoutMs: 5_000,
  });
  try {
    await waitFor(
      () => hb.status().workspaces.every((w) => w.beatsAccepted >= 3),
      20_000,
      "three accepted beats each",
    );
  } finally {
    await hb.stop();
  }
  const beats = platform.requestsTo("heartbeat");
  assert.ok(beats.length >= 3 * n);
  // Stopping aborts the last beats under way (status 0): none was refused.
  assert.deepEqual(beats.filter((r) => r.status !== 200 && r.status !== 0), []);
  assert.ok(beats.every((r) => !r.rateLimited));
  assert.ok(platform.requestsTo("register").every((r) => r.status === 200));
  assert.ok(
    platform.requests.every((r) =>
      (r.path === "register" || r.path === "heartbeat") ===
        (r.orgId === undefined)
    ),
    "the org header on /workspaces/… only",
  );
});

test("429: the workspace waits as long as the body's retry_after says; several refused in one interval: one warning a minute with what the fleet needs and what the platform allows", async () => {
  const clock = new FakeClock();
  let limited = true;
  const fetch = fakeFetch(
    (req): FakeAnswer =>
      req.path === "/registry/heartbeat" && limited
        ? {
          status: 429,
          body: { error: "rate limit exceeded", retry_after: 7 },
          headers: { "X-RateLimit-Limit": "600" },
        }
        : { status: 200, body: { status: "ok" } },
    clock.now,
  );
  const hb = startHeartbeat({
    platformUrl: "http://platform.test",
    workspaces: Array.from(
      { length: 4 },
      (_, i) => ({ id: `ws-${i}`, token: `${OLD}-${i}` }),
    ),
    intervalMs: 20_000,
    beatGroupSize: 4,
    random: () => 0,
    clock,
    fetch,
  });
  const lines = await captureLogs(async (records) => {
    await clock.advance(0);
    await clock.advance(6_999);
    const beatsOf0 = () =>
      fetch.seen.filter((r) =>
        r.path === "/registry/heartbeat" && r.body.workspace_id === "ws-0"
      ).map((r) => r.at);
    assert.deepEqual(beatsOf0(), [0], "nothing before retry_after");
    await clock.advance(1);
    assert.deepEqual(beatsOf0(), [0, 7_000]);
    await clock.advance(73_000); // refused for 80 s
    limited = false;
    await clock.advance(40_000);
    return levelsAndTexts(records);
  });
  const warnings = lines.filter((l) => /refused with HTTP 429/.test(l));
  assert.equal(warnings.length, 2, warnings.join("\n")); // at 0 and after 60 s
  assert.match(
    warnings[0],
    /4 workspaces at 20 s need 13 requests a minute; the platform allows 600 a minute per bucket/,
  );
  assert.equal(
    hb.metrics().beatFailures.rate_limited,
    hb.metrics().beats.failed,
  );
  assert.ok(hb.metrics().beatFailures.rate_limited >= 8);
  await hb.stop();
});

test("a stats function returning fractions, negatives and infinities: the platform's integer fields stay integers, every beat accepted", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { ws: OLD },
    strictTypes: true,
  });
  const figures = [
    { active_tasks: 2.7, monthly_spend: 99.9, error_rate: 0.25 },
    { active_tasks: -3, monthly_spend: Number.POSITIVE_INFINITY },
    { active_tasks: Number.NaN, monthly_spend: 1e300, error_rate: -1 },
  ];
  let n = 0;
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws", token: OLD }],
    intervalMs: 100,
    timeoutMs: 2_000,
    stats: () => figures[n++ % figures.length],
  });
  try {
    await waitFor(() => hb.status().workspaces[0].beatsAccepted >= 4);
  } finally {
    await hb.stop();
  }
  const beats = platform.requestsTo("heartbeat").filter((r) => r.status !== 0);
  assert.ok(beats.every((r) => r.status === 200), "no 400 for a fraction");
  const bodies = beats.map((r) => r.body as Record<string, number>);
  assert.deepEqual(
    bodies.slice(0, 3).map((
      b,
    ) => [b.active_tasks, b.monthly_spend, b.error_rate]),
    [[2, 99, 0.25], [0, 0, 0], [0, Number.MAX_SAFE_INTEGER, 0]],
  );
  assert.ok(bodies.every((b) => Number.isInteger(b.uptime_seconds)));
});

test("register 400 and 409 are errors naming the platform's message, not tried again (beats carry the card, so the workspace stays online); 503 is transient", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { ws: OLD },
  });
  for (const status of [400, 409]) {
    const message = status === 400
      ? "workspace agent_card URL not allowed"
      : "workspace is being provisioned elsewhere";
    const remove = platform.fail({
      kind: "status",
      status,
      body: JSON.stringify({ error: message }),
    }, { path: "register" });
    const registersBefore = platform.requestsTo("register").length;
    const lines = await captureLogs(async (records) => {
      const hb = startHeartbeat({
        platformUrl: platform.url,
        workspaces: [{ id: "ws", token: OLD }],
        intervalMs: 100,
        timeoutMs: 2_000,
      });
      try {
        const ready = await hb.ready;
        assert.equal(ready.failed.length, 1);
        await waitFor(() => hb.status().workspaces[0].beatsAccepted >= 10);
      } finally {
        await hb.stop();
      }
      return levelsAndTexts(records);
    });
    remove();
    // A second at 100 ms beats, and still the one register.
    assert.equal(platform.requestsTo("register").length, registersBefore + 1);
    // The failed register marked the workspace; the card on the beats
    // cleared the mark: it is not left "degraded".
    assert.equal(platform.workspace("ws")!.status, "online");
    const errors = lines.filter((l) => l.startsWith("error"));
    assert.equal(errors.length, 1, lines.join("\n"));
    assert.match(
      errors[0],
      new RegExp(
        `refused with HTTP ${status}: ${message}.*configuration problem.*not tried again`,
      ),
    );
  }
  assert.equal(REGISTER_SLOW_RETRY_MS, 300_000);
  // 503 "cannot verify workspace credentials": a blip, retried soon.
  platform.fail({
    kind: "status",
    status: 503,
    body: JSON.stringify({
      error: "cannot verify workspace credentials",
      detail: "retryable.",
    }),
  }, { path: "register", times: 2 });
  const before = platform.requestsTo("register").length;
  await captureLogs(async () => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: "ws", token: OLD }],
      intervalMs: 100,
      timeoutMs: 2_000,
    });
    try {
      await waitFor(() => hb.status().workspaces[0].registered, 5_000);
    } finally {
      await hb.stop();
    }
  });
  assert.equal(platform.requestsTo("register").length, before + 3);
});

test("register 409 with a fake clock: never tried again; the beats go on", async () => {
  const clock = new FakeClock();
  const fetch = fakeFetch(
    (req): FakeAnswer =>
      req.path === "/registry/register"
        ? { status: 409, body: { error: "conflict" } }
        : { status: 200, body: { status: "ok" } },
    clock.now,
  );
  const hb = startHeartbeat(
    {
      platformUrl: "http://platform.test",
      workspaces: [{ id: "ws", token: OLD }],
      clock,
      fetch,
    } satisfies HeartbeatOptions,
  );
  const registers = () =>
    fetch.seen.filter((r) => r.path === "/registry/register").map((r) => r.at);
  await captureLogs(() => clock.advance(601_000));
  assert.deepEqual(registers(), [0]);
  assert.equal(hb.status().workspaces[0].beatsAccepted, 31);
  await hb.stop();
});

test("wrapper mode sends mcp_server_present: true; a workspace the lookup shows paused is not registered (a register would broadcast it online)", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { ws: OLD, resting: OLD },
  });
  platform.pause("resting");
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws", token: OLD }, { id: "resting", token: OLD }],
    intervalMs: 100,
    timeoutMs: 2_000,
    mcpServerPresent: true,
  });
  try {
    await waitFor(
      () =>
        hb.status().workspaces[1].paused &&
        platform.requestsTo("register", "ws").length > 0,
      5_000,
      "one paused, the other registered",
    );
    assert.equal(platform.workspace("ws")!.mcpServerPresent, true);
    assert.equal(
      (platform.requestsTo("register", "ws")[0].body as Record<string, unknown>)
        .mcp_server_present,
      true,
    );
    assert.equal(platform.requestsTo("register", "resting").length, 0);
    const beats = platform.requestsTo("heartbeat", "resting").length;
    await sleep(400);
    assert.ok(platform.requestsTo("heartbeat", "resting").length <= beats + 1);
  } finally {
    await hb.stop();
  }
});

test("command (mod.ts): a workspaces file entry with its own platform_url beats there, without the org header", async () => {
  await using dir = await scratch("molecule-today-");
  await using main = await startPlatformEmulator({
    uuidIds: false,
    orgId: "org-1",
  });
  await using other = await startPlatformEmulator({ uuidIds: false });
  const file = join(dir.path, "workspaces.json");
  await writeFile(
    file,
    JSON.stringify([
      { id: "here", token: `${OLD}-here` },
      { id: "there", token: `${OLD}-there`, platform_url: other.url },
    ]),
    { mode: 0o600 },
  );
  const run = startScript(MOD, {
    args: ["--workspaces-file", file, "--interval", "0.2", "--org-id", "org-1"],
    env: { PLATFORM_URL: main.url, CONFIGS_DIR: dir.path },
  });
  try {
    await waitFor(() => other.requestsTo("heartbeat", "there").length >= 2);
    await waitFor(() => main.requestsTo("heartbeat", "here").length >= 2);
    await waitFor(() => main.requestsTo("state", "here").length >= 1);
  } finally {
    run.kill("SIGTERM");
    await run.done;
  }
  assert.equal(
    main.requests.filter((r) => r.workspaceId === "there").length,
    0,
  );
  assert.ok(other.requests.every((r) => r.orgId === undefined));
  assert.ok(
    main.requestsTo("state").every((r) =>
      r.orgId === "org-1" && r.status === 200
    ),
  );
});

test("command (mod.ts): without PLATFORM_URL, a list whose every entry has its own platform_url is served; an entry without one is exit 2 naming it", async () => {
  await using dir = await scratch("molecule-today-");
  await using eu = await startPlatformEmulator({ uuidIds: false });
  await using us = await startPlatformEmulator({ uuidIds: false });
  const both = JSON.stringify([
    { id: "in-eu", token: `${OLD}-eu`, platform_url: eu.url },
    { id: "in-us", token: `${OLD}-us`, platform_url: `${us.url}/` },
  ]);
  const once = await runScript(MOD, {
    args: ["--once"],
    env: { MOLECULE_WORKSPACES: both, CONFIGS_DIR: dir.path },
  });
  assert.equal(once.code, 0, once.stderr);
  assert.equal(eu.requestsTo("heartbeat", "in-eu").length, 1);
  assert.equal(us.requestsTo("heartbeat", "in-us").length, 1);
  assert.equal(eu.requests.filter((r) => r.workspaceId === "in-us").length, 0);

  const oneShort = JSON.stringify([
    { id: "in-eu", token: `${OLD}-eu`, platform_url: eu.url },
    { id: "nowhere", token: `${OLD}-nowhere` },
  ]);
  const sentBefore = eu.requests.length;
  const bad = await runScript(MOD, {
    args: ["--once"],
    env: { MOLECULE_WORKSPACES: oneShort, CONFIGS_DIR: dir.path },
  });
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /PLATFORM_URL is not set/);
  assert.match(
    bad.stderr,
    /MOLECULE_WORKSPACES entry 1 \(id nowhere\) its own "platform_url"/,
  );
  assert.doesNotMatch(bad.stderr, /\n\s+at /, "no stack trace");
  assert.equal(eu.requests.length, sentBefore, "nothing sent");

  // An org id cannot go anywhere then: said, not silently dropped.
  const org = await runScript(MOD, {
    args: ["--once", "--org-id", "org-1"],
    env: { MOLECULE_WORKSPACES: both, CONFIGS_DIR: dir.path },
  });
  assert.equal(org.code, 0, org.stderr);
  assert.match(org.stderr, /the org id .* is not sent/);

  // One workspace has no list to carry a URL: PLATFORM_URL it is.
  const single = await runScript(MOD, {
    args: ["--once"],
    env: {
      WORKSPACE_ID: "in-eu",
      MOLECULE_WORKSPACE_TOKEN: `${OLD}-eu`,
      CONFIGS_DIR: dir.path,
    },
  });
  assert.equal(single.code, 2, single.stderr);
  assert.match(single.stderr, /PLATFORM_URL is not set/);
  assert.doesNotMatch(single.stderr, /instead of the workspaces list/);

  // --workspace-id beside a list whose entries carry their URLs: the flag
  // wins, and the error says why the list's URLs do not count.
  const flagWins = await runScript(MOD, {
    args: ["--once", "--workspace-id", "in-eu"],
    env: {
      MOLECULE_WORKSPACES: both,
      MOLECULE_WORKSPACE_TOKEN: `${OLD}-eu`,
      CONFIGS_DIR: dir.path,
    },
  });
  assert.equal(flagWins.code, 2, flagWins.stderr);
  assert.match(
    flagWins.stderr,
    /PLATFORM_URL is not set.*\(--workspace-id serves that one workspace instead of the workspaces list\)/,
  );
  assert.doesNotMatch(flagWins.stderr, /\n\s+at /, "no stack trace");
});

test("command (mod.ts): without PLATFORM_URL, a watched workspaces file that gains an entry without platform_url keeps serving what it had, with a warning", async () => {
  await using dir = await scratch("molecule-today-");
  await using eu = await startPlatformEmulator({ uuidIds: false });
  const file = join(dir.path, "workspaces.json");
  const first = [{ id: "in-eu", token: `${OLD}-eu`, platform_url: eu.url }];
  await writeFile(file, JSON.stringify(first), { mode: 0o600 });
  const run = startScript(MOD, {
    args: ["--workspaces-file", file, "--interval", "0.2"],
    env: { CONFIGS_DIR: dir.path },
  });
  try {
    await waitFor(() => eu.requestsTo("heartbeat", "in-eu").length >= 1);
    await writeFile(
      file,
      JSON.stringify([...first, { id: "lost", token: `${OLD}-lost` }]),
      { mode: 0o600 },
    );
    await waitFor(() => run.stderr().includes("keeping what it held before"));
    const before = eu.requestsTo("heartbeat", "in-eu").length;
    await waitFor(() => eu.requestsTo("heartbeat", "in-eu").length > before);
  } finally {
    run.kill("SIGTERM");
    await run.done;
  }
  assert.match(run.stderr(), /entry 1 \(id lost\) its own "platform_url"/);
  assert.equal(eu.requests.filter((r) => r.workspaceId === "lost").length, 0);
});
