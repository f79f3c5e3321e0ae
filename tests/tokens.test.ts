// Tokens that survive blips, full disks, crashes and a second process, and
// only the platform's answer counts: through mod.ts (the entry `deno run -A
// jsr:@molecule/heartbeat` runs), against the emulator on loopback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { readiness } from "../src/health/probes.ts";
import { runScript, startScript } from "./helpers/runtime.ts";
import { sleep, waitFor } from "./helpers/wait.ts";
import { scratch } from "./helpers/scratch.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const TOKEN = "configured-token-0123456789";
const ID = "3f9c2a4e-8b1d-4c6e-9a7f-1e2d3c4b5a60";

const readMaybe = (path: string) => readFile(path, "utf8").catch(() => "");

/** The command's environment: one workspace with the configured token. */
const agentEnv = (platformUrl: string, configsDir: string) => ({
  PLATFORM_URL: platformUrl,
  WORKSPACE_ID: ID,
  MOLECULE_WORKSPACE_TOKEN: TOKEN,
  CONFIGS_DIR: configsDir,
});

test("command (mod.ts): one 401 does not drop the token the platform issued: the beats after the blip go out with it and are accepted", async () => {
  await using dir = await scratch("molecule-tokens-");
  await using platform = await startPlatformEmulator({
    workspaces: { [ID]: TOKEN },
    issueAuthToken: true, // the first register mints; the configured token dies
  });
  const run = startScript(MOD, {
    args: ["--interval", "0.2", "--state-poll", "0"],
    env: agentEnv(platform.url, dir.path),
  });
  try {
    await waitFor(
      async () =>
        (await readMaybe(join(dir.path, ".auth_token"))) === `issued-${ID}` &&
        platform.requestsTo("heartbeat").filter((r) => r.authorized).length >=
          2,
      10_000,
      "the issued token stored and in use",
    );
    platform.blip(ID, 1, "heartbeat"); // a database error, answered 401
    await waitFor(() => platform.requests.some((r) => r.authBlip), 5_000);
    const blipAt = platform.requests.find((r) => r.authBlip)!.at;
    await sleep(1_500);
    const after = platform.requestsTo("heartbeat").filter((r) => r.at > blipAt);
    assert.ok(after.length >= 4, `${after.length} beats after the blip`);
    // The configured token was replaced by the mint: sent again, every
    // beat would be 401 until a restart.
    assert.ok(
      after.every((r) => r.status === 200),
      after.map((r) => r.status).join(","),
    );
  } finally {
    run.kill("SIGTERM");
  }
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /ERROR|REVOKED/);
});

test("command (mod.ts): an issued token that cannot be saved at first is saved once it can be, and the warning asks nothing of the user", async () => {
  await using dir = await scratch("molecule-tokens-");
  const target = join(dir.path, ".auth_token");
  await mkdir(target); // a directory where the file goes: every save fails
  await using platform = await startPlatformEmulator({
    workspaces: { [ID]: TOKEN },
    issueAuthToken: true,
  });
  const run = startScript(MOD, {
    args: ["--interval", "0.2"],
    env: agentEnv(platform.url, dir.path),
  });
  try {
    await waitFor(
      () => /could not be saved yet/.test(run.stderr()),
      10_000,
      "the warning",
    );
    await rm(target, { recursive: true }); // space back, as it were
    await waitFor(
      async () => (await readMaybe(target)) === `issued-${ID}`,
      10_000,
      "the token saved",
    );
    assert.equal((await stat(target)).mode & 0o777, 0o600);
  } finally {
    run.kill("SIGTERM");
  }
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  const warnings = r.stderr.split("\n").filter((l) =>
    /could not be saved yet/.test(l)
  );
  assert.equal(warnings.length, 1, r.stderr); // one per kind of failure
  assert.match(warnings[0], /the save is retried until it succeeds/);
  assert.doesNotMatch(r.stderr, /in the configuration|issued-/);
  assert.match(r.stderr, /saved now, in .*\.auth_token/);
});

test("command (mod.ts): --once waits for the save of a token the platform issued; one that cannot be saved is an error and exit 1, not 0 (the token it replaced no longer works)", async () => {
  await using platform = await startPlatformEmulator({
    workspaces: { [ID]: TOKEN },
    issueAuthToken: true,
  });
  // Saved: exit 0, the token in the configs dir.
  await using dir = await scratch("molecule-tokens-");
  const ok = await runScript(MOD, {
    args: ["--once"],
    env: agentEnv(platform.url, dir.path),
    timeoutMs: 30_000,
  });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(await readMaybe(join(dir.path, ".auth_token")), `issued-${ID}`);
  // Cannot be saved (a directory where the file goes): exit 1, said.
  await using bad = await scratch("molecule-tokens-");
  await mkdir(join(bad.path, ".auth_token"));
  await using fresh = await startPlatformEmulator({
    workspaces: { [ID]: TOKEN },
    issueAuthToken: true,
  });
  const r = await runScript(MOD, {
    args: ["--once"],
    env: agentEnv(fresh.url, bad.path),
    timeoutMs: 30_000,
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /--once: the token the platform issued for .* could not be saved within 5 s/,
  );
  assert.doesNotMatch(r.stderr, /issued-/);
});

test("command (mod.ts): a SIGTERM while a register's answer is on its way: the token it mints is read and saved before the exit", async () => {
  await using dir = await scratch("molecule-tokens-");
  await using platform = await startPlatformEmulator({
    workspaces: { [ID]: TOKEN },
    issueAuthToken: true,
  });
  platform.fail({ kind: "delay", ms: 600 }, { path: "register", times: 1 });
  const run = startScript(MOD, {
    args: ["--interval", "5"],
    env: agentEnv(platform.url, dir.path),
  });
  await waitFor(() => platform.requestsTo("workspace").length >= 1, 10_000);
  await sleep(200); // the register is under way (answered in 600 ms)
  run.kill("SIGTERM");
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(platform.workspace(ID)!.minted, [`issued-${ID}`]);
  assert.equal(await readMaybe(join(dir.path, ".auth_token")), `issued-${ID}`);
});

test("command (mod.ts): two processes on one configs dir converge on the token the platform minted; after a rotation, the one holding the revoked token takes the stored one", async () => {
  await using dir = await scratch("molecule-tokens-");
  await using platform = await startPlatformEmulator({
    workspaces: { [ID]: null }, // no live token: the first register mints
  });
  const env = agentEnv(platform.url, dir.path);
  const args = ["--interval", "0.2", "--state-poll", "3"];
  const a = startScript(MOD, { args, env });
  const b = startScript(MOD, { args, env });
  const stored = join(dir.path, ".auth_token");
  try {
    await waitFor(
      async () => (await readMaybe(stored)) === `issued-${ID}`,
      10_000,
      "the minted token stored",
    );
    // Both beat with the live token (the second's register, or its beats,
    // refused with the dead one, re-read the shared file).
    const accepted = () =>
      platform.requestsTo("heartbeat").filter((r) => r.authorized).length;
    const before = accepted();
    await waitFor(() => accepted() >= before + 8, 10_000, "accepted beats");
    // A rotation by hand: the stored token is replaced (as a third process,
    // or an operator, would), and the platform mints for it.
    platform.revokeAll(ID); // every token gone: the next register mints
    await waitFor(
      () => platform.workspace(ID)!.minted.length === 2,
      15_000,
      "the second mint",
    );
    await waitFor(
      async () => (await readMaybe(stored)) === `issued-${ID}-2`,
      10_000,
      "the new token stored",
    );
    await sleep(500);
    const since = platform.requests.length;
    await sleep(1_500);
    const beats = platform.requests.slice(since).filter((r) =>
      r.path === "heartbeat"
    );
    assert.ok(beats.length >= 8, `${beats.length} beats`);
    assert.ok(
      beats.every((r) => r.status === 200 && r.authorized),
      beats.map((r) => r.status).join(","),
    );
  } finally {
    a.kill("SIGTERM");
    b.kill("SIGTERM");
  }
  const [ra, rb] = await Promise.all([a.done, b.done]);
  assert.equal(ra.code, 0, ra.stderr);
  assert.equal(rb.code, 0, rb.stderr);
  assert.doesNotMatch(ra.stderr + rb.stderr, /REVOKED|register rejected/);
});

test("command (mod.ts): a 200 that is a web page is not the platform: --once exits 1 naming PLATFORM_URL and what answered; readiness says so", async () => {
  await using dir = await scratch("molecule-tokens-");
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!doctype html><html><body>Sign in</body></html>");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  try {
    const r = await runScript(MOD, {
      args: ["--once"],
      env: agentEnv(`http://127.0.0.1:${port}`, dir.path),
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /a web page \(text\/html\), not the platform's JSON: PLATFORM_URL/,
    );
    assert.doesNotMatch(r.stderr, /heartbeat accepted/);
  } finally {
    server.close();
  }
  const ready = readiness({
    stopped: false,
    workspaces: [{
      workspaceId: ID,
      paused: false,
      deleted: false,
      rejected: false,
      lastFailure: "not-platform",
    }],
  }, { staleWindowMs: 180_000, nameIds: false });
  assert.equal(ready.ok, false);
  assert.ok(
    ready.reasons.some((r) => /not the platform.*PLATFORM_URL/.test(r)),
    ready.reasons.join("; "),
  );
});

test("command (mod.ts): --once with a minted token that cannot be sent (spaces inside): it is ignored, and --once waits for no save of it (exit 0 at once, not 1 after 5 s)", async () => {
  await using dir = await scratch("molecule-tokens-");
  const server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    const body = path === "/registry/register"
      ? {
        status: "registered",
        delivery_mode: "poll",
        auth_token: "new token with spaces",
      }
      : path.endsWith("/state")
      ? { workspace_id: ID, status: "online", paused: false, deleted: false }
      : path.startsWith("/workspaces/")
      ? { id: ID, status: "online" }
      : { status: "ok", generation: 1 };
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  try {
    const r = await runScript(MOD, {
      args: ["--once"],
      env: agentEnv(`http://127.0.0.1:${port}`, dir.path),
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /cannot be sent as a header value: ignored/);
    assert.doesNotMatch(r.stderr, /could not be saved|configs dir writable/);
    assert.equal(await readMaybe(join(dir.path, ".auth_token")), "");
  } finally {
    server.close();
  }
});
