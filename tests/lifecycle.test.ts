// The workspace's lifecycle (GET /workspaces/:id/state) against the
// emulator: deleted, paused then resumed, revoked token on a live
// workspace, the tenant header.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fetchWorkspaceState, startHeartbeat } from "../mod.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";
import {
  nodeBin,
  runScript,
  runtimeArgs,
  startPiped,
} from "./helpers/runtime.ts";
import { waitFor } from "./helpers/wait.ts";
import { scratch } from "./helpers/scratch.ts";

const TOKEN = "life-token-0123456789";
const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const FIXTURE = fileURLToPath(new URL("./fixtures/child.mjs", import.meta.url));

test("fetchWorkspaceState: online, paused, deleted hard and soft, 401, 500, and a platform without the endpoint", async () => {
  await using platform = await startPlatformEmulator({
    workspaces: { a: TOKEN, b: TOKEN, c: TOKEN },
  });
  const ask = (id: string, token = TOKEN) =>
    fetchWorkspaceState({ platformUrl: platform.url, workspaceId: id, token });
  assert.equal((await ask("a")).kind, "online");
  platform.pause("a");
  assert.deepEqual(await ask("a"), {
    kind: "paused",
    status: 200,
    platformStatus: "paused",
  });
  platform.remove("b", "hard");
  assert.deepEqual(await ask("b"), { kind: "deleted", status: 404 });
  platform.remove("c", "soft");
  assert.deepEqual(await ask("c"), {
    kind: "deleted",
    status: 404,
    platformStatus: "removed",
  });
  assert.equal((await ask("a", "wrong-token-0123")).kind, "auth");
  platform.fail({ kind: "status", status: 500 }, { path: "state", times: 1 });
  assert.equal((await ask("a")).kind, "unknown");
  // A 404 without "deleted": true (an older platform) says nothing.
  const older = await fetchWorkspaceState({
    platformUrl: `${platform.url}/no-such-prefix`,
    workspaceId: "a",
    token: TOKEN,
  });
  assert.equal(older.kind, "unknown");
});

test("deleted mid-run: one error naming the workspace, no token guess, its beats stop; the others go on", async () => {
  await using platform = await startPlatformEmulator({
    workspaces: { gone: TOKEN, stays: TOKEN },
  });
  await captureLogs(async (records) => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: "gone", token: TOKEN }, { id: "stays", token: TOKEN }],
      intervalMs: 100,
      timeoutMs: 2_000, // not the interval: a loaded machine is slow
    });
    const deleted: string[] = [];
    hb.addEventListener(
      "deleted",
      (e) => deleted.push((e as CustomEvent).detail.workspaceId),
    );
    await waitFor(() =>
      hb.status().workspaces.every((w) => w.beatsAccepted >= 2)
    );
    platform.remove("gone");
    await waitFor(() => deleted.length === 1, 5_000, "the deleted event");
    const beatsThen = platform.requestsTo("heartbeat", "gone").length;
    const othersThen = platform.requestsTo("heartbeat", "stays").length;
    await waitFor(
      () => platform.requestsTo("heartbeat", "stays").length >= othersThen + 5,
    );
    await hb.stop();
    assert.deepEqual(deleted, ["gone"]);
    const [gone, stays] = hb.status().workspaces;
    assert.equal(gone.deleted, true);
    assert.equal(gone.lastState, "deleted");
    assert.equal(stays.deleted, false);
    assert.ok(platform.requestsTo("heartbeat", "gone").length <= beatsThen + 1);
    const lines = levelsAndTexts(records);
    const errors = lines.filter((l) =>
      l.startsWith("error") && l.includes("gone")
    );
    assert.equal(errors.length, 1, lines.join("\n"));
    assert.match(
      errors[0],
      /deleted on the platform.*Create a new workspace in the canvas/,
    );
    assert.ok(!lines.some((l) => /REVOKED/.test(l)), lines.join("\n"));
  });
});

test("deleted before start: the refused register is explained as a deletion, not a bad token", async () => {
  await using platform = await startPlatformEmulator({
    workspaces: { old: TOKEN },
  });
  platform.remove("old", "soft");
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "old", token: TOKEN }],
    intervalMs: 100,
    timeoutMs: 2_000, // not the interval: a loaded machine is slow
  });
  const ready = await hb.ready;
  await hb.stop();
  assert.deepEqual(ready.deleted, ["old"]);
  assert.deepEqual(ready.rejected, []);
  assert.ok(
    platform.requestsTo("heartbeat").length <= 1,
    "beats do not wait on register: at most the first went out beside it",
  );
});

test("paused: beats stop, state is asked at the low rate, beats resume when it is resumed", async () => {
  await using platform = await startPlatformEmulator({
    workspaces: { p: TOKEN },
  });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "p", token: TOKEN }],
    intervalMs: 100,
    timeoutMs: 2_000, // not the interval: a loaded machine is slow
    statePollEvery: 2,
    pausedCheckMs: 300,
  });
  const events: string[] = [];
  for (const type of ["paused", "resumed"]) {
    hb.addEventListener(type, () => events.push(type));
  }
  try {
    await waitFor(() => hb.status().workspaces[0].beatsAccepted >= 3);
    platform.pause("p");
    await waitFor(() => hb.status().workspaces[0].paused, 5_000, "paused");
    const beats = platform.requestsTo("heartbeat").length;
    const states = platform.requestsTo("state").length;
    await waitFor(
      () => platform.requestsTo("state").length >= states + 2,
      5_000,
      "state asked while paused",
    );
    // Paused: at most the beat that was already under way.
    assert.ok(platform.requestsTo("heartbeat").length <= beats + 1);
    platform.resume("p");
    await waitFor(() => !hb.status().workspaces[0].paused, 5_000, "resumed");
    await waitFor(() => platform.requestsTo("heartbeat").length >= beats + 3);
    assert.deepEqual(events, ["paused", "resumed"]);
    // The low rate: a 300 ms check while paused, not one per 100 ms beat.
    const whilePaused = platform.requestsTo("state").filter((r) =>
      r.at > platform.requestsTo("heartbeat")[beats - 1].at
    );
    assert.ok(whilePaused.length <= 8, `state requests: ${whilePaused.length}`);
  } finally {
    await hb.stop();
  }
});

test("revoked token on a live workspace: the escalation says so with certainty, state asked at the first refusal and at each escalation only", async () => {
  await using platform = await startPlatformEmulator({
    workspaces: { r: TOKEN },
  });
  await captureLogs(async (records) => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: "r", token: TOKEN }],
      intervalMs: 100,
      timeoutMs: 2_000, // not the interval: a loaded machine is slow
    });
    await waitFor(() => hb.status().workspaces[0].beatsAccepted >= 1);
    platform.revoke("r");
    await waitFor(() => hb.status().workspaces[0].authFailures >= 4, 5_000);
    await hb.stop();
    const escalation = levelsAndTexts(records).find((l) =>
      l.startsWith("error") && l.includes("REVOKED")
    );
    assert.ok(escalation, levelsAndTexts(records).join("\n"));
    assert.match(escalation, /confirms the workspace exists/);
    assert.ok(!/likely because the workspace was deleted/.test(escalation));
    assert.equal(hb.status().workspaces[0].lastState, "auth");
    const states = platform.requestsTo("state").length;
    const failures = hb.status().workspaces[0].authFailures;
    // Refusals 1 and 3 ask; 2, 4, 5… (up to 22) do not.
    assert.ok(
      failures >= 4 && failures < 23 && states >= 1 && states <= 2,
      `${states} state requests for ${failures} failures`,
    );
  });
});

test("X-Molecule-Org-Id goes on every request: register, heartbeat, state", async () => {
  await using platform = await startPlatformEmulator({
    workspaces: { o: TOKEN },
  });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "o", token: TOKEN }],
    intervalMs: 100,
    timeoutMs: 2_000, // not the interval: a loaded machine is slow
    orgId: "org-42",
    checkStateAtStart: true,
  });
  await waitFor(() => platform.requestsTo("heartbeat").length >= 2);
  await waitFor(() => platform.requestsTo("state").length >= 1);
  await hb.stop();
  assert.ok(platform.requests.length >= 4);
  assert.ok(platform.requests.every((r) => r.orgId === "org-42"));
  assert.equal(platform.requestsTo("state")[0].method, "GET");
});

test("command: a deleted workspace exits 4 (--once, mid-run, wrapper mode after stopping the child); paused with --once exits 1", async () => {
  await using dir = await scratch("molecule-life-");
  await using platform = await startPlatformEmulator({
    workspaces: { d: TOKEN, p: TOKEN },
  });
  const env = (id: string) => ({
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: id,
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
    CONFIGS_DIR: dir.path,
    MOLECULE_HEARTBEAT_INTERVAL: "0.2",
  });
  platform.pause("p");
  const paused = await runScript(CLI, { args: ["--once"], env: env("p") });
  assert.equal(paused.code, 1, paused.stderr);
  assert.match(paused.stderr, /paused on the platform/);

  // Mid-run, wrapping a child: the child is stopped as on SIGTERM, exit 4.
  const marker = join(dir.path, "marker");
  const [cmd, args] = runtimeArgs(CLI, [
    "--",
    nodeBin(),
    FIXTURE,
    "marker",
    marker,
  ]);
  const run = startPiped(cmd, args, { env: env("d") });
  await waitFor(
    () => platform.requestsTo("heartbeat", "d").length >= 1,
    10_000,
  );
  await waitFor(
    async () =>
      (await import("node:fs/promises")).readFile(marker, "utf8").then(
        (t) => t.includes("ready"),
        () => false,
      ),
    10_000,
  );
  platform.remove("d");
  const done = await run.done;
  assert.equal(done.code, 4, done.stderr);
  assert.match(done.stderr, /deleted on the platform/);
  const { readFile } = await import("node:fs/promises");
  assert.match(await readFile(marker, "utf8"), /SIGTERM/);

  const once = await runScript(CLI, { args: ["--once"], env: env("d") });
  assert.equal(once.code, 4, once.stderr);
  assert.match(once.stderr, /workspace d was deleted on the platform/);
});
