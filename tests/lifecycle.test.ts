// The workspace's lifecycle (GET /workspaces/:id/state) against the
// emulator: deleted, paused then resumed, revoked token on a live
// workspace, the tenant header.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startHeartbeat } from "../mod.ts";
import { fetchWorkspaceState, lookupWorkspace } from "../src/platform/mod.ts";
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

test("fetchWorkspaceState and lookupWorkspace on today's platform: /state refuses a deleted workspace's tokens (404 deleted only with an admin token); the lookup tells 410, 404 and 200 apart", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { a: TOKEN, b: TOKEN, c: TOKEN },
    adminToken: "admin-token-0123456789",
  });
  const ask = (id: string, token = TOKEN) =>
    fetchWorkspaceState({ platformUrl: platform.url, workspaceId: id, token });
  const look = (id: string) =>
    lookupWorkspace({ platformUrl: platform.url, workspaceId: id });
  assert.equal((await ask("a")).kind, "online");
  assert.equal((await look("a")).kind, "exists");
  platform.pause("a");
  assert.deepEqual(await ask("a"), {
    kind: "paused",
    status: 200,
    platformStatus: "paused",
  });
  platform.remove("b", "hard");
  platform.remove("c", "soft");
  // Deletion revokes every token: /state says only "refused".
  assert.deepEqual(await ask("b"), { kind: "auth", status: 401 });
  assert.deepEqual(await ask("c"), { kind: "auth", status: 401 });
  // The open lookup tells: purged 404, removed 410.
  assert.deepEqual(await look("b"), { kind: "deleted", status: 404 });
  assert.deepEqual(await look("c"), { kind: "deleted", status: 410 });
  assert.equal(platform.requestsTo("workspace").length, 3);
  assert.ok(platform.requestsTo("workspace").every((r) => r.method === "GET"));
  // With an admin token, /state itself says deleted (404 with deleted: true).
  assert.deepEqual(await ask("c", "admin-token-0123456789"), {
    kind: "deleted",
    status: 404,
    platformStatus: "removed",
  });
  assert.equal((await ask("a", "wrong-token-0123")).kind, "auth");
  platform.fail({ kind: "status", status: 500 }, { path: "state", times: 1 });
  assert.equal((await ask("a")).kind, "unknown");
  platform.fail({ kind: "status", status: 503 }, {
    path: "workspace",
    times: 1,
  });
  assert.equal((await look("a")).kind, "unknown");
  // A 404 without "deleted": true (no such endpoint, a firewall) says nothing;
  // nor does a bare 404 from the lookup (a tenant guard refusing the org id).
  const elsewhere = `${platform.url}/no-such-prefix`;
  const older = await fetchWorkspaceState({
    platformUrl: elsewhere,
    workspaceId: "a",
    token: TOKEN,
  });
  assert.equal(older.kind, "unknown");
  // Nor a lookup's 404 from a wrong base path or a gateway, JSON and all
  // ({"error":"not found"}): only the platform's "workspace not found" is.
  const lost = await lookupWorkspace({
    platformUrl: elsewhere,
    workspaceId: "a",
  });
  assert.equal(lost.kind, "unknown", JSON.stringify(lost));
  await using guarded = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { a: TOKEN },
    orgId: "org-right",
  });
  const wrongOrg = await lookupWorkspace({
    platformUrl: guarded.url,
    workspaceId: "a",
    orgId: "org-wrong",
  });
  assert.deepEqual(wrongOrg, {
    kind: "unknown",
    status: 404,
    reason: "HTTP 404",
    tenantGuard: "org-wrong", // the guard's bare 404 to the org id sent
  });
});

test("deleted mid-run: one error naming the workspace, no token guess, its beats stop; the others go on", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
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

test("deleted before start: the lookup before register (GET /workspaces/:id 410) says deleted; nothing is registered, no token guess", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { old: TOKEN },
  });
  platform.remove("old", "soft");
  await captureLogs(async (records) => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: "old", token: TOKEN }],
      intervalMs: 100,
      timeoutMs: 2_000, // not the interval: a loaded machine is slow
    });
    const deleted: string[] = [];
    hb.addEventListener(
      "deleted",
      (e) => deleted.push((e as CustomEvent).detail.workspaceId),
    );
    try {
      const ready = await hb.ready;
      // Today's platform would answer a removed workspace's register 200
      // (and mint it a token that never works): it is never sent.
      assert.deepEqual(ready.rejected, []);
      assert.deepEqual(ready.deleted, ["old"]);
      await waitFor(() => deleted.length === 1, 5_000, "the deleted event");
      const beats = platform.requestsTo("heartbeat", "old").length;
      assert.ok(beats <= 2, `${beats} beats before the lookup's answer`);
      assert.equal(hb.status().workspaces[0].state, "deleted");
      assert.equal(hb.status().workspaces[0].lastState, "deleted");
      assert.equal(platform.requestsTo("register").length, 0);
      assert.equal(platform.requestsTo("workspace").at(-1)!.status, 410);
      await new Promise((r) => setTimeout(r, 300));
      // (A beat already on the wire when the answer came may land after it.)
      assert.ok(platform.requestsTo("heartbeat", "old").length <= beats + 1);
    } finally {
      await hb.stop();
    }
    const lines = levelsAndTexts(records);
    assert.ok(!lines.some((l) => /REVOKED|rejected/.test(l)), lines.join("\n"));
    assert.equal(
      lines.filter((l) => /deleted on the platform/.test(l)).length,
      1,
      lines.join("\n"),
    );
  });
});

test("paused: beats stop, state is asked at the low rate, beats resume when it is resumed", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
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

test("revoked token on a live workspace: GET /workspaces/:id answers 200, so the escalation is certain and names the token's source; the lookup is asked at the first refusal and at each escalation only", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { r: TOKEN },
  });
  await captureLogs(async (records) => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{
        id: "r",
        token: TOKEN,
        tokenSource: "the token file /run/molecule-token",
        tokenReread: true,
      }],
      intervalMs: 100,
      timeoutMs: 2_000, // not the interval: a loaded machine is slow
      // No scheduled /state: a poll asked by the beat before the revoke
      // and refused after it would ask the lookup once more.
      statePollEvery: 0,
    });
    const deleted: string[] = [];
    hb.addEventListener("deleted", () => deleted.push("r"));
    // Registered too: beats do not wait on register, and a register still
    // under way when the token goes is refused and counted on its own.
    await waitFor(() =>
      hb.status().workspaces[0].beatsAccepted >= 1 &&
      hb.status().workspaces[0].registered
    );
    const lookupsBefore = platform.requestsTo("workspace").length;
    platform.revoke("r"); // a rotation: every call refused
    // The error once refusals span a few seconds (a 401 can be a blip).
    await waitFor(
      () => hb.metrics().authEscalations >= 1,
      10_000,
      "the escalation",
    );
    const lookups = platform.requestsTo("workspace").length - lookupsBefore;
    const failures = hb.status().workspaces[0].authFailures;
    await hb.stop();
    const escalation = levelsAndTexts(records).find((l) =>
      l.startsWith("error") && l.includes("REVOKED")
    );
    assert.ok(escalation, levelsAndTexts(records).join("\n"));
    assert.match(
      escalation,
      /platform says the workspace exists and refuses the token from the token file \/run\/molecule-token/,
    );
    assert.match(escalation, /re-read when it changes: no restart needed/);
    assert.ok(!/deleted/.test(escalation), escalation);
    assert.deepEqual(deleted, []);
    assert.equal(hb.status().workspaces[0].state, "backing-off");
    // The first refusal asks (and its 200 confirms); the rest do not,
    // up to the escalation.
    assert.ok(
      failures >= 4 && lookups >= 1 && lookups <= 2,
      `${lookups} lookups for ${failures} failures`,
    );
    assert.ok(
      platform.requestsTo("workspace").every((r) => r.status === 200),
    );
  });
});

test("X-Molecule-Org-Id only on /workspaces/… (state, lookup), never on /registry/*, never for a workspace with its own platform URL", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { o: TOKEN },
    orgId: "org-42", // the tenant guard is on
  });
  await using own = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { elsewhere: TOKEN },
  });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [
      { id: "o", token: TOKEN },
      { id: "elsewhere", token: TOKEN, platformUrl: `${own.url}/` },
    ],
    intervalMs: 100,
    timeoutMs: 2_000, // not the interval: a loaded machine is slow
    orgId: "org-42",
    checkStateAtStart: true,
  });
  try {
    await waitFor(() => platform.requestsTo("heartbeat").length >= 2);
    await waitFor(() => platform.requestsTo("state").length >= 1);
    await waitFor(() => own.requestsTo("state").length >= 1);
    await waitFor(() => own.requestsTo("heartbeat").length >= 2);
    // A refused beat asks the lookup, behind the tenant guard too.
    platform.revoke("o");
    await waitFor(() => platform.requestsTo("workspace").length >= 1);
  } finally {
    await hb.stop();
  }
  for (const r of platform.requests) {
    if (r.path === "register" || r.path === "heartbeat") {
      assert.equal(r.orgId, undefined, `${r.path} carried the org header`);
    } else {
      assert.equal(r.orgId, "org-42", r.path);
      assert.notEqual(r.status, 400, `${r.path}: the tenant guard refused it`);
    }
  }
  assert.equal(platform.requestsTo("state")[0].status, 200);
  assert.equal(platform.requestsTo("state")[0].method, "GET");
  assert.equal(platform.requestsTo("workspace")[0].status, 200);
  // Its own platform: every call there, none with the org header, Origin its own.
  assert.equal(
    platform.requests.filter((r) => r.workspaceId === "elsewhere").length,
    0,
  );
  assert.ok(own.requests.length >= 4);
  assert.ok(own.requests.every((r) => r.orgId === undefined));
  assert.ok(own.requests.every((r) => r.origin === own.url));
});

test("command: a deleted workspace exits 4 (--once, mid-run, wrapper mode after stopping the child); paused with --once exits 1", async () => {
  await using dir = await scratch("molecule-life-");
  await using platform = await startPlatformEmulator({
    uuidIds: false,
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
  // --once needs no short interval (its request deadline would be 200 ms:
  // a loaded machine's first lookup timed out in CI).
  const paused = await runScript(CLI, {
    args: ["--once"],
    env: { ...env("p"), MOLECULE_HEARTBEAT_INTERVAL: "5" },
  });
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
  // Registered first: a purge between the lookup and the register would
  // let the platform's upsert create a ghost (a race the platform opens).
  await waitFor(
    () =>
      platform.requestsTo("heartbeat", "d").length >= 1 &&
      platform.requestsTo("register", "d").some((r) => r.status === 200),
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

  const once = await runScript(CLI, {
    args: ["--once"],
    env: { ...env("d"), MOLECULE_HEARTBEAT_INTERVAL: "5" },
  });
  assert.equal(once.code, 4, once.stderr);
  // Purged before this run: the lookup before register cannot tell a
  // deleted workspace from a wrong id, and says so, naming the setting.
  assert.match(
    once.stderr,
    /workspace d is not on the platform .*deleted, or the id is wrong \(check WORKSPACE_ID\)/,
  );
});
