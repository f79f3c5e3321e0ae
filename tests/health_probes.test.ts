import { test } from "node:test";
import assert from "node:assert/strict";
import { startHeartbeat } from "../mod.ts";
import { startHealthServer } from "../src/health/server.ts";
import { liveness, readiness } from "../src/health/probes.ts";
import { startLoopLagMonitor } from "../src/health/loop_lag.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { getJson, startWithHealth } from "./helpers/health.ts";
import { scratch } from "./helpers/scratch.ts";
import { sleep, waitFor } from "./helpers/wait.ts";

const ws = (id: string, extra: Record<string, unknown> = {}) => ({
  workspaceId: id,
  paused: false,
  deleted: false,
  rejected: false,
  sinceLastSuccessMs: 1_000 as number | undefined,
  lastError: undefined as string | undefined,
  ...extra,
});

test("readiness: paused, deleted and rejected workspaces are not served; those never accepted or stale are counted, a few named", () => {
  const status = {
    stopped: false,
    workspaces: [
      ws("gone", { deleted: true, sinceLastSuccessMs: 900_000 }),
      ws("resting", { paused: true, sinceLastSuccessMs: 900_000 }),
      ws("refused", { rejected: true, sinceLastSuccessMs: undefined }),
      ws("fine"),
      ws("new-1", { sinceLastSuccessMs: undefined, lastError: "HTTP 502" }),
      ws("old-1", { sinceLastSuccessMs: 200_000 }),
      ws("old-2", { sinceLastSuccessMs: 300_000 }),
      ws("old-3", { sinceLastSuccessMs: 400_000 }),
      ws("old-4", { sinceLastSuccessMs: 500_000 }),
    ],
  };
  const r = readiness(status, { staleWindowMs: 180_000, nameIds: true });
  assert.equal(r.ok, false);
  assert.equal(r.served, 6);
  assert.deepEqual(r.reasons, [
    "1 of 6 served workspace(s) have no accepted heartbeat yet: new-1",
    "4 of 6 served workspace(s) have had no accepted heartbeat for over 180 s: old-1, old-2, old-3 and 1 more",
  ]);
  assert.equal(r.notReady, undefined);
  const verbose = readiness(status, {
    staleWindowMs: 180_000,
    nameIds: true,
    verbose: true,
  });
  assert.deepEqual(verbose.notReady?.map((n) => n.workspaceId), [
    "new-1",
    "old-1",
    "old-2",
    "old-3",
    "old-4",
  ]);
  assert.equal(verbose.notReady?.[0].lastError, "HTTP 502");
  // Off loopback without the token: counts only, even with ?verbose.
  const hidden = readiness(status, {
    staleWindowMs: 180_000,
    nameIds: false,
    verbose: true,
  });
  assert.deepEqual(hidden.reasons, [
    "1 of 6 served workspace(s) have no accepted heartbeat yet",
    "4 of 6 served workspace(s) have had no accepted heartbeat for over 180 s",
  ]);
  assert.equal(hidden.notReady, undefined);
  assert.ok(!JSON.stringify(hidden).includes("old-"));
  // Every served one live: ready, whatever the others.
  assert.deepEqual(
    readiness({ stopped: false, workspaces: status.workspaces.slice(0, 4) }, {
      staleWindowMs: 180_000,
      nameIds: true,
    }),
    { ok: true, reasons: [], served: 1 },
  );
  assert.deepEqual(
    readiness({ stopped: true, workspaces: [ws("fine")] }, {
      staleWindowMs: 180_000,
      nameIds: true,
    }).reasons,
    ["stopping"],
  );
});

test("liveness: fails when stopping, when a served workspace has no beat armed, or when the event loop is late; nothing else fails it", () => {
  assert.deepEqual(
    liveness({ stopped: false, unarmed: 0 }, { loopLagMs: 10 }),
    {
      ok: true,
      reasons: [],
    },
  );
  assert.deepEqual(
    liveness({ stopped: true, unarmed: 0 }, { loopLagMs: 0 }).reasons,
    ["stopping"],
  );
  assert.match(
    liveness({ stopped: false, unarmed: 2 }, { loopLagMs: 0 }).reasons[0],
    /^2 served workspace\(s\) have neither a beat armed nor one in flight/,
  );
  assert.match(
    liveness({ stopped: false, unarmed: 0 }, {
      loopLagMs: 7_400,
      maxLoopLagMs: 5_000,
    }).reasons[0],
    /event loop ran a timer 7400 ms late \(bound 5000 ms\)/,
  );
});

test("loop lag monitor: a blocked event loop shows as lag, and it fades after the window", async () => {
  let t = 0;
  const monitor = startLoopLagMonitor({ intervalMs: 20, windowMs: 2_000 });
  try {
    await sleep(60);
    assert.ok(monitor.lagMs() < 1_000, `idle lag ${monitor.lagMs()} ms`);
    const end = performance.now() + 300;
    while (performance.now() < end) t++; // holds the loop for 300 ms
    await sleep(40);
    assert.ok(
      monitor.lagMs() >= 250,
      `after a 300 ms block: ${monitor.lagMs()}`,
    );
  } finally {
    monitor.stop();
  }
  assert.ok(t > 0);
  let now = 0;
  const faded = startLoopLagMonitor({
    intervalMs: 1_000_000,
    windowMs: 10,
    now: () => now,
  });
  now = 5; // not yet due: no lag
  assert.equal(faded.lagMs(), 0);
  faded.stop();
});

test("liveness stays 200 while a workspace is rejected and the platform is down; readiness goes 503, naming the stale workspace", async () => {
  const platform = await startPlatformEmulator({
    uuidIds: false,
    // ws-bad exists, but the agent has a wrong token for it.
    workspaces: {
      "ws-ok": "tok-ok-0123456789",
      "ws-bad": "tok-real-0123456789",
    },
  });
  let platformUp = true;
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [
      { id: "ws-ok", token: "tok-ok-0123456789" },
      { id: "ws-bad", token: "tok-bad-0123456789" },
    ],
    intervalMs: 100,
    timeoutMs: 1_000,
  });
  const server = await startHealthServer(hb, {
    host: "127.0.0.1",
    port: 0,
    staleWindowMs: 1_000,
  });
  try {
    const ready = await hb.ready;
    assert.deepEqual(ready.rejected.map((r) => r.workspaceId), ["ws-bad"]);
    await waitFor(
      async () => (await getJson(`${server.url}/readyz`)).status === 200,
      5_000,
      "ready with the one good workspace",
    );
    assert.deepEqual((await getJson(`${server.url}/readyz`)).body, {
      status: "ready",
      served: 1,
    });
    const live = await getJson(`${server.url}/healthz`);
    assert.deepEqual(live, { status: 200, body: { status: "ok" } });

    await platform.close(); // down: every request is refused a connection
    platformUp = false;
    const livenessSeen = new Set<number>();
    let notReady: { status: number; body: Record<string, unknown> } | undefined;
    const end = performance.now() + 10_000;
    while (performance.now() < end) {
      livenessSeen.add((await getJson(`${server.url}/healthz`)).status);
      notReady = await getJson(`${server.url}/readyz`);
      if (notReady.status === 503) break;
      await sleep(100);
    }
    assert.equal(notReady?.status, 503, "readiness to fail in the outage");
    assert.deepEqual(notReady?.body.reasons, [
      "1 of 1 served workspace(s) have had no accepted heartbeat for over 1 s: ws-ok",
    ]);
    const verbose = await getJson(`${server.url}/readyz?verbose`);
    const listed = verbose.body.notReady as { workspaceId: string }[];
    assert.deepEqual(listed.map((n) => n.workspaceId), ["ws-ok"]);
    // The outage goes on: liveness never failed, and still does not.
    for (let i = 0; i < 5; i++) {
      livenessSeen.add((await getJson(`${server.url}/healthz`)).status);
      await sleep(100);
    }
    assert.deepEqual([...livenessSeen], [200]);
    const checks = (await getJson(`${server.url}/healthz?verbose`)).body
      .checks as Record<string, unknown>;
    assert.equal(checks.unarmedWorkspaces, 0);
    assert.equal(checks.stopping, false);
  } finally {
    await server.close();
    await hb.stop();
    if (platformUp) await platform.close();
  }
});

test("liveness fails while the event loop runs late, and after stop", async () => {
  await using platform = await startPlatformEmulator({ uuidIds: false });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: "tok-1-0123456789" }],
    intervalMs: 200,
  });
  const server = await startHealthServer(hb, {
    host: "127.0.0.1",
    port: 0,
    maxLoopLagMs: 300,
  });
  try {
    assert.equal((await getJson(`${server.url}/healthz`)).status, 200);
    const end = performance.now() + 1_200;
    let spin = 0;
    while (performance.now() < end) spin++; // the loop is stuck for 1.2 s
    const late = await getJson(`${server.url}/healthz`);
    assert.equal(late.status, 503, `spun ${spin} times`);
    assert.match(
      String((late.body.reasons as string[])[0]),
      /^the event loop ran a timer \d+ ms late \(bound 300 ms\)$/,
    );
    await hb.stop();
    const stopped = await getJson(`${server.url}/healthz`);
    assert.equal(stopped.status, 503);
    assert.ok((stopped.body.reasons as string[]).includes("stopping"));
  } finally {
    await server.close();
    await hb.stop();
  }
});

test("the command: /healthz is 200 from the start; /readyz is 503 with the reasons until a beat is accepted, then 200; /status is the snapshot", async () => {
  const TOKEN = "cli-token-0123456789";
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  const stopFailing = platform.fail({ kind: "status", status: 502 }, {
    path: "heartbeat",
  });
  await using dir = await scratch("molecule-health-");
  const { run, base } = await startWithHealth(
    ["--interval", "0.3"],
    {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: "ws-1",
      MOLECULE_WORKSPACE_TOKEN: TOKEN,
      CONFIGS_DIR: dir.path,
    },
  );
  try {
    await waitFor(() => platform.requestsTo("heartbeat").length >= 1, 5_000);
    assert.deepEqual(await getJson(`${base}/healthz`), {
      status: 200,
      body: { status: "ok" },
    });
    const sick = await getJson(`${base}/readyz`);
    assert.equal(sick.status, 503);
    assert.deepEqual(sick.body.reasons, [
      "1 of 1 served workspace(s) have no accepted heartbeat yet: ws-1",
    ]);
    const verbose = await getJson(`${base}/readyz?verbose`);
    assert.match(
      String((verbose.body.notReady as { lastError: string }[])[0].lastError),
      /HTTP 502/,
    );
    stopFailing();
    await waitFor(
      async () => (await getJson(`${base}/readyz`)).status === 200,
      10_000,
      "/readyz 200 once a beat is accepted",
    );
    assert.equal((await getJson(`${base}/healthz`)).status, 200);
    const status = await getJson(`${base}/status`);
    const workspaces = status.body.workspaces as Record<string, unknown>[];
    assert.equal(workspaces[0].workspaceId, "ws-1");
    assert.equal(workspaces[0].registered, true);
    assert.ok(Number(workspaces[0].beatsAccepted) >= 1);
    assert.ok(!JSON.stringify(status.body).includes(TOKEN));
  } finally {
    run.kill("SIGTERM");
  }
  assert.equal((await run.done).code, 0);
});
