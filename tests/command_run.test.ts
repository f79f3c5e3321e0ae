// The command's plain run and --once (issue 20 point 3, and the command's
// holes of point 7), run as users run it: mod.ts, the module JSR serves.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { HeartbeatHandle } from "../mod.ts";
import { onceDeadlineMs, runUntilDone } from "../src/cli/run.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";
import { nodeBin, runScript, startScript } from "./helpers/runtime.ts";
import { scratch } from "./helpers/scratch.ts";
import { waitFor } from "./helpers/wait.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const FIXTURE = fileURLToPath(new URL("./fixtures/child.mjs", import.meta.url));
const TOKEN = "run-token-0123456789";

/** The command's environment for workspace ws-1 on `platformUrl`. */
const oneWorkspace = (platformUrl: string, configsDir: string) => ({
  PLATFORM_URL: platformUrl,
  WORKSPACE_ID: "ws-1",
  MOLECULE_WORKSPACE_TOKEN: TOKEN,
  CONFIGS_DIR: configsDir,
});

const fleetJson = (n: number, prefix = "ws") =>
  JSON.stringify(
    Array.from(
      { length: n },
      (_, i) => ({ id: `${prefix}-${i}`, token: `${TOKEN}-${i}` }),
    ),
  );

test("--once over the cap: 24 workspaces with --max-in-flight 16 register, beat and are asked, then exit 0", async () => {
  await using platform = await startPlatformEmulator({ uuidIds: false });
  await using dir = await scratch("molecule-run-");
  // Every answer a little slow: the cap is full while the state questions queue.
  platform.fail({ kind: "delay", ms: 100 });
  const r = await runScript(MOD, {
    // A long interval: --once waits neither for the interval's phases nor
    // for a pace meant for a large fleet's backlog (it took 40 to 50 s).
    args: ["--once", "--max-in-flight", "16", "--interval", "60"],
    env: {
      PLATFORM_URL: platform.url,
      MOLECULE_WORKSPACES: fleetJson(24),
      CONFIGS_DIR: dir.path,
    },
    timeoutMs: 30_000,
  });
  assert.equal(r.code, 0, r.stderr);
  // Each beaten, once.
  assert.deepEqual(
    platform.requestsTo("heartbeat").map((q) => q.workspaceId).sort(),
    Array.from({ length: 24 }, (_, i) => `ws-${i}`).sort(),
  );
  assert.equal(
    new Set(platform.requestsTo("state").map((q) => q.workspaceId)).size,
    24,
    "every state question was asked, none dropped",
  );
});

test("a signal during --once exits 143 (SIGTERM) or 130 (SIGINT), never 0", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  platform.fail({ kind: "hang" });
  await using dir = await scratch("molecule-run-");
  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    const before = platform.requests.length;
    const run = startScript(MOD, {
      args: ["--once", "--interval", "20"],
      env: oneWorkspace(platform.url, dir.path),
    });
    await waitFor(
      () => platform.requests.length >= before + 2,
      10_000,
      "its requests hanging",
    );
    run.kill(signal);
    const done = await run.done;
    assert.equal(done.code, code, done.stderr);
    assert.match(done.stderr, new RegExp(`${signal} during --once`));
  }
});

test("a second signal while a plain run stops (a Ctrl-C delivered twice, a supervisor's TERM to the group) is ignored: exit 0, not killed by it", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  await using dir = await scratch("molecule-run-");
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    const before = platform.requestsTo("heartbeat").length;
    const run = startScript(MOD, {
      args: ["--interval", "0.2"],
      env: oneWorkspace(platform.url, dir.path),
    });
    await waitFor(
      () => platform.requestsTo("heartbeat").length > before,
      10_000,
      "a beat",
    );
    run.kill(signal);
    await new Promise((r) => setTimeout(r, 2));
    run.kill(signal);
    const done = await run.done;
    assert.equal(done.signal, null, `killed by ${done.signal}: ${done.stderr}`);
    assert.equal(done.code, 0, done.stderr);
  }
});

test("--once has its own deadline: with a handle that never finishes, exit 1 naming what did not", async () => {
  // A stand-in handle whose registers, beats and state never answer.
  const target = new EventTarget();
  const hb = Object.assign(target, {
    ready: new Promise(() => {}),
    status: () => ({
      stopped: false,
      intervalMs: 100,
      timeoutMs: 100,
      registerConcurrency: 8,
      uptimeSeconds: 0,
      inFlight: 1,
      maxInFlight: 16,
      beatsSkipped: 0,
      retriesDeferred: 0,
      workspaces: [{
        workspaceId: "stuck",
        registered: false,
        rejected: false,
        deleted: false,
        paused: false,
        lastState: undefined,
        beatsSent: 0,
        beatsAccepted: 0,
        lastSuccessAt: undefined,
        sinceLastSuccessMs: undefined,
        lastStatus: undefined,
        lastError: undefined,
        consecutiveFailures: 0,
        authFailures: 0,
        secretStored: false,
        beatsSkipped: 0,
      }],
    }),
  }) as unknown as HeartbeatHandle;
  assert.equal(onceDeadlineMs(hb.status()), 100 * 3 + 1_000);
  const lines = await captureLogs(async (records) => {
    const t0 = performance.now();
    const code = await runUntilDone(hb, {
      once: true,
      demo: false,
    });
    assert.equal(code, 1);
    assert.ok(performance.now() - t0 < 5_000);
    return levelsAndTexts(records);
  });
  assert.ok(
    lines.some((l) =>
      /--once: workspace stuck did not finish within 1 s: no answer to its register, its heartbeat, its state/
        .test(l)
    ),
    lines.join("\n"),
  );
});

test("--once's deadline grows with the fleet and the cap", () => {
  const status = (n: number, maxInFlight: number) => ({
    stopped: false,
    intervalMs: 20_000,
    timeoutMs: 10_000,
    registerConcurrency: 8,
    uptimeSeconds: 0,
    inFlight: 0,
    maxInFlight,
    beatsSkipped: 0,
    retriesDeferred: 0,
    workspaces: new Array(n).fill(undefined),
  });
  assert.equal(onceDeadlineMs(status(1, 256)), 31_000);
  // 24 over a cap of 16: beats and questions need 3 rounds, registers 3.
  assert.equal(onceDeadlineMs(status(24, 16)), 51_000);
  assert.equal(onceDeadlineMs(status(1_000, 256)), 10_000 * 127 + 1_000);
});

test("hole: a port in use for --health-port exits 2 before the child starts or anything is sent", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  await using dir = await scratch("molecule-run-");
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
  const port = (busy.address() as { port: number }).port;
  const marker = join(dir.path, "marker");
  try {
    const r = await runScript(MOD, {
      args: [
        "--health-port",
        String(port),
        "--",
        nodeBin(),
        FIXTURE,
        "marker",
        marker,
      ],
      env: oneWorkspace(platform.url, dir.path),
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /cannot serve health .*pick another --health-port/);
    // A child started before the failure would write its marker in a moment.
    await new Promise((r) => setTimeout(r, 1_500));
    await assert.rejects(stat(marker), "the child never started");
    assert.equal(platform.requests.length, 0, "nothing was sent");
  } finally {
    busy.close();
  }
});

test("hole: a watched workspaces file that grows from one entry to two keeps one secret file per workspace", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    secretFor: (id) => `secret-of-${id}`,
  });
  await using dir = await scratch("molecule-run-");
  const file = join(dir.path, "workspaces.json");
  const entries = (ids: string[]) =>
    JSON.stringify(ids.map((id) => ({ id, token: `token-of-${id}-000` })));
  await writeFile(file, entries(["a"]), { mode: 0o600 });
  const run = startScript(MOD, {
    args: ["--workspaces-file", file, "--interval", "0.2"],
    env: { PLATFORM_URL: platform.url, CONFIGS_DIR: dir.path },
  });
  try {
    await waitFor(() => platform.requestsTo("heartbeat", "a").length >= 1);
    await writeFile(file, entries(["a", "b"]));
    await waitFor(
      () => platform.requestsTo("heartbeat", "b").length >= 2,
      10_000,
      "b beats",
    );
    const read = (name: string) =>
      readFile(join(dir.path, name), "utf8").catch(() => undefined);
    await waitFor(async () =>
      (await read(".platform_inbound_secret.b")) === "secret-of-b"
    );
    assert.equal(await read(".platform_inbound_secret.a"), "secret-of-a");
    const names = await readdir(dir.path);
    assert.ok(!names.includes(".platform_inbound_secret"), names.join());
  } finally {
    run.kill("SIGTERM");
    await run.done;
  }
});
