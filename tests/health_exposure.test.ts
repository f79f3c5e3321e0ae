import { test } from "node:test";
import assert from "node:assert/strict";
import { startHeartbeat } from "../mod.ts";
import { ConfigError } from "../src/shared/errors.ts";
import { envFromRecord } from "../src/shared/env.ts";
import { maskSecrets } from "../src/shared/mask.ts";
import { healthSetting } from "../src/cli/settings.ts";
import { parseFlags } from "../src/cli/flags.ts";
import {
  bearerMatches,
  isLoopbackHost,
  offLoopbackWarning,
} from "../src/health/exposure.ts";
import { startHealthServer } from "../src/health/server.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { getJson, MOD, startWithHealth } from "./helpers/health.ts";
import { runScript } from "./helpers/runtime.ts";
import { scratch } from "./helpers/scratch.ts";
import { waitFor } from "./helpers/wait.ts";

const HEALTH_TOKEN = "health-token-5f0c2d1e9a7b4c3e";

test("loopback hosts: 127.0.0.0/8, ::1, localhost; anything else is reachable from elsewhere", () => {
  for (
    const host of [
      "127.0.0.1",
      "127.3.2.1",
      "localhost",
      "LOCALHOST",
      "api.localhost",
      "::1",
      "[::1]",
      "0:0:0:0:0:0:0:1",
      "::ffff:127.0.0.1",
    ]
  ) {
    assert.ok(isLoopbackHost(host), host);
  }
  for (
    const host of [
      "0.0.0.0",
      "::",
      "10.0.0.5",
      "192.168.1.2",
      "example.com",
      "128.0.0.1",
      "::ffff:10.0.0.1",
      "localhost.example.com",
    ]
  ) {
    assert.ok(!isLoopbackHost(host), host);
  }
});

test("bearer tokens: the scheme in any case, the exact token; nothing else", () => {
  assert.ok(bearerMatches(`Bearer ${HEALTH_TOKEN}`, HEALTH_TOKEN));
  assert.ok(bearerMatches(`bearer  ${HEALTH_TOKEN} `, HEALTH_TOKEN));
  for (
    const header of [
      undefined,
      "",
      HEALTH_TOKEN,
      `Basic ${HEALTH_TOKEN}`,
      `Bearer ${HEALTH_TOKEN}x`,
      `Bearer ${HEALTH_TOKEN.slice(1)}`,
      `Bearer ${HEALTH_TOKEN} extra`,
    ]
  ) {
    assert.ok(!bearerMatches(header, HEALTH_TOKEN), String(header));
  }
  assert.ok(!bearerMatches("Bearer anything", undefined));
});

test("MOLECULE_HEALTH_TOKEN: read with the health port, 16 printable characters at least; a bad one is a configuration error naming it", () => {
  const flags = parseFlags([
    "--health-port",
    "8081",
    "--health-host",
    "0.0.0.0",
  ]);
  assert.deepEqual(healthSetting(flags, envFromRecord({})), {
    port: 8081,
    host: "0.0.0.0",
  });
  assert.deepEqual(
    healthSetting(
      flags,
      envFromRecord({ MOLECULE_HEALTH_TOKEN: ` ${HEALTH_TOKEN}\n` }),
    ),
    { port: 8081, host: "0.0.0.0", token: HEALTH_TOKEN },
  );
  for (const bad of ["short", "has a space in it 0123456789"]) {
    assert.throws(
      () => healthSetting(flags, envFromRecord({ MOLECULE_HEALTH_TOKEN: bad })),
      (e: unknown) =>
        e instanceof ConfigError &&
        /MOLECULE_HEALTH_TOKEN must be 16/.test(e.message),
    );
  }
  assert.equal(
    healthSetting(
      parseFlags([]),
      envFromRecord({ MOLECULE_HEALTH_TOKEN: "x" }),
    ),
    undefined,
  );
  assert.match(
    offLoopbackWarning("http://0.0.0.0:8081", false),
    /\/status is not served \(404\) until MOLECULE_HEALTH_TOKEN is set/,
  );
  assert.match(
    offLoopbackWarning("http://0.0.0.0:8081", true),
    /\/status and the ids in \/readyz need Authorization: Bearer \$MOLECULE_HEALTH_TOKEN/,
  );
});

async function fleet() {
  const platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-secret-id": "tok-0123456789abc" },
  });
  platform.fail({ kind: "status", status: 503 }, { path: "heartbeat" }); // never ready
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-secret-id", token: "tok-0123456789abc" }],
    intervalMs: 200,
  });
  return { platform, hb };
}

test("off loopback without a token: /status is 404; /healthz, /readyz and /metrics stay open and name no id", async () => {
  const { platform, hb } = await fleet();
  // On 127.0.0.1 for the test, under the rules off loopback.
  const server = await startHealthServer(hb, {
    host: "127.0.0.1",
    port: 0,
    exposed: true,
  });
  try {
    assert.equal(server.exposed, true);
    const status = await getJson(`${server.url}/status`);
    assert.equal(status.status, 404);
    assert.match(
      String(status.body.error),
      /only with MOLECULE_HEALTH_TOKEN set/,
    );
    assert.equal(
      (await getJson(`${server.url}/status`, {
        headers: { authorization: `Bearer ${HEALTH_TOKEN}` },
      })).status,
      404,
    );
    assert.equal((await getJson(`${server.url}/healthz?verbose`)).status, 200);
    const ready = await getJson(`${server.url}/readyz?verbose`);
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.body.reasons, [
      "1 of 1 served workspace(s) have no accepted heartbeat yet",
    ]);
    assert.equal(ready.body.notReady, undefined);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const text of [JSON.stringify(ready.body), metrics]) {
      assert.ok(!text.includes("ws-secret-id"), text.slice(0, 200));
    }
  } finally {
    await server.close();
    await hb.stop();
    await platform.close();
  }
});

test("off loopback with MOLECULE_HEALTH_TOKEN: /status and the ids in /readyz need Authorization: Bearer; the probes and /metrics stay open", async () => {
  const { platform, hb } = await fleet();
  const server = await startHealthServer(hb, {
    host: "127.0.0.1",
    port: 0,
    exposed: true,
    token: HEALTH_TOKEN,
  });
  const auth = { headers: { authorization: `Bearer ${HEALTH_TOKEN}` } };
  try {
    const missing = await fetch(`${server.url}/status`);
    assert.equal(missing.status, 401);
    assert.equal(
      missing.headers.get("www-authenticate"),
      'Bearer realm="molecule-heartbeat"',
    );
    const body = await missing.text();
    assert.ok(!body.includes("ws-secret-id"));
    assert.equal(
      (await getJson(`${server.url}/status`, {
        headers: { authorization: "Bearer wrong-token-0123456789" },
      })).status,
      401,
    );
    const status = await getJson(`${server.url}/status`, auth);
    assert.equal(status.status, 200);
    assert.equal(
      (status.body.workspaces as { workspaceId: string }[])[0].workspaceId,
      "ws-secret-id",
    );
    const open = await getJson(`${server.url}/readyz?verbose`);
    assert.deepEqual(open.body.reasons, [
      "1 of 1 served workspace(s) have no accepted heartbeat yet",
    ]);
    const named = await getJson(`${server.url}/readyz?verbose`, auth);
    assert.deepEqual(named.body.reasons, [
      "1 of 1 served workspace(s) have no accepted heartbeat yet: ws-secret-id",
    ]);
    assert.equal(
      (named.body.notReady as { workspaceId: string }[])[0].workspaceId,
      "ws-secret-id",
    );
    assert.equal((await fetch(`${server.url}/metrics`)).status, 200);
    assert.equal((await getJson(`${server.url}/healthz`)).status, 200);
    // The token is a secret: masked wherever it would be echoed.
    assert.equal(maskSecrets(`token ${HEALTH_TOKEN}`), "token [redacted]");
  } finally {
    await server.close();
    await hb.stop();
    await platform.close();
  }
});

test("on loopback: /status and the ids are open; with a token set, /status needs it there too", async () => {
  const { platform, hb } = await fleet();
  const open = await startHealthServer(hb, { host: "127.0.0.1", port: 0 });
  const locked = await startHealthServer(hb, {
    host: "127.0.0.1",
    port: 0,
    token: HEALTH_TOKEN,
  });
  try {
    assert.equal(open.exposed, false);
    assert.equal((await getJson(`${open.url}/status`)).status, 200);
    assert.deepEqual((await getJson(`${open.url}/readyz`)).body.reasons, [
      "1 of 1 served workspace(s) have no accepted heartbeat yet: ws-secret-id",
    ]);
    assert.equal((await getJson(`${locked.url}/status`)).status, 401);
    assert.equal(
      (await getJson(`${locked.url}/status`, {
        headers: { authorization: `Bearer ${HEALTH_TOKEN}` },
      })).status,
      200,
    );
    assert.match(
      String((await getJson(`${locked.url}/readyz`)).body.reasons),
      /ws-secret-id/,
    );
  } finally {
    await open.close();
    await locked.close();
    await hb.stop();
    await platform.close();
  }
});

test("the command: a bad MOLECULE_HEALTH_TOKEN exits 2 naming it; a good one locks /status", async () => {
  await using platform = await startPlatformEmulator({ uuidIds: false });
  await using dir = await scratch("molecule-health-token-");
  const env = {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: "ws-1",
    MOLECULE_WORKSPACE_TOKEN: "tok-1-0123456789",
    CONFIGS_DIR: dir.path,
  };
  const bad = await runScript(MOD, {
    args: ["--health-port", "0"],
    env: { ...env, MOLECULE_HEALTH_TOKEN: "too short" },
  });
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(
    bad.stderr,
    /MOLECULE_HEALTH_TOKEN must be 16 to 4096 printable ASCII characters/,
  );
  const { run, base } = await startWithHealth(["--interval", "0.2"], {
    ...env,
    MOLECULE_HEALTH_TOKEN: HEALTH_TOKEN,
  });
  try {
    await waitFor(() => platform.requestsTo("heartbeat").length >= 1, 10_000);
    assert.equal((await getJson(`${base}/status`)).status, 401);
    assert.equal(
      (await getJson(`${base}/status`, {
        headers: { authorization: `Bearer ${HEALTH_TOKEN}` },
      })).status,
      200,
    );
    assert.ok(
      !run.stderr().includes(HEALTH_TOKEN),
      "the token is never logged",
    );
  } finally {
    run.kill("SIGTERM");
  }
  assert.equal((await run.done).code, 0);
});
