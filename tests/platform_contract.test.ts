// The platform as its code behaves (../shared/PLATFORM.md, corrected
// 2026-12-05), against the emulator on loopback: a register never creates
// a workspace, an empty 403 is the CORS layer and never the token, a failed
// register never leaves the workspace degraded, one 401 is no verdict, a
// 429 is never hammered, and a fleet keeps to its share of the org's rate
// window. Through mod.ts where the behaviour is the command's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startHeartbeat } from "../mod.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";
import { FakeClock } from "./helpers/fake_clock.ts";
import { runScript, startScript } from "./helpers/runtime.ts";
import { sleep, waitFor } from "./helpers/wait.ts";
import { scratch } from "./helpers/scratch.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const TOKEN = "contract-token-0123456789";

/** The command's environment: workspace `id` with the configured token. */
const agentEnv = (platformUrl: string, id: string, configsDir: string) => ({
  PLATFORM_URL: platformUrl,
  WORKSPACE_ID: id,
  MOLECULE_WORKSPACE_TOKEN: TOKEN,
  CONFIGS_DIR: configsDir,
});
const LIVE = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const TYPO = "7c9e6679-7425-40de-944b-e07fc1f90ae8";

test("command (mod.ts): a WORKSPACE_ID the platform does not have creates nothing and exits 4, saying the id may be wrong", async () => {
  await using dir = await scratch("molecule-contract-");
  await using platform = await startPlatformEmulator({
    workspaces: { [LIVE]: null }, // no live token: registry calls let through
  });
  const r = await runScript(MOD, {
    env: {
      ...agentEnv(platform.url, TYPO, dir.path),
      MOLECULE_HEARTBEAT_INTERVAL: "0.2",
    },
  });
  assert.equal(r.code, 4, r.stderr);
  assert.match(
    r.stderr,
    /workspace 7c9e6679-7425-40de-944b-e07fc1f90ae8 is not on the platform.*deleted, or the id is wrong \(check WORKSPACE_ID\)/,
  );
  assert.doesNotMatch(r.stderr, /Tokens tab|REVOKED/);
  // The upsert would have created an online ghost and minted it a token.
  assert.deepEqual(platform.created, []);
  assert.equal(platform.requestsTo("register").length, 0);
  assert.equal(platform.workspace(TYPO), undefined);
});

test("command (mod.ts): an id that is not a UUID exits 2, naming the id and where it came from", async () => {
  await using dir = await scratch("molecule-contract-");
  await using platform = await startPlatformEmulator({
    workspaces: { [LIVE]: TOKEN },
  });
  const r = await runScript(MOD, {
    env: agentEnv(platform.url, "my-agent", dir.path),
  });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /not lower-case UUIDs \(my-agent\)/); // the warning at start
  assert.match(
    r.stderr,
    /workspace id my-agent is refused by the platform.*UUIDs.*Check WORKSPACE_ID/,
  );
  assert.equal(platform.requestsTo("register").length, 0);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
});

test("command (mod.ts): a workspace purged during an outage longer than the stale window is never registered again; exit 4, no row created", async () => {
  await using dir = await scratch("molecule-contract-");
  await using platform = await startPlatformEmulator({
    workspaces: { [LIVE]: TOKEN },
    staleAfterMs: 500,
  });
  const run = startScript(MOD, {
    args: ["--interval", "0.2", "--stale-window", "1", "--state-poll", "3"],
    env: agentEnv(platform.url, LIVE, dir.path),
  });
  await waitFor(
    () =>
      platform.requestsTo("register").length === 1 &&
      platform.requestsTo("heartbeat").filter((r) => r.status === 200)
          .length >= 2,
    10_000,
    "registered and beating",
  );
  platform.fail({ kind: "status", status: 503 }); // every endpoint
  await sleep(1_500); // longer than both stale windows
  platform.remove(LIVE, "hard"); // purged meanwhile
  platform.heal();
  const r = await run.done;
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /deleted on the platform/);
  assert.equal(platform.requestsTo("register").length, 1);
  assert.deepEqual(platform.created, []);
});

test("a register that keeps failing leaves the workspace online: every beat carries the agent card, which clears the platform's 'register failed' mark", async () => {
  await using platform = await startPlatformEmulator({
    workspaces: { [LIVE]: TOKEN },
  });
  platform.fail({
    kind: "status",
    status: 500,
    body: JSON.stringify({ error: "registration failed" }),
  }, { path: "register" });
  await captureLogs(async () => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: LIVE, token: TOKEN }],
      intervalMs: 100,
      timeoutMs: 2_000,
    });
    try {
      await waitFor(
        () =>
          platform.requestsTo("register").length >= 3 &&
          hb.status().workspaces[0].beatsAccepted >= 5,
        10_000,
        "registers retried, beats accepted",
      );
    } finally {
      await hb.stop();
    }
  });
  // Each failed register stamped the mark; each beat's card cleared it.
  assert.ok(
    platform.requestsTo("register").every((r) => r.status === 500),
  );
  const ws = platform.workspace(LIVE)!;
  assert.equal(ws.status, "online");
  assert.equal(ws.banner, undefined);
  assert.ok(
    platform.requestsTo("heartbeat").every((r) =>
      typeof (r.body as Record<string, unknown>).agent_card === "object"
    ),
  );
  // Retried with backoff, each after a lookup: never without one.
  const looks = platform.requestsTo("workspace").length;
  assert.ok(looks >= platform.requestsTo("register").length, `${looks}`);
});

test('command (mod.ts): the CORS layer\'s empty 403 is never the token: no exit 3, one error naming the Origin sent and both cures; --origin "" passes', async () => {
  await using dir = await scratch("molecule-contract-");
  // Behind a proxy that rewrites Host (nginx's default proxy_pass).
  await using platform = await startPlatformEmulator({
    workspaces: { [LIVE]: TOKEN },
    hostSeenAs: "platform.internal:8080",
  });
  const env = agentEnv(platform.url, LIVE, dir.path);
  const run = startScript(MOD, { args: ["--interval", "0.2"], env });
  await waitFor(
    () => platform.requests.filter((r) => r.corsRefused).length >= 2,
    10_000,
    "refused by the CORS layer",
  );
  await sleep(1_500); // long enough for a 401 verdict, were it one
  run.kill("SIGTERM");
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `ERROR .*CORS layer refused the Origin sent.*The Origin sent is ${
        platform.url.replace(/[.]/g, "\\.")
      }.*proxy_set_header Host.*CORS_ORIGINS.*--origin`,
    ),
  );
  assert.doesNotMatch(r.stderr, /REVOKED|Tokens tab|rejected/);
  // Slow pace: the beat is tried again after six intervals (two minutes at
  // most), not every 0.2 s (that would be 8 beats).
  const beats = platform.requestsTo("heartbeat").length;
  assert.ok(beats <= 3, `${beats} beats`);
  // The cure without a proxy change: send no Origin (or the one it sees).
  const once = await runScript(MOD, {
    args: ["--once", "--origin", ""],
    env,
  });
  assert.equal(once.code, 0, once.stderr);
});

test("a 429 with Retry-After: 0 is not hammered: at least a second between tries", async () => {
  const clock = new FakeClock();
  await using platform = await startPlatformEmulator({
    workspaces: { [LIVE]: TOKEN },
    now: clock.now,
  });
  platform.fail({
    kind: "status",
    status: 429,
    body: JSON.stringify({ error: "rate limit exceeded", retry_after: 0 }),
    headers: { "Retry-After": "0", "X-RateLimit-Reset": "0" },
  }, { path: "heartbeat" });
  await captureLogs(async () => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: LIVE, token: TOKEN }],
      intervalMs: 100,
      timeoutMs: 2_000,
      clock,
    });
    try {
      for (let i = 0; i < 100; i++) {
        await clock.advance(50);
        await sleep(2);
      }
    } finally {
      await hb.stop();
    }
  });
  // 5 s of clock time at 100 ms beats: 50 beats if each 429 were taken at
  // its word; at most one a second (plus the first) when waited out.
  const tries = platform.requestsTo("heartbeat").map((r) => r.at);
  assert.ok(tries.length >= 3 && tries.length <= 6, `${tries.length} tries`);
  for (let i = 1; i < tries.length; i++) {
    // (Clock time moves on while a request is on the wire: a little slack.)
    assert.ok(tries[i] - tries[i - 1] >= 900, `gap ${tries[i] - tries[i - 1]}`);
  }
});

test("one 401 between successes is no verdict: no error, no escalation, the token in use is kept", async () => {
  await using platform = await startPlatformEmulator({
    workspaces: { [LIVE]: TOKEN },
  });
  const lines = await captureLogs(async (records) => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: LIVE, token: TOKEN }],
      intervalMs: 100,
      timeoutMs: 2_000,
      statePollEvery: 0,
    });
    const escalations: unknown[] = [];
    hb.addEventListener("auth-escalation", (e) => escalations.push(e));
    try {
      await waitFor(() =>
        hb.status().workspaces[0].registered &&
        hb.status().workspaces[0].beatsAccepted >= 2
      );
      platform.blip(LIVE, 1, "heartbeat"); // a database error, as a 401
      await waitFor(
        () => platform.requests.some((r) => r.authBlip),
        5_000,
        "the blip",
      );
      const accepted = hb.status().workspaces[0].beatsAccepted;
      await waitFor(
        () => hb.status().workspaces[0].beatsAccepted >= accepted + 3,
        5_000,
        "beats accepted again",
      );
      assert.deepEqual(escalations, []);
      assert.equal(hb.status().workspaces[0].state, "beating");
    } finally {
      await hb.stop();
    }
    return levelsAndTexts(records);
  });
  assert.ok(!lines.some((l) => l.startsWith("error")), lines.join("\n"));
  assert.equal(
    lines.filter((l) => /auth failure 1\/3/.test(l)).length,
    1,
    lines.join("\n"),
  );
  // Every beat went out with the one token.
  assert.ok(
    platform.requestsTo("heartbeat").every((r) => r.authorized || r.authBlip),
  );
});

test("300 workspaces of one org with the org id: the requests carrying the org header stay under 10 % of the org's window in the first 40 s, while every beat goes on", async () => {
  const clock = new FakeClock();
  const org = "9b2e5a10-3c4d-4e5f-8a6b-7c8d9e0f1a2b";
  const n = 300;
  const ids = Array.from(
    { length: n },
    (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
  );
  await using platform = await startPlatformEmulator({
    workspaces: Object.fromEntries(ids.map((id, i) => [id, `${TOKEN}-${i}`])),
    orgId: org,
    rateLimit: 600,
    now: clock.now,
  });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: ids.map((id, i) => ({ id, token: `${TOKEN}-${i}` })),
    orgId: org,
    clock, // 20 s beats: two each in 40 s
    timeoutMs: 5_000,
  });
  try {
    await captureLogs(async () => {
      for (let t = 0; t < 40_000; t += 100) {
        await clock.advance(100);
        await sleep(1);
      }
      // Let the last answers land.
      await waitFor(() => hb.status().inFlight === 0, 5_000);
    });
    const first40 = platform.requests.filter((r) => r.at < 40_000);
    const keyed = first40.filter((r) => r.orgId === org);
    // 10 % of 600 a minute: at most 40 in 40 s (at most 60 in any minute).
    assert.ok(keyed.length <= 41, `${keyed.length} org-keyed requests`);
    assert.ok(keyed.length >= 20, `${keyed.length}: the lookups went on`);
    assert.ok(first40.every((r) => !r.rateLimited), "nothing refused");
    const beats = first40.filter((r) => r.path === "heartbeat");
    assert.ok(beats.every((r) => r.status === 200));
    // Every workspace beat twice (at its phase, and 20 s later).
    const per = new Map<string, number>();
    for (const b of beats) {
      per.set(b.workspaceId!, (per.get(b.workspaceId!) ?? 0) + 1);
    }
    assert.equal(per.size, n);
    assert.ok([...per.values()].every((c) => c >= 2));
    assert.equal(
      platform.requests.filter((r) => r.path === "register" && r.orgId).length,
      0,
    );
  } finally {
    await hb.stop();
  }
});

/** What the loopback server below answers: a status, headers and a body. */
type Canned = {
  status: number;
  headers?: Record<string, string>;
  body?: string;
};

/**
 * A server on 127.0.0.1 answering every request with `answer(method, path)`,
 * as something that is not the platform's API (the canvas web app, a proxy)
 * would; closed by `await using`.
 */
async function loopback(answer: (method: string, path: string) => Canned) {
  const { createServer } = await import("node:http");
  const seen: { method: string; path: string }[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const method = req.method ?? "GET";
      const path = new URL(req.url ?? "/", "http://x").pathname;
      seen.push({ method, path });
      const a = answer(method, path);
      const body = a.body ?? "";
      res.writeHead(a.status, {
        "content-length": new TextEncoder().encode(body).length,
        ...a.headers,
      });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    async [Symbol.asyncDispose]() {
      // Deno's node:http waits for idle kept-alive connections otherwise.
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const JSON_TYPE = { "content-type": "application/json" };
const PAGE: Canned = {
  status: 200,
  headers: { "content-type": "text/html; charset=utf-8" },
  body:
    "<!doctype html><html><head><title>Molecule</title></head><body><div id=root></div></body></html>",
};

test("lookupWorkspace and fetchWorkspaceState: a 200 that is not the platform's JSON (the canvas app's page, a JSON array, null, an over-size body) proves nothing: unknown, with a reason naming what came back", async () => {
  const { fetchWorkspaceState, lookupWorkspace } = await import(
    "../src/platform/mod.ts"
  );
  let now: Canned = PAGE;
  await using server = await loopback(() => now);
  const ask = { platformUrl: server.url, workspaceId: LIVE };
  const cases: [Canned, RegExp][] = [
    [PAGE, /HTTP 200 with a web page \(text\/html\), not the platform's JSON/],
    [
      { status: 200, headers: JSON_TYPE, body: "[1,2,3]" },
      /HTTP 200 with .*not the platform's JSON/,
    ],
    [
      { status: 200, headers: JSON_TYPE, body: "null" },
      /HTTP 200 with .*not the platform's JSON/,
    ],
    [
      {
        status: 200,
        headers: JSON_TYPE,
        body: JSON.stringify({
          id: LIVE,
          status: "online",
          x: "a".repeat(70_000),
        }),
      },
      /HTTP 200 with .*not the platform's JSON/,
    ],
  ];
  for (const [canned, reason] of cases) {
    now = canned;
    const found = await lookupWorkspace(ask);
    assert.equal(
      found.kind,
      "unknown",
      `${canned.body?.slice(0, 20)}: ${JSON.stringify(found)}`,
    );
    assert.match(found.reason ?? "", reason);
    const state = await fetchWorkspaceState({ ...ask, token: TOKEN });
    assert.equal(state.kind, "unknown", JSON.stringify(state));
    assert.match(state.reason ?? "", /^HTTP 200 with /);
    assert.doesNotMatch(state.reason ?? "", new RegExp(TOKEN));
  }
  // The platform's own answers still count.
  now = {
    status: 200,
    headers: JSON_TYPE,
    body: JSON.stringify({ id: LIVE, name: "w", status: "online" }),
  };
  assert.equal((await lookupWorkspace(ask)).kind, "exists");
  now = {
    status: 200,
    headers: JSON_TYPE,
    body: JSON.stringify({
      workspace_id: LIVE,
      status: "paused",
      paused: true,
      deleted: false,
    }),
  };
  assert.equal(
    (await fetchWorkspaceState({ ...ask, token: TOKEN })).kind,
    "paused",
  );
});

test("fetchWorkspaceState: /state answered 400, a page, a redirect, a bare 404 or JSON it does not send is unknown with a reason a caller can log (the body, the redirect's target)", async () => {
  const { fetchWorkspaceState } = await import("../src/platform/mod.ts");
  let now: Canned = PAGE;
  await using server = await loopback(() => now);
  const ask = { platformUrl: server.url, workspaceId: LIVE, token: TOKEN };
  const cases: [Canned, RegExp][] = [
    [
      {
        status: 400,
        headers: JSON_TYPE,
        body: JSON.stringify({
          code: "TENANT_ORG_HEADER_REQUIRED",
          required_header: "X-Molecule-Org-Id",
        }),
      },
      /^HTTP 400: .*TENANT_ORG_HEADER_REQUIRED/,
    ],
    [
      { ...PAGE, status: 404 },
      /^HTTP 404: <!doctype html>/,
    ],
    [
      { status: 302, headers: { location: "/login?next=/state" } },
      /^HTTP 302 redirect to \/login\?next=\/state/,
    ],
    [{ status: 404 }, /^HTTP 404$/],
    [
      { status: 200, headers: JSON_TYPE, body: '{"ok":true}' },
      /^HTTP 200 with JSON that is not the platform's answer to GET \/workspaces\/:id\/state$/,
    ],
  ];
  for (const [canned, reason] of cases) {
    now = canned;
    const state = await fetchWorkspaceState(ask);
    assert.equal(state.kind, "unknown", JSON.stringify(state));
    assert.match(state.reason ?? "", reason);
  }
});

test("a lookup answered by the canvas web app's page (200, HTML, any path) is no proof the workspace exists: nothing is registered, a refused beat is never called a revoked token, and the warning names the page", async () => {
  await using server = await loopback((method, path) => {
    if (method === "GET") return PAGE; // the lookup and /state
    if (path === "/registry/register") {
      return {
        status: 200,
        headers: JSON_TYPE,
        body: JSON.stringify({
          status: "registered",
          auth_token: "minted-ghost-token-0123456789",
        }),
      };
    }
    return {
      status: 401,
      headers: JSON_TYPE,
      body: JSON.stringify({ error: "invalid workspace auth token" }),
    };
  });
  const lines = await captureLogs(async (records) => {
    const hb = startHeartbeat({
      platformUrl: server.url,
      workspaces: [{ id: LIVE, token: TOKEN }],
      intervalMs: 100,
      timeoutMs: 2_000,
    });
    const started = Date.now();
    try {
      await waitFor(
        () =>
          server.seen.filter((r) => r.path === "/registry/heartbeat").length >=
            5,
        10_000,
        "five refused beats",
      );
      // Past the time refusals in a row take to count as confirmed.
      await sleep(Math.max(0, started + 4_000 - Date.now()));
    } finally {
      await hb.stop();
    }
    return levelsAndTexts(records);
  });
  const all = lines.join("\n");
  assert.equal(
    server.seen.filter((r) => r.path === "/registry/register").length,
    0,
    all,
  );
  assert.doesNotMatch(all, /REVOKED|the platform says the workspace exists/);
  assert.match(
    all,
    /could not ask the platform whether the workspace exists \(HTTP 200 with a web page \(text\/html\), not the platform's JSON/,
  );
});

test("lookupWorkspace: the tenant guard's answers are told by what the guard sends (its 400's code, its bare 404 to an org id sent), not by a status alone", async () => {
  const { createServer } = await import("node:http");
  const { lookupWorkspace } = await import("../src/platform/mod.ts");
  const answers: Record<string, [number, string, string]> = {
    guard400: [
      400,
      "application/json",
      '{"code":"TENANT_ORG_HEADER_REQUIRED","error":"missing tenant routing header"}',
    ],
    proxy400: [400, "text/html", "<html>400 Request Header Too Large</html>"],
    bare404: [404, "", ""],
  };
  let answer = "guard400";
  const server = createServer((req, res) => {
    req.resume();
    const [status, type, body] = answers[answer];
    res.writeHead(status, type ? { "content-type": type } : {});
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  const ask = (orgId?: string) =>
    lookupWorkspace({
      platformUrl: `http://127.0.0.1:${port}`,
      workspaceId: "5f0c9a7e-1111-4222-8333-444455556666",
      token: "tok-lookup-0123456789",
      ...(orgId ? { orgId } : {}),
    });
  try {
    assert.equal((await ask()).tenantGuard, "org-missing");
    answer = "proxy400";
    assert.equal((await ask()).tenantGuard, undefined);
    answer = "bare404";
    assert.equal((await ask("org-1")).tenantGuard, "org-wrong");
    assert.equal((await ask()).tenantGuard, undefined);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
