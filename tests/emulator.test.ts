// The emulator is what users test against: it must answer as today's
// platform does (/work/shared/PLATFORM.md). Each test is one rule of it.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type PlatformEmulator,
  type PlatformEmulatorOptions,
  startPlatformEmulator,
} from "../src/testing/mod.ts";

interface Reply {
  status: number;
  body: unknown;
  headers: Headers;
}

async function call(
  platform: PlatformEmulator,
  method: "GET" | "POST",
  path: string,
  options: { body?: unknown; token?: string; org?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (options.token !== undefined) {
    headers.authorization = `Bearer ${options.token}`;
  }
  if (options.org !== undefined) headers["x-molecule-org-id"] = options.org;
  const res = await fetch(platform.url + path, {
    method,
    headers,
    body: options.body === undefined
      ? undefined
      : typeof options.body === "string"
      ? options.body
      : JSON.stringify(options.body),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body, headers: res.headers };
}

const card = { name: "agent", skills: [] };
const registerBody = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  url: "",
  agent_card: card,
  delivery_mode: "poll",
  ...extra,
});
const register = (
  p: PlatformEmulator,
  id: string,
  token?: string,
  extra: Record<string, unknown> = {},
) =>
  call(p, "POST", "/registry/register", {
    body: registerBody(id, extra),
    token,
  });
const beat = (
  p: PlatformEmulator,
  id: string,
  token?: string,
  extra: Record<string, unknown> = {},
) =>
  call(p, "POST", "/registry/heartbeat", {
    body: { workspace_id: id, ...extra },
    token,
  });

/** An emulator on a clock the test moves. */
async function onFakeClock(options: PlatformEmulatorOptions) {
  let now = 1_000_000;
  const platform = await startPlatformEmulator({ ...options, now: () => now });
  return { platform, advance: (ms: number) => now += ms };
}

test("emulator: malformed requests are 400, a missing or wrong token 401, as the platform words them", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { "ws-1": "tok-1" },
  });
  const invalid = { error: "invalid request body" };
  assert.deepEqual(
    (await call(p, "POST", "/registry/register", {
      body: { id: "ws-1" },
      token: "tok-1",
    })).body,
    invalid,
  );
  const pigeon = await register(p, "ws-1", "tok-1", {
    delivery_mode: "carrier-pigeon",
  });
  assert.equal(pigeon.status, 400);
  assert.deepEqual(pigeon.body, {
    error: "delivery_mode must be 'push' or 'poll'",
  });
  const push = await register(p, "ws-1", "tok-1", { delivery_mode: undefined });
  assert.deepEqual(push.body, {
    error: "url is required for push-mode workspaces",
  });
  assert.equal(
    (await register(p, "ws-1", "tok-1", { kind: "platform" })).status,
    403,
  );
  assert.deepEqual((await beat(p, "", "tok-1")).body, invalid);
  assert.equal(
    (await call(p, "POST", "/registry/heartbeat", {
      body: "not json",
      token: "tok-1",
    })).status,
    400,
  );
  assert.deepEqual(await beat(p, "ws-1").then((r) => [r.status, r.body]), [
    401,
    { error: "missing workspace auth token" },
  ]);
  assert.deepEqual(
    await beat(p, "ws-1", "nope").then((r) => [r.status, r.body]),
    [
      401,
      { error: "invalid workspace auth token" },
    ],
  );
  const ok = await register(p, "ws-1", "tok-1", { mcp_server_present: true });
  assert.deepEqual(ok.body, {
    status: "registered",
    delivery_mode: "poll",
    platform_inbound_secret: "secret-ws-1",
  });
  assert.equal(p.workspace("ws-1")!.mcpServerPresent, true);
  assert.deepEqual((await beat(p, "ws-1", "tok-1")).body, {
    status: "ok",
    generation: 1,
    platform_inbound_secret: "secret-ws-1",
  });
  assert.equal(p.requestsTo("heartbeat").at(-1)!.authorized, true);
});

test("emulator: integer fields are strict; strictTypes: false lets fractions through", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { "ws-1": "tok-1" },
  });
  for (const field of ["active_tasks", "uptime_seconds", "monthly_spend"]) {
    assert.equal(
      (await beat(p, "ws-1", "tok-1", { [field]: 1.5 })).status,
      400,
      field,
    );
    assert.equal(
      (await beat(p, "ws-1", "tok-1", { [field]: "2" })).status,
      400,
      field,
    );
    assert.equal(
      (await beat(p, "ws-1", "tok-1", { [field]: 2 })).status,
      200,
      field,
    );
  }
  assert.equal(
    (await beat(p, "ws-1", "tok-1", { error_rate: "high" })).status,
    400,
  );
  assert.equal(
    (await beat(p, "ws-1", "tok-1", { error_rate: 0.25 })).status,
    200,
  );
  await using lax = await startPlatformEmulator({
    workspaces: { "ws-1": "tok-1" },
    strictTypes: false,
  });
  assert.equal(
    (await beat(lax, "ws-1", "tok-1", { active_tasks: 1.5 })).status,
    200,
  );
});

test("emulator: register mints auth_token when no token is live, and from then on only it works", async () => {
  await using p = await startPlatformEmulator({ workspaces: { "ws-1": null } });
  // No live token: the registry calls are let through whatever the bearer.
  assert.equal((await beat(p, "ws-1", "from-the-canvas")).status, 200);
  const first = await register(p, "ws-1", "from-the-canvas");
  assert.equal(first.status, 200);
  assert.equal(
    (first.body as Record<string, unknown>).auth_token,
    "issued-ws-1",
  );
  assert.deepEqual(p.workspace("ws-1")!.minted, ["issued-ws-1"]);
  assert.deepEqual(p.liveTokens("ws-1"), ["issued-ws-1"]);
  assert.equal((await beat(p, "ws-1", "from-the-canvas")).status, 401);
  assert.equal((await register(p, "ws-1", "from-the-canvas")).status, 401);
  assert.equal((await beat(p, "ws-1", "issued-ws-1")).status, 200);
  // Registering again with a live token mints nothing.
  const again = await register(p, "ws-1", "issued-ws-1");
  assert.equal((again.body as Record<string, unknown>).auth_token, undefined);
  // A cleanup revokes every token: let through again, and the next register mints anew.
  p.revokeAll("ws-1");
  assert.equal((await beat(p, "ws-1", "issued-ws-1")).status, 200);
  const second = await register(p, "ws-1", "issued-ws-1");
  assert.equal(
    (second.body as Record<string, unknown>).auth_token,
    "issued-ws-1-2",
  );
  assert.equal((await beat(p, "ws-1", "issued-ws-1")).status, 401);
  assert.equal((await beat(p, "ws-1", "issued-ws-1-2")).status, 200);
});

test("emulator: a rotation (revoke) refuses the agent's token everywhere until restored", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { "ws-1": "tok-1" },
  });
  await register(p, "ws-1", "tok-1");
  p.revoke("ws-1");
  assert.equal((await beat(p, "ws-1", "tok-1")).status, 401);
  assert.equal((await register(p, "ws-1", "tok-1")).status, 401);
  assert.equal(
    (await call(p, "GET", "/workspaces/ws-1/state", { token: "tok-1" })).status,
    401,
  );
  // The workspace itself is there: the open lookup says so.
  assert.equal((await call(p, "GET", "/workspaces/ws-1")).status, 200);
  p.restore("ws-1");
  assert.equal((await beat(p, "ws-1", "tok-1")).status, 200);
});

test("emulator: a deleted workspace's heartbeats answer 200 and change nothing; /state is 401; GET /workspaces/:id is 410 or 404", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { "ws-soft": "tok-s", "ws-hard": "tok-h" },
    adminToken: "admin-0123456789",
  });
  for (const [id, token] of [["ws-soft", "tok-s"], ["ws-hard", "tok-h"]]) {
    await register(p, id, token);
    await beat(p, id, token);
  }
  p.remove("ws-soft", "soft");
  p.remove("ws-hard", "hard");
  for (const [id, token] of [["ws-soft", "tok-s"], ["ws-hard", "tok-h"]]) {
    const before = p.workspace(id)!.heartbeats;
    const b = await beat(p, id, token);
    assert.equal(b.status, 200, `${id}: heartbeat`);
    assert.equal(p.workspace(id)!.heartbeats, before, `${id}: not applied`);
    const r = await register(p, id, token);
    assert.equal(r.status, 200, `${id}: register`);
    assert.equal((r.body as Record<string, unknown>).auth_token, undefined);
    const s = await call(p, "GET", `/workspaces/${id}/state`, { token });
    assert.equal(s.status, 401, `${id}: /state`);
  }
  const soft = await call(p, "GET", "/workspaces/ws-soft");
  assert.equal(soft.status, 410);
  const body = soft.body as Record<string, unknown>;
  assert.equal(body.error, "workspace removed");
  assert.equal(body.id, "ws-soft");
  assert.ok(
    typeof body.removed_at === "string" && typeof body.hint === "string",
  );
  assert.deepEqual(
    await call(p, "GET", "/workspaces/ws-hard").then((r) => [r.status, r.body]),
    [
      404,
      { error: "workspace not found" },
    ],
  );
  assert.equal((await call(p, "GET", "/workspaces/never-was")).status, 404);
  assert.equal(p.workspace("ws-soft")!.status, "removed");
  // Only an admin token reaches /state's deleted answer.
  assert.deepEqual(
    (await call(p, "GET", "/workspaces/ws-soft/state", {
      token: "admin-0123456789",
    })).body,
    { workspace_id: "ws-soft", status: "removed", deleted: true },
  );
  assert.equal(p.requestsTo("workspace", "ws-soft").length, 1);
});

test("emulator: /state tells online and paused; a resumed workspace is provisioning until it beats", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { "ws-1": "tok-1" },
  });
  await register(p, "ws-1", "tok-1");
  await beat(p, "ws-1", "tok-1");
  const state = () =>
    call(p, "GET", "/workspaces/ws-1/state", { token: "tok-1" });
  assert.deepEqual((await state()).body, {
    workspace_id: "ws-1",
    status: "online",
    paused: false,
    deleted: false,
  });
  assert.deepEqual(
    (await call(p, "GET", "/workspaces/ws-1/state")).body,
    { error: "missing workspace auth token" },
  );
  p.pause("ws-1");
  assert.deepEqual((await state()).body, {
    workspace_id: "ws-1",
    status: "paused",
    paused: true,
    deleted: false,
  });
  p.resume("ws-1");
  assert.equal(
    ((await state()).body as { status: string }).status,
    "provisioning",
  );
  await beat(p, "ws-1", "tok-1");
  assert.equal(((await state()).body as { status: string }).status, "online");
});

test("emulator: degraded at error_rate >= 0.5 or wedged; back to online only below 0.1, not wedged, no failed register in 5 minutes", async () => {
  const { platform: p, advance } = await onFakeClock({
    workspaces: { "ws-1": "tok-1" },
  });
  try {
    await register(p, "ws-1", "tok-1");
    await beat(p, "ws-1", "tok-1", { error_rate: 0.6 });
    assert.equal(p.workspace("ws-1")!.status, "degraded");
    await beat(p, "ws-1", "tok-1", { error_rate: 0.2 });
    assert.equal(p.workspace("ws-1")!.status, "degraded");
    await beat(p, "ws-1", "tok-1", {
      error_rate: 0.05,
      runtime_state: "wedged",
    });
    assert.equal(p.workspace("ws-1")!.status, "degraded");
    await beat(p, "ws-1", "tok-1", { error_rate: 0.05 });
    assert.equal(p.workspace("ws-1")!.status, "online");
    await beat(p, "ws-1", "tok-1", {
      runtime_state: "wedged",
      sample_error: "stuck",
    });
    assert.equal(p.workspace("ws-1")!.status, "degraded");
    // A failed register holds it degraded for five minutes.
    await register(p, "ws-1", "tok-1", { delivery_mode: "carrier-pigeon" });
    await beat(p, "ws-1", "tok-1");
    assert.equal(p.workspace("ws-1")!.status, "degraded");
    advance(5 * 60_000 + 1);
    await beat(p, "ws-1", "tok-1");
    assert.equal(p.workspace("ws-1")!.status, "online");
  } finally {
    await p.close();
  }
});

test("emulator: the Redis liveness key: set by register, extended by heartbeats, gone after a gap until a register", async () => {
  const { platform: p, advance } = await onFakeClock({
    workspaces: { "ws-1": "tok-1" },
  });
  try {
    await register(p, "ws-1", "tok-1");
    assert.equal(p.workspace("ws-1")!.livenessKey, true);
    for (let i = 0; i < 20; i++) {
      advance(20_000);
      await beat(p, "ws-1", "tok-1");
    }
    assert.equal(
      p.workspace("ws-1")!.livenessKey,
      true,
      "heartbeats extend it",
    );
    advance(180_001); // a laptop asleep longer than the stale window
    assert.equal(p.workspace("ws-1")!.status, "awaiting_agent");
    await beat(p, "ws-1", "tok-1");
    const after = p.workspace("ws-1")!;
    assert.equal(
      after.livenessKey,
      false,
      "a heartbeat does not bring the key back",
    );
    assert.equal(after.livenessExpiries, 1);
    assert.equal(
      after.status,
      "online",
      "the sweep's view follows the heartbeat",
    );
    await register(p, "ws-1", "tok-1");
    assert.equal(p.workspace("ws-1")!.livenessKey, true);
    assert.equal(p.workspace("ws-1")!.registersAfterGap, 1);
  } finally {
    await p.close();
  }
});

test("emulator: the tenant guard wants X-Molecule-Org-Id off the registry paths, exactly", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { "ws-1": "tok-1" },
    orgId: "org-7",
  });
  assert.equal((await register(p, "ws-1", "tok-1")).status, 200);
  assert.equal((await beat(p, "ws-1", "tok-1")).status, 200);
  const missing = await call(p, "GET", "/workspaces/ws-1/state", {
    token: "tok-1",
  });
  assert.equal(missing.status, 400);
  assert.equal(
    (missing.body as Record<string, unknown>).code,
    "TENANT_ORG_HEADER_REQUIRED",
  );
  assert.equal(
    (missing.body as Record<string, unknown>).required_header,
    "X-Molecule-Org-Id",
  );
  const wrong = await call(p, "GET", "/workspaces/ws-1", { org: "org-8" });
  assert.equal(wrong.status, 404);
  assert.equal(wrong.body, "");
  assert.equal(
    (await call(p, "GET", "/workspaces/ws-1/state", {
      token: "tok-1",
      org: "org-7",
    })).status,
    200,
  );
  assert.equal(
    (await call(p, "GET", "/workspaces/ws-1", { org: "org-7" })).status,
    200,
  );
  // An exact match only: a path that merely starts like an allowed one is guarded.
  assert.equal(
    (await call(p, "POST", "/registry/heartbeat/x", { body: {} })).status,
    400,
  );
});

test("emulator: the rate limiter keys by org header first, then token; 429 carries retry_after and Retry-After", async () => {
  const { platform: p, advance } = await onFakeClock({
    workspaces: { "ws-1": "tok-1", "ws-2": "tok-2" },
    rateLimit: 60,
  });
  try {
    // Without the org header every token is its own bucket.
    for (let i = 0; i < 60; i++) {
      assert.equal((await beat(p, "ws-1", "tok-1")).status, 200, `beat ${i}`);
    }
    const over = await beat(p, "ws-1", "tok-1");
    assert.equal(over.status, 429);
    assert.deepEqual(over.body, {
      error: "rate limit exceeded",
      retry_after: 1,
    });
    assert.equal(over.headers.get("retry-after"), "1");
    assert.equal(over.headers.get("x-ratelimit-limit"), "60");
    assert.equal(over.headers.get("x-ratelimit-remaining"), "0");
    assert.ok(
      Number(over.headers.get("x-ratelimit-reset")) > Date.now() / 1000,
    );
    assert.equal(p.requestsTo("heartbeat").at(-1)!.rateLimited, true);
    assert.equal(
      (await beat(p, "ws-2", "tok-2")).status,
      200,
      "another token, another bucket",
    );
    advance(1_000); // one more request earned
    assert.equal((await beat(p, "ws-1", "tok-1")).status, 200);
    // With the org header, every workspace of the org shares one bucket.
    advance(60_000);
    const org = (id: string, token: string) =>
      call(p, "POST", "/registry/heartbeat", {
        body: { workspace_id: id },
        token,
        org: "org-7",
      });
    let refused = 0;
    for (let i = 0; i < 40; i++) {
      if ((await org("ws-1", "tok-1")).status === 429) refused++;
      if ((await org("ws-2", "tok-2")).status === 429) refused++;
    }
    assert.equal(refused, 20);
  } finally {
    await p.close();
  }
});
