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
  options: { body?: unknown; token?: string; org?: string; origin?: string } =
    {},
): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (options.origin !== undefined) headers.origin = options.origin;
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
    uuidIds: false,
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
    generation: 0,
    platform_inbound_secret: "secret-ws-1",
  });
  assert.equal(p.requestsTo("heartbeat").at(-1)!.authorized, true);
});

test("emulator: integer fields are strict; strictTypes: false lets fractions through", async () => {
  await using p = await startPlatformEmulator({
    uuidIds: false,
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
    uuidIds: false,
    workspaces: { "ws-1": "tok-1" },
    strictTypes: false,
  });
  assert.equal(
    (await beat(lax, "ws-1", "tok-1", { active_tasks: 1.5 })).status,
    200,
  );
});

test("emulator: register mints auth_token when no token is live, and from then on only it works", async () => {
  await using p = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": null },
  });
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
    uuidIds: false,
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
    uuidIds: false,
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
  assert.deepEqual(p.created, [], "nothing registered, nothing created");
});

test("emulator: /state tells online and paused; a resumed workspace is provisioning until it beats", async () => {
  await using p = await startPlatformEmulator({
    uuidIds: false,
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
    uuidIds: false,
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
    assert.equal(p.workspace("ws-1")!.banner, "stuck");
    // A failed register (after the bearer was accepted) holds it degraded
    // for five minutes; one refused before the token check stamps nothing.
    await register(p, "ws-1", "tok-1", { delivery_mode: "carrier-pigeon" });
    assert.equal(p.workspace("ws-1")!.lastRegisterFailureAt, undefined);
    await register(p, "ws-1", "tok-1", { delivery_mode: "push" });
    assert.equal(typeof p.workspace("ws-1")!.lastRegisterFailureAt, "number");
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
    uuidIds: false,
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
    uuidIds: false,
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

// Ids as the platform has them: UUIDs.
const A = "6f1c0a4e-2b7d-4c1e-9a55-3d2f8e7b9c01";
const B = "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a";
const C = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";
const REGISTER_FAILED =
  "Register failed — workspace auth token may be stale. Restart or reprovision to recover.";

test("emulator: the CORS layer refuses a foreign Origin with an empty 403, before the rate limiter; no Origin, the platform's own and CORS_ORIGINS pass", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { [A]: "tok-a" },
    rateLimit: 5,
  });
  const foreign = await call(p, "POST", "/registry/register", {
    body: registerBody(A),
    token: "tok-a",
    origin: "https://evil.example",
  });
  assert.equal(foreign.status, 403);
  assert.equal(foreign.body, "");
  assert.equal(foreign.headers.get("content-type"), null);
  assert.equal(foreign.headers.get("x-ratelimit-limit"), null);
  const refused = p.requestsTo("register", A).at(-1)!;
  assert.equal(refused.corsRefused, true);
  assert.equal(refused.authorized, false);
  assert.equal(p.workspace(A)!.registers, 0, "refused before the handler");
  // Five pass, so the refused one was not counted by the limiter.
  const passing = [
    undefined,
    p.url,
    p.url.replace("http://", "https://"),
    "http://localhost:3000",
    "http://localhost:3001",
  ];
  for (const origin of passing) {
    const r = await call(p, "POST", "/registry/heartbeat", {
      body: { workspace_id: A },
      token: "tok-a",
      origin,
    });
    assert.equal(r.status, 200, `Origin ${origin}`);
    assert.equal(p.requestsTo("heartbeat").at(-1)!.corsRefused, false);
    if (origin?.includes("localhost")) {
      assert.equal(r.headers.get("access-control-allow-origin"), origin);
    }
  }
  assert.equal((await beat(p, A, "tok-a")).status, 429, "the sixth counted");
  await using custom = await startPlatformEmulator({
    workspaces: { [A]: "tok-a" },
    corsOrigins: ["https://canvas.example"],
  });
  const beatFrom = (origin: string) =>
    call(custom, "POST", "/registry/heartbeat", {
      body: { workspace_id: A },
      token: "tok-a",
      origin,
    }).then((r) => r.status);
  assert.equal(await beatFrom("https://canvas.example"), 200);
  assert.equal(await beatFrom("http://localhost:3000"), 403);
});

test("emulator: behind a proxy that rewrites Host (hostSeenAs), the agent's own Origin gets the empty 403; the token is not the cause", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { [A]: "tok-a" },
    hostSeenAs: "127.0.0.1:8080",
  });
  for (const path of ["/registry/register", "/registry/heartbeat"]) {
    const r = await call(p, "POST", path, {
      body: path.endsWith("register") ? registerBody(A) : { workspace_id: A },
      token: "tok-a",
      origin: p.url,
    });
    assert.deepEqual([r.status, r.body], [403, ""], path);
  }
  assert.ok(p.requests.every((r) => r.corsRefused));
  const withoutOrigin = await beat(p, A, "tok-a");
  assert.equal(withoutOrigin.status, 200);
  const seenOrigin = await call(p, "POST", "/registry/heartbeat", {
    body: { workspace_id: A },
    token: "tok-a",
    origin: "http://127.0.0.1:8080",
  });
  assert.equal(seenOrigin.status, 200);
});

test("emulator: an unknown id: GET is 404, a heartbeat is let through and touches nothing, /state is 401, and a register creates an online workspace with a minted token (recorded)", async () => {
  await using p = await startPlatformEmulator({ workspaces: { [A]: "tok-a" } });
  assert.deepEqual(
    await call(p, "GET", `/workspaces/${B}`).then((r) => [r.status, r.body]),
    [404, { error: "workspace not found" }],
  );
  const hb = await beat(p, B, "tok-a");
  assert.equal(hb.status, 200);
  assert.equal((hb.body as Record<string, unknown>).status, "ok");
  assert.equal(p.workspace(B), undefined, "no row made by a heartbeat");
  assert.deepEqual(
    await call(p, "GET", `/workspaces/${B}/state`, { token: "tok-a" })
      .then((r) => [r.status, r.body]),
    [401, { error: "invalid workspace auth token" }],
  );
  assert.equal(
    (await call(p, "GET", `/workspaces/${B}/state`)).status,
    401,
  );
  assert.deepEqual(p.created, []);
  // The operator mistyped the id: the register makes a ghost.
  const ghost = await register(p, B, "tok-a");
  assert.equal(ghost.status, 200);
  assert.equal(
    (ghost.body as Record<string, unknown>).auth_token,
    `issued-${B}`,
  );
  assert.deepEqual(p.created, [B]);
  assert.equal(p.workspace(B)!.status, "online");
  const lookup = await call(p, "GET", `/workspaces/${B}`);
  assert.equal(lookup.status, 200);
  assert.equal((lookup.body as Record<string, unknown>).name, B);
  assert.equal((await beat(p, B, "tok-a")).status, 401, "it has a token now");
  assert.equal((await beat(p, B, `issued-${B}`)).status, 200);
  assert.equal(p.workspace(A)!.registers, 0, "the meant one stays offline");
  // acceptUnknown (the default without `workspaces`): any id exists already.
  await using open = await startPlatformEmulator({});
  const before = await call(open, "GET", `/workspaces/${C}`);
  assert.equal(before.status, 200, "there before its agent is heard from");
  assert.equal(
    (before.body as Record<string, unknown>).status,
    "awaiting_agent",
  );
  assert.equal(open.workspace(C), undefined, "no bearer, no token to keep");
  const r = await register(open, C, "tok-c");
  assert.equal(r.status, 200);
  assert.equal((r.body as Record<string, unknown>).auth_token, undefined);
  assert.deepEqual(open.created, []);
  assert.deepEqual(open.liveTokens(C), ["tok-c"]);
});

test("emulator: ids are UUIDs by default: a non-UUID is 500 to register and heartbeat, 400 to GET /workspaces/:id, 401 to /state; uuidIds: false takes it", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { "ws-1": "tok-1" },
    adminToken: "admin-0123456789",
  });
  assert.deepEqual(
    await register(p, "ws-1", "tok-1").then((r) => [r.status, r.body]),
    [500, { error: "registration failed" }],
  );
  assert.deepEqual(
    await beat(p, "ws-1", "tok-1").then((r) => [r.status, r.body]),
    [500, { error: "failed to update" }],
  );
  assert.deepEqual(
    await call(p, "GET", "/workspaces/ws-1").then((r) => [r.status, r.body]),
    [400, { error: "invalid workspace ID" }],
  );
  assert.equal(
    (await call(p, "GET", "/workspaces/ws-1/state", { token: "tok-1" }))
      .status,
    401,
  );
  assert.deepEqual(
    (await call(p, "GET", "/workspaces/ws-1/state", {
      token: "admin-0123456789",
    })).body,
    { error: "auth check failed" },
  );
  assert.equal(p.workspace("ws-1")!.registers, 0);
  assert.equal(p.workspace("ws-1")!.heartbeats, 0);
  assert.deepEqual(p.created, []);
  // A UUID in capitals or without hyphens is still a UUID to Postgres.
  assert.equal(
    (await beat(p, A.toUpperCase().replaceAll("-", ""), "x")).status,
    200,
  );
  await using lax = await startPlatformEmulator({
    workspaces: { "ws-1": "tok-1" },
    uuidIds: false,
  });
  assert.equal((await register(lax, "ws-1", "tok-1")).status, 200);
  assert.equal((await beat(lax, "ws-1", "tok-1")).status, 200);
  assert.equal((await call(lax, "GET", "/workspaces/ws-1")).status, 200);
});

test("emulator: register of a paused or removed workspace answers 200 and leaves the row alone; a removed one gets a dead token; a purged id comes back as a ghost", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { [A]: "tok-a", [B]: "tok-b", [C]: "tok-c" },
  });
  for (const [id, token] of [[A, "tok-a"], [B, "tok-b"], [C, "tok-c"]]) {
    assert.equal((await register(p, id, token)).status, 200);
    assert.equal((await beat(p, id, token)).status, 200);
  }
  // Paused: 200, still paused, and the register-failure marker cleared.
  p.fail({ kind: "status", status: 500 }, {
    path: "register",
    workspaceId: A,
    times: 1,
  });
  assert.equal((await register(p, A, "tok-a")).status, 500);
  assert.equal(typeof p.workspace(A)!.lastRegisterFailureAt, "number");
  p.pause(A);
  const paused = await register(p, A, "tok-a");
  assert.deepEqual(paused.body, {
    status: "registered",
    delivery_mode: "poll",
    platform_inbound_secret: `secret-${A}`,
  });
  assert.equal(p.workspace(A)!.status, "paused");
  assert.equal(p.workspace(A)!.lastRegisterFailureAt, undefined);
  // Removed: 200 with a freshly minted token that never works.
  p.remove(B, "soft");
  assert.equal((await beat(p, B, "tok-b")).status, 200, "let through");
  const removed = await register(p, B, "tok-b");
  assert.equal(removed.status, 200);
  assert.equal((removed.body as Record<string, unknown>).status, "registered");
  const dead = (removed.body as Record<string, unknown>).auth_token;
  assert.equal(dead, `issued-${B}`);
  assert.equal(p.workspace(B)!.status, "removed");
  assert.deepEqual(
    p.liveTokens(B),
    [],
    "no token of a removed workspace works",
  );
  assert.deepEqual(
    await beat(p, B, dead as string).then((r) => [r.status, r.body]),
    [401, { error: "invalid workspace auth token" }],
  );
  assert.equal(
    (await beat(p, B, "tok-b")).status,
    401,
    "no longer let through",
  );
  assert.equal((await call(p, "GET", `/workspaces/${B}`)).status, 410);
  assert.deepEqual(p.created, []);
  // Purged: the row is gone, so a register inserts a new one (the ghost).
  p.remove(C, "hard");
  assert.equal((await call(p, "GET", `/workspaces/${C}`)).status, 404);
  assert.equal((await beat(p, C, "tok-c")).status, 200, "let through");
  assert.equal((await call(p, "GET", `/workspaces/${C}`)).status, 404);
  const ghost = await register(p, C, "tok-c");
  assert.equal(ghost.status, 200);
  assert.equal(
    (ghost.body as Record<string, unknown>).auth_token,
    `issued-${C}`,
  );
  assert.deepEqual(p.created, [C]);
  assert.equal(p.workspace(C)!.status, "online");
  assert.equal(p.workspace(C)!.deleted, undefined);
  assert.equal((await call(p, "GET", `/workspaces/${C}`)).status, 200);
  assert.equal((await beat(p, C, "tok-c")).status, 401);
  assert.equal((await beat(p, C, `issued-${C}`)).status, 200);
});

test("emulator: a failed register after the bearer was accepted degrades the workspace with the banner; a heartbeat with agent_card or a register clears it", async () => {
  const { platform: p, advance } = await onFakeClock({
    workspaces: { [A]: "tok-a" },
  });
  try {
    await register(p, A, "tok-a");
    await beat(p, A, "tok-a");
    assert.equal(p.workspace(A)!.status, "online");
    // A refused bearer stamps nothing: anyone could otherwise degrade it.
    assert.equal((await register(p, A, "wrong")).status, 401);
    assert.equal(p.workspace(A)!.lastRegisterFailureAt, undefined);
    p.fail({ kind: "status", status: 503 }, { path: "register", times: 1 });
    assert.equal((await register(p, A, "tok-a")).status, 503);
    assert.equal(p.workspace(A)!.status, "online", "until the next beat");
    await beat(p, A, "tok-a");
    assert.equal(p.workspace(A)!.status, "degraded");
    assert.equal(p.workspace(A)!.banner, REGISTER_FAILED);
    advance(20_000);
    await beat(p, A, "tok-a");
    assert.equal(p.workspace(A)!.status, "degraded", "held for 5 minutes");
    await beat(p, A, "tok-a", { agent_card: card });
    assert.equal(p.workspace(A)!.lastRegisterFailureAt, undefined);
    assert.equal(p.workspace(A)!.status, "online");
    assert.equal(p.workspace(A)!.banner, undefined);
    // A natural 400 after the token check stamps it too; a register clears it.
    assert.equal(
      (await register(p, A, "tok-a", { delivery_mode: "push" })).status,
      400,
    );
    await beat(p, A, "tok-a");
    assert.equal(p.workspace(A)!.status, "degraded");
    assert.equal((await register(p, A, "tok-a")).status, 200);
    assert.equal(p.workspace(A)!.status, "online", "register forces online");
    await beat(p, A, "tok-a");
    assert.equal(p.workspace(A)!.status, "online");
    // Without a card or register, it ends after 5 minutes.
    await register(p, A, "tok-a", { delivery_mode: "push" });
    await beat(p, A, "tok-a");
    assert.equal(p.workspace(A)!.status, "degraded");
    advance(5 * 60_000);
    await beat(p, A, "tok-a");
    assert.equal(p.workspace(A)!.status, "online");
  } finally {
    await p.close();
  }
});

test("emulator: the rate limiter is a fixed window per key (org header first, then token); Reset is seconds from now; Retry-After is truncated and can be 0", async () => {
  const { platform: p, advance } = await onFakeClock({
    workspaces: { [A]: "tok-a", [B]: "tok-b" },
    rateLimit: 3,
  });
  try {
    const limits = (r: Reply) =>
      ["limit", "remaining", "reset"].map((h) =>
        r.headers.get(`x-ratelimit-${h}`)
      );
    const first = await beat(p, A, "tok-a");
    assert.equal(first.status, 200);
    assert.deepEqual(limits(first), ["3", "2", "60"]);
    advance(10_500);
    assert.deepEqual(limits(await beat(p, A, "tok-a")), ["3", "1", "49"]);
    assert.equal((await beat(p, A, "tok-a")).status, 200);
    const over = await beat(p, A, "tok-a");
    assert.equal(over.status, 429);
    assert.deepEqual(over.body, {
      error: "rate limit exceeded",
      retry_after: 49,
    });
    assert.equal(over.headers.get("retry-after"), "49");
    assert.deepEqual(limits(over), ["3", "0", "49"]);
    assert.equal(p.requestsTo("heartbeat").at(-1)!.rateLimited, true);
    const other = await beat(p, B, "tok-b");
    assert.equal(other.status, 200, "another token, another window");
    assert.equal(other.headers.get("x-ratelimit-remaining"), "2");
    advance(49_000); // 59.5 s into the window: still full
    const zero = await beat(p, A, "tok-a");
    assert.equal(zero.status, 429);
    assert.equal(zero.headers.get("retry-after"), "0");
    assert.equal((zero.body as Record<string, unknown>).retry_after, 0);
    advance(500); // the minute is over: refilled whole
    const refilled = await beat(p, A, "tok-a");
    assert.equal(refilled.status, 200);
    assert.deepEqual(limits(refilled), ["3", "2", "60"]);
    // With the org header, every workspace of the org shares one window,
    // and the limiter runs before auth: a refused token counts too.
    const org = (id: string, token: string) =>
      call(p, "POST", "/registry/heartbeat", {
        body: { workspace_id: id },
        token,
        org: "org-7",
      }).then((r) => r.status);
    assert.equal(await org(A, "tok-a"), 200);
    assert.equal(await org(B, "wrong"), 401);
    assert.equal(await org(B, "tok-b"), 200);
    assert.equal(await org(A, "tok-a"), 429);
    assert.equal(await org(B, "tok-b"), 429);
  } finally {
    await p.close();
  }
});

test("emulator: blip() makes the next token checks 401 even with a good token, then the token works again", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { [A]: "tok-a", [B]: null },
  });
  assert.equal((await register(p, A, "tok-a")).status, 200);
  p.blip(A, 2, "heartbeat");
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(
      await beat(p, A, "tok-a").then((r) => [r.status, r.body]),
      [401, { error: "invalid workspace auth token" }],
    );
    const rec = p.requestsTo("heartbeat", A).at(-1)!;
    assert.equal(rec.authBlip, true);
    assert.equal(rec.authorized, false);
  }
  assert.equal((await beat(p, A, "tok-a")).status, 200);
  assert.equal(p.requestsTo("heartbeat", A).at(-1)!.authBlip, false);
  // Any path by default; /state checks the token too.
  p.blip(A);
  const state = () =>
    call(p, "GET", `/workspaces/${A}/state`, { token: "tok-a" });
  assert.equal((await state()).status, 401);
  assert.equal((await state()).status, 200);
  // No token check, nothing used up: a workspace with no live token is let through.
  p.blip(B);
  assert.equal((await beat(p, B, "anything")).status, 200);
  const minted = await register(p, B, "anything");
  const token = (minted.body as Record<string, unknown>).auth_token as string;
  assert.equal((await beat(p, B, token)).status, 401, "now it is checked");
  assert.equal((await beat(p, B, token)).status, 200);
  // The Fault form, and removing it.
  const stop = p.fail({ kind: "auth-blip" }, { workspaceId: A });
  assert.equal((await beat(p, A, "tok-a")).status, 401);
  stop();
  assert.equal((await beat(p, A, "tok-a")).status, 200);
});

test("emulator: GET /workspaces/:id: 410 with removed_at possibly null, 200 with include_removed=true, and the tenant guard's empty 404 and 400", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { [A]: "tok-a", [B]: "tok-b" },
    orgId: "org-7",
  });
  p.remove(A, "soft", null);
  const gone = await call(p, "GET", `/workspaces/${A}`, { org: "org-7" });
  assert.equal(gone.status, 410);
  assert.deepEqual(gone.body, {
    error: "workspace removed",
    id: A,
    removed_at: null,
    hint:
      "Create a replacement workspace in Canvas, then open Settings → Workspace Tokens → + New Token",
  });
  const included = await call(
    p,
    "GET",
    `/workspaces/${A}?include_removed=true`,
    { org: "org-7" },
  );
  assert.equal(included.status, 200);
  assert.equal((included.body as Record<string, unknown>).status, "removed");
  const wrong = await call(p, "GET", `/workspaces/${B}`, { org: "org-8" });
  assert.deepEqual([wrong.status, wrong.body], [404, ""]);
  const missing = await call(p, "GET", `/workspaces/${B}`);
  assert.equal(missing.status, 400);
  assert.equal(
    (missing.body as Record<string, unknown>).code,
    "TENANT_ORG_HEADER_REQUIRED",
  );
  const ok = await call(p, "GET", `/workspaces/${B}`, { org: "org-7" });
  assert.equal(ok.status, 200);
  assert.equal((ok.body as Record<string, unknown>).id, B);
});

/** A request with headers of the test's own (an odd `Authorization`, say). */
async function raw(
  p: PlatformEmulator,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: unknown,
): Promise<Reply> {
  const res = await fetch(p.url + path, {
    method,
    headers: body === undefined
      ? headers
      : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body: parsed, headers: res.headers };
}

test("emulator: the admin token reads /state only of a workspace with no live token (401 where one is live, 500 auth check failed for a non-UUID id)", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { [A]: "tok-a", [B]: null },
    adminToken: "admin-0123456789",
  });
  const admin = (id: string) =>
    call(p, "GET", `/workspaces/${id}/state`, { token: "admin-0123456789" })
      .then((r) => [r.status, r.body]);
  assert.deepEqual(await admin(A), [401, {
    error: "invalid workspace auth token",
  }]);
  assert.deepEqual(await admin(B), [200, {
    workspace_id: B,
    status: "awaiting_agent",
    paused: false,
    deleted: false,
  }]);
  assert.deepEqual(await admin(C), [404, { workspace_id: C, deleted: true }]);
  assert.deepEqual(await admin("ws-1"), [500, { error: "auth check failed" }]);
  p.remove(A, "soft"); // every token revoked: the admin token reads it
  assert.deepEqual(await admin(A), [404, {
    workspace_id: A,
    status: "removed",
    deleted: true,
  }]);
});

test("emulator: a UUID id in capitals finds the workspace but never passes the token check (ValidateToken compares the id as sent); the lookup is 200", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { [A]: "tok-a", [B]: null },
  });
  const upper = A.toUpperCase();
  assert.deepEqual(
    await register(p, upper, "tok-a").then((r) => [r.status, r.body]),
    [401, { error: "invalid workspace auth token" }],
  );
  assert.equal((await beat(p, upper, "tok-a")).status, 401);
  assert.equal(
    (await call(p, "GET", `/workspaces/${upper}/state`, { token: "tok-a" }))
      .status,
    401,
  );
  const lookup = await call(p, "GET", `/workspaces/${upper}`);
  assert.equal(lookup.status, 200);
  assert.equal((lookup.body as Record<string, unknown>).id, A);
  assert.equal(p.workspace(A)!.registers, 0);
  assert.deepEqual(p.created, [], "no ghost of another spelling");
  assert.equal((await beat(p, A, "tok-a")).status, 200);
  // No live token: let through, and the register mints a token for the row;
  // from then on only the lower-case id passes with it.
  const minted = await register(p, B.toUpperCase(), "x");
  assert.equal(minted.status, 200);
  const token = (minted.body as Record<string, unknown>).auth_token as string;
  assert.deepEqual(p.liveTokens(B), [token]);
  assert.equal((await beat(p, B.toUpperCase(), token)).status, 401);
  assert.equal((await beat(p, B, token)).status, 200);
});

test("emulator: a heartbeat for an unknown or purged id gets an inbound secret the platform cannot store: the same for 5 minutes, then another", async () => {
  const { platform: p, advance } = await onFakeClock({
    workspaces: { [A]: "tok-a" },
  });
  try {
    const secret = async (id: string) => {
      const r = await beat(p, id, "tok-a");
      assert.equal(r.status, 200);
      assert.equal((r.body as Record<string, unknown>).generation, 0);
      return (r.body as Record<string, unknown>).platform_inbound_secret;
    };
    const first = await secret(B);
    assert.match(String(first), /^[A-Za-z0-9_-]{43}$/);
    advance(4 * 60_000);
    assert.equal(await secret(B), first);
    advance(60_000);
    const next = await secret(B);
    assert.notEqual(next, first);
    assert.notEqual(await secret(C), next, "one per id");
    p.remove(A, "hard");
    assert.notEqual(await secret(A), `secret-${A}`);
    assert.equal(p.workspace(B), undefined);
  } finally {
    await p.close();
  }
});

test("emulator: answers as gin does: JSON with charset, 404 text/plain for a wrong method or path; no body limit of the platform's (a 2 MiB heartbeat is taken)", async () => {
  await using p = await startPlatformEmulator({ workspaces: { [A]: "tok-a" } });
  const ok = await beat(p, A, "tok-a");
  assert.equal(
    ok.headers.get("content-type"),
    "application/json; charset=utf-8",
  );
  for (
    const [method, path] of [
      ["GET", "/registry/heartbeat"],
      ["POST", `/workspaces/${A}/state`],
      ["DELETE", `/workspaces/${A}`],
      ["GET", "/no-such-path"],
    ]
  ) {
    const r = await raw(p, method, path, { authorization: "Bearer tok-a" });
    assert.deepEqual([r.status, r.body], [404, "404 page not found"], path);
    assert.equal(r.headers.get("content-type"), "text/plain", path);
  }
  const big = await beat(p, A, "tok-a", { sample_error: "x".repeat(2 << 20) });
  assert.equal(big.status, 200);
});

test("emulator: register and heartbeat decode as the platform's Go structs: empty or null delivery_mode, any agent_card, kind and booleans checked, keys in any case, a bearer with spaces", async () => {
  await using p = await startPlatformEmulator({ workspaces: { [A]: "tok-a" } });
  const invalid = [400, { error: "invalid request body" }];
  const reg = (extra: Record<string, unknown>) =>
    register(p, A, "tok-a", extra).then((r) => [r.status, r.body]);
  assert.equal((await reg({})).at(0), 200);
  const registered = [200, {
    status: "registered",
    delivery_mode: "poll",
    platform_inbound_secret: `secret-${A}`,
  }];
  assert.deepEqual(await reg({ delivery_mode: "" }), registered);
  assert.deepEqual(await reg({ delivery_mode: null }), registered);
  assert.deepEqual(await reg({ agent_card: "a card" }), registered);
  assert.equal(p.workspace(A)!.agentCard, "a card");
  assert.deepEqual(await reg({ agent_card: null }), registered);
  assert.deepEqual(await reg({ kind: "workspace" }), registered);
  assert.deepEqual(await reg({ kind: "robot" }), [400, {
    error: "kind must be 'workspace' or 'platform'",
  }]);
  assert.deepEqual(await reg({ mcp_server_present: "yes" }), invalid);
  assert.deepEqual(await reg({ delivery_mode: 1 }), invalid);
  assert.deepEqual(
    await beat(p, A, "tok-a", { is_busy: "no" }).then((
      r,
    ) => [r.status, r.body]),
    invalid,
  );
  assert.equal((await beat(p, A, "tok-a", { is_busy: true })).status, 200);
  const folded = await raw(p, "POST", "/registry/register", {
    authorization: "Bearer tok-a",
  }, { ID: A, Agent_Card: card, DELIVERY_MODE: "poll" });
  assert.deepEqual([folded.status, folded.body], registered);
  const spaced = await raw(p, "POST", "/registry/heartbeat", {
    authorization: "Bearer    tok-a",
  }, { Workspace_Id: A });
  assert.equal(spaced.status, 200);
  assert.equal(p.requestsTo("heartbeat").at(-1)!.workspaceId, A);
});

test("emulator: generation is the platform's desired_generation: 0, and a new agent card does not bump it", async () => {
  await using p = await startPlatformEmulator({ workspaces: { [A]: "tok-a" } });
  await register(p, A, "tok-a");
  await register(p, A, "tok-a", { agent_card: { name: "another" } });
  const b = await beat(p, A, "tok-a");
  assert.equal((b.body as Record<string, unknown>).generation, 0);
  assert.equal(p.workspace(A)!.generation, 0);
});

test("emulator: CORS origins as gin-contrib/cors reads them (trimmed, lower-cased, * for all) with credentials allowed; the limiter's key takes Bearer in any case", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { [A]: "tok-a" },
    corsOrigins: ["https://Canvas.Example "],
    rateLimit: 1,
  });
  const from = (origin: string) =>
    call(p, "POST", "/registry/heartbeat", {
      body: { workspace_id: A },
      token: "tok-a",
      origin,
    });
  const canvas = await from("https://canvas.example");
  assert.equal(canvas.status, 200);
  assert.equal(canvas.headers.get("access-control-allow-credentials"), "true");
  assert.equal(
    canvas.headers.get("access-control-allow-origin"),
    "https://canvas.example",
  );
  // The same token in another case of "Bearer" is the same window: 429.
  const lower = await raw(p, "POST", "/registry/heartbeat", {
    authorization: "bearer tok-a",
  }, { workspace_id: A });
  assert.equal(lower.status, 429);
  await using all = await startPlatformEmulator({
    workspaces: { [A]: "tok-a" },
    corsOrigins: ["*"],
  });
  const any = await call(all, "POST", "/registry/heartbeat", {
    body: { workspace_id: A },
    token: "tok-a",
    origin: "https://anywhere.example",
  });
  assert.equal(any.status, 200);
  assert.equal(any.headers.get("access-control-allow-origin"), "*");
});

test("emulator: the tenant guard's 400 names the missing routing header with a detail; a SaaS tenant image (canvasProxy) lets a same-origin request through without it", async () => {
  await using p = await startPlatformEmulator({
    workspaces: { [A]: "tok-a" },
    orgId: "org-7",
  });
  const missing = await call(p, "GET", `/workspaces/${A}`);
  assert.deepEqual([missing.status, missing.body], [400, {
    error: "missing tenant routing header",
    code: "TENANT_ORG_HEADER_REQUIRED",
    required_header: "X-Molecule-Org-Id",
    detail:
      "SaaS tenant API requests must include X-Molecule-Org-Id matching the organization UUID.",
  }]);
  assert.equal(
    (await call(p, "GET", `/workspaces/${A}`, { origin: p.url })).status,
    400,
    "not a SaaS tenant image",
  );
  await using saas = await startPlatformEmulator({
    workspaces: { [A]: "tok-a" },
    orgId: "org-7",
    canvasProxy: true,
  });
  const state = (headers: Record<string, string>) =>
    raw(saas, "GET", `/workspaces/${A}/state`, {
      authorization: "Bearer tok-a",
      ...headers,
    }).then((r) => r.status);
  assert.equal(await state({ origin: saas.url }), 200);
  assert.equal(await state({ referer: `${saas.url}/canvas` }), 200);
  assert.equal(await state({}), 400);
  assert.equal(await state({ "x-molecule-org-id": "org-8" }), 404);
});
