import { test } from "node:test";
import assert from "node:assert/strict";
import { buildAgentCard, register } from "../src/platform/mod.ts";
import { envFromRecord } from "../src/shared/env.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { MemorySecretStore, startHeartbeat } from "../mod.ts";
import { waitFor } from "./helpers/wait.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";

test("register sends the contract's payload and headers, and returns secret and issued token", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-12345678-abcd": "tok-1" },
    issueAuthToken: true,
  });
  const card = buildAgentCard(
    "ws-12345678-abcd",
    envFromRecord({ MOLECULE_AGENT_SKILLS: "a,b" }),
  );
  const result = await register({
    platformUrl: platform.url + "//",
    workspaceId: "ws-12345678-abcd",
    token: "tok-1",
    agentCard: card,
  });
  assert.equal(result.kind, "ok");
  assert.equal(result.status, 200);
  assert.equal(result.inboundSecret, "secret-ws-12345678-abcd");
  assert.equal(result.authToken, "issued-ws-12345678-abcd");
  const [req] = platform.requestsTo("register");
  assert.equal(req.authorized, true);
  assert.equal(req.origin, platform.url);
  assert.equal(req.contentType, "application/json");
  assert.deepEqual(req.body, {
    id: "ws-12345678-abcd",
    url: "",
    agent_card: {
      name: "molecule-mcp-ws-12345",
      skills: [{ name: "a" }, { name: "b" }],
    },
    delivery_mode: "poll",
  });
  const ws = platform.workspace("ws-12345678-abcd")!;
  assert.equal(ws.deliveryMode, "poll");
  assert.equal(ws.status, "online");
  // An upsert: registering again with the issued token is fine and issues
  // no new token; the token it replaced no longer works.
  const again = await register({
    platformUrl: platform.url,
    workspaceId: "ws-12345678-abcd",
    token: result.authToken!,
  });
  assert.equal(again.kind, "ok");
  assert.equal(again.authToken, undefined);
  const refused = await register({
    platformUrl: platform.url,
    workspaceId: "ws-12345678-abcd",
    token: "tok-1",
  });
  assert.equal(refused.kind, "auth");
  assert.equal(refused.status, 401);
});

test("register 401 (invalid or missing token) is the outcome auth, without the token in it; a 403 is the request (rejected) or the CORS layer (cors)", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": "right-token" },
  });
  for (const token of ["wrong-token-value"]) {
    const result = await register({
      platformUrl: platform.url,
      workspaceId: "ws-1",
      token,
    });
    assert.equal(result.kind, "auth");
    assert.equal(result.status, 401);
    if (token) assert.ok(!result.reason.includes(token));
  }
  // A token that cannot be a header value is never sent.
  for (const token of ["", "two\nlines-0123456789", "x".repeat(5000)]) {
    const before = platform.requests.length;
    const result = await register({
      platformUrl: platform.url,
      workspaceId: "ws-1",
      token,
    });
    assert.equal(result.kind, "rejected");
    assert.match(result.reason, /not a valid HTTP header value/);
    assert.ok(!result.reason.includes("lines-0123456789"));
    assert.equal(platform.requests.length, before, "nothing sent");
  }
  // A 403 with the platform's error at register (kind "platform" refused)
  // is the request, not the token; an empty 403 is the CORS layer.
  platform.fail(
    { kind: "status", status: 403, body: '{"error":"forbidden"}' },
    { times: 1 },
  );
  const refused = await register({
    platformUrl: platform.url,
    workspaceId: "ws-1",
    token: "right-token",
  });
  assert.equal(refused.kind, "rejected");
  assert.equal(refused.platformMessage, "forbidden");
  platform.fail({ kind: "status", status: 403, body: "" }, { times: 1 });
  const cors = await register({
    platformUrl: platform.url,
    workspaceId: "ws-1",
    token: "right-token",
  });
  assert.equal(cors.kind, "cors");
});

test("register 400, 5xx, network errors and redirects are outcomes, not exceptions", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": "t" },
  });
  const go = () =>
    register({ platformUrl: platform.url, workspaceId: "ws-1", token: "t" });
  platform.fail({
    kind: "status",
    status: 400,
    body: '{"error":"invalid request body"}',
  }, { times: 1 });
  const bad = await go();
  assert.equal(bad.kind, "rejected");
  assert.match(bad.reason, /HTTP 400.*invalid request body/);
  platform.fail({
    kind: "status",
    status: 500,
    body: '{"error":"registration failed"}',
  }, { times: 1 });
  assert.equal((await go()).kind, "transient");
  platform.fail({
    kind: "redirect",
    location: "https://elsewhere.example/registry/register",
  }, { times: 1 });
  const before = platform.requests.length;
  const redirected = await go();
  assert.equal(redirected.kind, "redirect");
  assert.match(redirected.reason, /elsewhere\.example/);
  assert.equal(
    platform.requests.length,
    before + 1,
    "the redirect was not followed",
  );
  const down = await register({
    platformUrl: "http://127.0.0.1:1",
    workspaceId: "ws-1",
    token: "t",
  });
  assert.equal(down.kind, "transient");
  assert.equal(down.status, undefined);
});

test("register times out a hung platform", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": "t" },
  });
  platform.fail({ kind: "hang" });
  const t0 = performance.now();
  const result = await register({
    platformUrl: platform.url,
    workspaceId: "ws-1",
    token: "t",
    timeoutMs: 200,
  });
  assert.equal(result.kind, "transient");
  assert.match(result.reason, /timed out/);
  assert.ok(performance.now() - t0 < 3000);
});

test("a workspace removed while its register mints a token: the minted token is saved (the configured one is dead), and the workspace added again beats with it", async () => {
  const id = "3f9c2a4e-8b1d-4c6e-9a7f-1e2d3c4b5a60";
  await using platform = await startPlatformEmulator({
    workspaces: { [id]: null },
  });
  platform.fail({ kind: "delay", ms: 500 }, { path: "register" });
  const store = new MemorySecretStore();
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id, token: "tok-aaaaaaaaaaaa" }],
    intervalMs: 2_000,
    secretStore: store,
  });
  try {
    await waitFor(
      () => platform.requestsTo("register").length === 1,
      5_000,
      "the register under way",
    );
    assert.equal(hb.removeWorkspace(id), true);
    await waitFor(
      () => platform.workspace(id)!.minted.length === 1,
      5_000,
      "the mint",
    );
    const minted = platform.workspace(id)!.minted[0];
    await waitFor(
      () => store.values["auth-token"].get(id) === minted,
      5_000,
      "the minted token saved",
    );
    // Added again with the configured token, which the mint made dead: the
    // stored one is tried, and it is registered, never rejected.
    hb.addWorkspace({ id, token: "tok-aaaaaaaaaaaa" });
    await waitFor(
      () => {
        const [w] = hb.status().workspaces;
        return w.rejected || (w.registered && w.beatsAccepted > 0);
      },
      8_000,
      "registered and beating, or rejected",
    );
    const [status] = hb.status().workspaces;
    assert.equal(status.rejected, false);
    assert.equal(platform.workspace(id)!.minted.length, 1, "no second mint");
  } finally {
    await hb.stop();
  }
});

test("a lookup answered by the tenant guard names the fix (the org id: --org-id, MOLECULE_ORG_ID), once, and is asked again slowly: a 400 without the org header, a bare 404 with a wrong one", async () => {
  const id = "3f9c2a4e-8b1d-4c6e-9a7f-1e2d3c4b5a60";
  const token = "tok-aaaaaaaaaaaa";
  const cases = [
    {
      orgId: undefined,
      says:
        /\(HTTP 400[^)]*\)\. The platform is multi-tenant: its tenant guard wants X-Molecule-Org-Id.*--org-id, MOLECULE_ORG_ID/,
    },
    {
      orgId: "org-wrong",
      says:
        /\(HTTP 404\)\. A bare 404 is the tenant guard's answer to a wrong org id: .*--org-id, MOLECULE_ORG_ID/,
    },
  ];
  for (const { orgId, says } of cases) {
    await using platform = await startPlatformEmulator({
      workspaces: { [id]: token },
      orgId: "org-right",
    });
    const lines = await captureLogs(async (records) => {
      const hb = startHeartbeat({
        platformUrl: platform.url,
        workspaces: [{ id, token }],
        intervalMs: 100,
        timeoutMs: 2_000,
        statePollEvery: 0,
        orgId,
      });
      try {
        const ready = await hb.ready;
        assert.equal(ready.failed.length, 1);
        assert.match(ready.failed[0].reason, says);
        // Beats go on; the lookup is not asked again at the backoff.
        await waitFor(
          () => hb.status().workspaces[0].beatsAccepted >= 10,
          8_000,
          "ten beats",
        );
        assert.equal(platform.requestsTo("workspace").length, 1);
        assert.equal(platform.requestsTo("register").length, 0);
      } finally {
        await hb.stop();
      }
      return levelsAndTexts(records);
    });
    const said = lines.filter((l) => /whether the workspace exists/.test(l));
    assert.equal(said.length, 1, lines.join("\n"));
    assert.match(said[0], /^error: /);
    assert.match(said[0], says);
  }
});
