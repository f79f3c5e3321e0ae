import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { VERSION } from "../mod.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import {
  runScript,
  runtimeArgs,
  startPiped,
  startScript,
} from "./helpers/runtime.ts";
import { inParallel, sleep, waitFor } from "./helpers/wait.ts";
import { scratch } from "./helpers/scratch.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const TOKEN = "cli-token-0123456789";

/**
 * The command as users run it: mod.ts, what `deno run -A
 * jsr:@molecule/heartbeat` runs (cli.ts, the same entry, in the table below).
 */
function cli(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 15_000,
) {
  return runScript(MOD, { args, env, timeoutMs });
}

/** A URL where nothing listens (not port 9: Deno's fetch refuses it as a "bad port"). */
const NOWHERE = "http://127.0.0.1:2";

const noStackTrace = (stderr: string) =>
  !/^\s+at /m.test(stderr) && !/Uncaught|TypeError|SyntaxError/.test(stderr);

test("--help lists every flag and variable, with the Tokens tab, on stdout; mod.ts runs the CLI too", async () => {
  for (const script of [CLI, MOD]) {
    const r = await runScript(script, { args: ["--help"] });
    assert.equal(r.code, 0);
    assert.equal(r.stderr, "");
    for (
      const word of [
        "--platform-url",
        "PLATFORM_URL",
        "--workspace-id",
        "WORKSPACE_ID",
        "MOLECULE_WORKSPACE_TOKEN",
        "--token-file",
        "--workspaces-file",
        "MOLECULE_WORKSPACES_FILE",
        "MOLECULE_WORKSPACES",
        "--configs-dir",
        "CONFIGS_DIR",
        "--interval",
        "MOLECULE_HEARTBEAT_INTERVAL",
        "default 20",
        "--log-format",
        "MOLECULE_LOG_FORMAT",
        "--verbose",
        "MOLECULE_MCP_VERBOSE",
        "--health-port",
        "MOLECULE_HEALTH_PORT",
        "--health-host",
        "127.0.0.1",
        "--once",
        "--demo",
        "--version",
        "--wedged-after",
        "MOLECULE_WEDGED_AFTER",
        "--kill-after",
        "Tokens tab",
        "MOLECULE_AGENT_NAME",
        "MOLECULE_AGENT_SKILLS",
        "MOLECULE_AGENT_DESCRIPTION",
      ]
    ) assert.ok(r.stdout.includes(word), `--help does not mention ${word}`);
  }
});

test("every way in exits with the command's code, our stdin held open (mod.ts as jsr: runs it, and cli.ts)", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  await using scratchDir = await scratch("molecule-cli-");
  const live = {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: "ws-1",
    CONFIGS_DIR: scratchDir.path,
    MOLECULE_HEARTBEAT_INTERVAL: "0.2",
  };
  const rows: [string, string[], Record<string, string>, number][] = [
    ["--no-such-flag", ["--no-such-flag"], {}, 2],
    ["no configuration at all", [], { HOME: scratchDir.path }, 2],
    [
      "--demo -- sh -c 'sleep 2; exit 7'",
      ["--demo", "--", "sh", "-c", "sleep 2; exit 7"],
      {},
      7,
    ],
    [
      "--demo -- no-such-command",
      ["--demo", "--", "no-such-command-4711"],
      {},
      127,
    ],
    [
      "a rejected token in wrapper mode",
      ["--", "sh", "-c", "sleep 30"],
      { ...live, MOLECULE_WORKSPACE_TOKEN: "wrong-token-0123456789" },
      3,
    ],
    [
      "a rejected token, plain",
      [],
      { ...live, MOLECULE_WORKSPACE_TOKEN: "wrong-token-0123456789" },
      3,
    ],
  ];
  const runs = [MOD, CLI].flatMap((entry) =>
    rows.map(([what, args, env, code]) => ({ entry, what, args, env, code }))
  );
  // Side by side, four at a time: most rows wait (a refusal is confirmed 3 s on).
  await inParallel(runs, 4, async ({ entry, what, args, env, code }) => {
    const [cmd, argv] = runtimeArgs(entry, args);
    // stdin is never closed, as an MCP client holds it open: the run must
    // end without waiting for it (the timeout kills it, and fails the row).
    const run = startPiped(cmd, argv, { env, timeoutMs: 20_000 });
    const done = await run.done;
    assert.equal(
      done.code,
      code,
      `${entry.split("/").pop()}: ${what}: ${done.stderr}`,
    );
    assert.ok(noStackTrace(done.stderr), done.stderr);
    // The demo says what it does in wrapper mode too.
    if (what.startsWith("--demo -- sh")) {
      assert.match(done.stderr, /demo: heartbeat of \S+ accepted/);
    }
  });
});

test("--version prints the version from deno.json", async () => {
  const denoJson = JSON.parse(
    await readFile(new URL("../deno.json", import.meta.url), "utf8"),
  );
  assert.equal(VERSION, denoJson.version);
  const r = await cli(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `molecule-heartbeat ${VERSION}\n`);
});

test("the README states the version of deno.json", async () => {
  const denoJson = JSON.parse(
    await readFile(new URL("../deno.json", import.meta.url), "utf8"),
  );
  const readme = await readFile(
    new URL("../README.md", import.meta.url),
    "utf8",
  );
  const stated = [...readme.matchAll(/^Version (\d+\.\d+\.\d+\S*),/gm)]
    .map((m) => m[1].replace(/,$/, ""));
  assert.deepEqual(stated, [denoJson.version]);
});

test("configuration errors exit 2 with what to set in the first line, never a stack trace", async () => {
  await using scratchDir = await scratch("molecule-cli-");
  const dir = scratchDir.path;
  const base = {
    PLATFORM_URL: NOWHERE,
    WORKSPACE_ID: "ws-1",
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
    HOME: dir,
  };
  const bad = (over: Record<string, string | undefined>) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...base, ...over })) {
      if (v !== undefined) env[k] = v;
    }
    return env;
  };
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    [
      "no platform URL",
      [],
      bad({ PLATFORM_URL: undefined }),
      /PLATFORM_URL is not set/,
    ],
    [
      "relative URL",
      [],
      bad({ PLATFORM_URL: "molecule.example" }),
      /PLATFORM_URL must be an absolute http\(s\) URL/,
    ],
    [
      "ftp URL",
      [],
      bad({ PLATFORM_URL: "ftp://molecule.example" }),
      /PLATFORM_URL must be an http or https URL/,
    ],
    [
      "bad URL flag",
      ["--platform-url", "::"],
      bad({}),
      /--platform-url must be an absolute/,
    ],
    [
      "no workspace",
      [],
      bad({ WORKSPACE_ID: " " }),
      /no workspace to serve: set WORKSPACE_ID.*Tokens tab/,
    ],
    [
      "no token",
      [],
      bad({ MOLECULE_WORKSPACE_TOKEN: "  " }),
      /no token for workspace ws-1: set MOLECULE_WORKSPACE_TOKEN.*\.auth_token.*Tokens tab/,
    ],
    [
      "invalid JSON",
      [],
      bad({ MOLECULE_WORKSPACES: "[{" }),
      /MOLECULE_WORKSPACES is not valid JSON/,
    ],
    [
      "not an array",
      [],
      bad({ MOLECULE_WORKSPACES: '{"id":"a"}' }),
      /MOLECULE_WORKSPACES must be a JSON array/,
    ],
    [
      "empty array",
      [],
      bad({ MOLECULE_WORKSPACES: "[]" }),
      /MOLECULE_WORKSPACES is an empty array/,
    ],
    [
      "non-object entry",
      [],
      bad({ MOLECULE_WORKSPACES: '[{"id":"a","token":"t"}, 7]' }),
      /MOLECULE_WORKSPACES entry 1 is not an object/,
    ],
    [
      "entry without id",
      [],
      bad({ MOLECULE_WORKSPACES: '[{"token":"t"}]' }),
      /MOLECULE_WORKSPACES entry 0 has no "id"/,
    ],
    [
      "entry without token",
      [],
      bad({ MOLECULE_WORKSPACES: '[{"id":"a","token":"t"},{"id":"b"}]' }),
      /MOLECULE_WORKSPACES entry 1 \(id b\) has no "token".*Tokens tab/,
    ],
    [
      "duplicate id",
      [],
      bad({
        MOLECULE_WORKSPACES: '[{"id":"a","token":"t"},{"id":"a","token":"u"}]',
      }),
      /MOLECULE_WORKSPACES entry 1 repeats id a of entry 0/,
    ],
    [
      "interval not a number",
      ["--interval", "fast"],
      bad({}),
      /--interval must be a number of seconds/,
    ],
    [
      "interval zero",
      [],
      bad({ MOLECULE_HEARTBEAT_INTERVAL: "0" }),
      /MOLECULE_HEARTBEAT_INTERVAL must be a number of seconds from 0.05 to 3600/,
    ],
    [
      "interval negative",
      ["--interval=-5"],
      bad({}),
      /--interval must be a number of seconds from 0.05 to 3600/,
    ],
    [
      "interval value missing",
      ["--interval", "-5"],
      bad({}),
      /--interval.*--interval=-/,
    ],
    [
      "interval too long",
      ["--interval", "3601"],
      bad({}),
      /--interval must be a number of seconds from 0.05 to 3600/,
    ],
    [
      "unknown flag",
      ["--tokn", "x"],
      bad({}),
      /Unknown option '--tokn'.*--help/,
    ],
    [
      "stray argument",
      ["ws-1"],
      bad({}),
      /unexpected argument "ws-1": did you forget `--` before the server's command\?/,
    ],
    [
      "unreadable workspaces file",
      ["--workspaces-file", join(dir, "absent.json")],
      bad({}),
      /cannot read --workspaces-file/,
    ],
    [
      "unreadable token file",
      ["--token-file", join(dir, "absent")],
      bad({}),
      /cannot read the token from --token-file.*Tokens tab/,
    ],
    [
      "bad log format",
      ["--log-format", "xml"],
      bad({}),
      /--log-format must be "text" or "json"/,
    ],
    [
      "bad health port",
      [],
      bad({ MOLECULE_HEALTH_PORT: "http" }),
      /MOLECULE_HEALTH_PORT must be a port number/,
    ],
  ];
  await inParallel(cases, 4, async ([name, args, env, pattern]) => {
    const r = await cli(args, env);
    assert.equal(r.code, 2, `${name}: exit ${r.code}\n${r.stderr}`);
    assert.equal(r.stdout, "", `${name}: stdout`);
    const first = r.stderr.split("\n")[0];
    assert.match(first, pattern, `${name}: ${r.stderr}`);
    assert.ok(noStackTrace(r.stderr), `${name}: ${r.stderr}`);
  });
});

test("--once registers and beats once per workspace with the agent card from the environment, stdout empty", async () => {
  const id = "6b1f3c2a-9d4e-4f7a-8c5b-2e1d0a9b8c7f";
  await using platform = await startPlatformEmulator({
    workspaces: { [id]: TOKEN },
  });
  await using scratchDir = await scratch("molecule-cli-");
  const dir = scratchDir.path;
  const r = await cli(["--once", "--interval", "0.5"], {
    PLATFORM_URL: platform.url + "/",
    WORKSPACE_ID: id,
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
    CONFIGS_DIR: dir,
    MOLECULE_AGENT_NAME: "scout",
    MOLECULE_AGENT_DESCRIPTION: "reads papers",
    MOLECULE_AGENT_SKILLS: "research, review",
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr, "", "warnings and errors only by default");
  const card = {
    name: "scout",
    skills: [{ name: "research" }, { name: "review" }],
    description: "reads papers",
  };
  // Looked up before it is registered: the platform would create an id it
  // does not have.
  assert.equal(platform.requestsTo("workspace").length, 1);
  const [reg] = platform.requestsTo("register");
  assert.ok(
    platform.requestsTo("workspace")[0].at <= reg.at,
    "the lookup came first",
  );
  assert.deepEqual(reg.body, {
    id,
    url: "",
    agent_card: card,
    delivery_mode: "poll",
  });
  assert.equal(platform.requestsTo("heartbeat").length, 1);
  // The beat carries the card too, as the platform's own runtime sends it.
  assert.deepEqual(
    (platform.requestsTo("heartbeat")[0].body as Record<string, unknown>)
      .agent_card,
    card,
  );
  assert.deepEqual(platform.created, []);
  const secretFile = join(dir, ".platform_inbound_secret");
  assert.equal(await readFile(secretFile, "utf8"), `secret-${id}`);
  assert.equal((await stat(secretFile)).mode & 0o777, 0o600);
});

test("--once exits 1 when the platform does not accept the beat", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  platform.fail({
    kind: "status",
    status: 503,
    body: '{"error":"maintenance"}',
  }, { path: "heartbeat" });
  await using scratchDir = await scratch("molecule-cli-");
  const dir = scratchDir.path;
  const r = await cli(["--once"], {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: "ws-1",
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
    CONFIGS_DIR: dir,
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /ws-1 was not accepted: heartbeat failed: HTTP 503/);
  assert.ok(noStackTrace(r.stderr));
});

test("a rejected token at register exits 3 at once with one workspace, naming the Tokens tab", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  await using scratchDir = await scratch("molecule-cli-");
  const dir = scratchDir.path;
  const t0 = performance.now();
  const r = await cli([], {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: "ws-1",
    MOLECULE_WORKSPACE_TOKEN: "wrong-token-xyz",
    CONFIGS_DIR: dir,
  });
  assert.equal(r.code, 3, r.stderr);
  assert.ok(performance.now() - t0 < 10_000);
  assert.match(r.stderr, /register rejected with HTTP 401.*ws-1.*Tokens tab/);
  assert.ok(!r.stderr.includes("wrong-token-xyz"));
  assert.ok(
    platform.requestsTo("heartbeat").length <= 1,
    "beats do not wait on register: at most the first went out beside it",
  );
});

test("several workspaces: a rejected one is reported and dropped, the others go on; all rejected exits 3", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { good: TOKEN, bad: "bad-right-token" },
  });
  await using scratchDir = await scratch("molecule-cli-");
  const dir = scratchDir.path;
  const file = join(dir, "workspaces.json");
  await writeFile(
    file,
    JSON.stringify([{ id: "good", token: TOKEN }, {
      id: "bad",
      token: "bad-wrong-token",
    }]),
    { mode: 0o600 },
  );
  const run = startScript(MOD, {
    args: ["--workspaces-file", file, "--interval", "0.2"],
    env: { PLATFORM_URL: platform.url, CONFIGS_DIR: dir },
  });
  // One 401 is no verdict: the register is tried again a few seconds on
  // (after a lookup), and refused again, the workspace is dropped.
  await waitFor(
    () =>
      platform.requestsTo("heartbeat", "good").length >= 3 &&
      platform.requestsTo("register", "bad").length >= 2,
    10_000,
    "beats of the good workspace, and the confirming register of the bad one",
  );
  await sleep(300);
  const badBeats = platform.requestsTo("heartbeat", "bad").length;
  await sleep(600);
  assert.ok(
    platform.requestsTo("heartbeat", "bad").length <= badBeats + 1,
    "dropped: no more beats of the bad workspace",
  );
  run.kill("SIGTERM");
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /ERROR register rejected with HTTP 401.*workspace bad.*refused again/,
  );
  // Per-workspace secret files when there are several.
  assert.equal(
    await readFile(join(dir, ".platform_inbound_secret.good"), "utf8"),
    "secret-good",
  );

  const allBad = JSON.stringify([{ id: "good", token: "nope-nope-1" }, {
    id: "bad",
    token: "nope-nope-2",
  }]);
  const r2 = await cli([], {
    PLATFORM_URL: platform.url,
    MOLECULE_WORKSPACES: allBad,
    CONFIGS_DIR: dir,
  });
  assert.equal(r2.code, 3, r2.stderr);
});

test("SIGTERM while a request hangs: exit 0 within 2 s", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  platform.fail({ kind: "hang" }, { path: "heartbeat" });
  await using scratchDir = await scratch("molecule-cli-");
  const dir = scratchDir.path;
  const run = startScript(MOD, {
    env: {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: "ws-1",
      MOLECULE_WORKSPACE_TOKEN: TOKEN,
      CONFIGS_DIR: dir,
    },
  });
  await waitFor(
    () => platform.requestsTo("heartbeat").length === 1,
    10_000,
    "the hanging beat",
  );
  const t0 = performance.now();
  run.kill("SIGTERM");
  const r = await run.done;
  const took = performance.now() - t0;
  assert.equal(r.code, 0, r.stderr);
  assert.ok(took < 2000, `took ${took} ms`);
  assert.equal(r.stdout, "");
  // SIGINT too.
  const run2 = startScript(MOD, {
    env: {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: "ws-1",
      MOLECULE_WORKSPACE_TOKEN: TOKEN,
      CONFIGS_DIR: dir,
    },
  });
  await waitFor(
    () => platform.requestsTo("heartbeat").length === 2,
    10_000,
    "the second hanging beat",
  );
  run2.kill("SIGINT");
  assert.equal((await run2.done).code, 0);
});

test("a token file that changes on disk is re-read and the new token used without a restart", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": "first-token-aaaa" },
  });
  await using scratchDir = await scratch("molecule-cli-");
  const dir = scratchDir.path;
  const tokenFile = join(dir, ".auth_token");
  await writeFile(tokenFile, "first-token-aaaa\n", { mode: 0o600 });
  const run = startScript(MOD, {
    args: ["--interval", "0.3"],
    env: {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: "ws-1",
      CONFIGS_DIR: dir,
    },
  });
  await waitFor(() => platform.requestsTo("heartbeat").length >= 2, 10_000);
  platform.setWorkspace("ws-1", "second-token-bbbb");
  await writeFile(tokenFile, "second-token-bbbb\n");
  const changedAt = platform.requests.length;
  await waitFor(
    () =>
      platform.requests.slice(changedAt).filter((r) => r.authorized).length >=
        3,
    10_000,
    "beats with the new token",
  );
  run.kill("SIGTERM");
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
});

test("a workspaces file that changes on disk is re-read: a rotated token is used for its workspace only", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-a": "token-a-first", "ws-b": "token-b-kept" },
  });
  await using scratchDir = await scratch("molecule-cli-");
  const dir = scratchDir.path;
  const file = join(dir, "workspaces.json");
  const write = (tokenA: string) =>
    writeFile(
      file,
      JSON.stringify([
        { id: "ws-a", token: tokenA },
        { id: "ws-b", token: "token-b-kept" },
      ]),
      { mode: 0o600 },
    );
  await write("token-a-first");
  const run = startScript(MOD, {
    args: ["--workspaces-file", file, "--interval", "0.3"],
    env: { PLATFORM_URL: platform.url, CONFIGS_DIR: dir },
  });
  await waitFor(() => platform.requestsTo("heartbeat").length >= 4, 10_000);
  platform.setWorkspace("ws-a", "token-a-second");
  await write("token-a-second");
  const changedAt = platform.requests.length;
  await waitFor(
    () => {
      const after = platform.requests.slice(changedAt);
      const ok = (id: string) =>
        after.filter((r) => r.workspaceId === id && r.authorized).length;
      return ok("ws-a") >= 2 && ok("ws-b") >= 2;
    },
    10_000,
    "both workspaces accepted after the change",
  );
  run.kill("SIGTERM");
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /ws-b got HTTP 401/);
});

test("warnings, not exits: interval over 60 s, group-readable token file, unwritable configs dir", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  await using scratchDir = await scratch("molecule-cli-");
  const dir = scratchDir.path;
  const tokenFile = join(dir, "token");
  await writeFile(tokenFile, TOKEN);
  await chmod(tokenFile, 0o644);
  const blocked = join(dir, "not-a-dir");
  await writeFile(blocked, "a file where the configs dir should be");
  const r = await cli([
    "--once",
    "--interval",
    "90",
    "--token-file",
    tokenFile,
    "--configs-dir",
    join(blocked, "configs"),
  ], {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: "ws-1",
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /WARN --interval is 90 s: the platform marks a workspace offline after 180 s without a heartbeat/,
  );
  assert.match(
    r.stderr,
    /WARN --token-file .* is readable by other users \(mode 0644\).*chmod 600/,
  );
  assert.match(
    r.stderr,
    /WARN the configs dir .* cannot be created or written/,
  );
  assert.ok(noStackTrace(r.stderr));
  // The warning follows the stale window: none for 90 s of 900, one for
  // 50 s of 120 naming 120.
  const env = {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: "ws-1",
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
    CONFIGS_DIR: dir,
  };
  const long = await cli(
    ["--once", "--interval", "90", "--stale-window", "900"],
    env,
  );
  assert.equal(long.code, 0, long.stderr);
  assert.doesNotMatch(long.stderr, /marks a workspace offline/);
  const short = await cli(["--once", "--interval", "50"], {
    ...env,
    MOLECULE_STALE_WINDOW: "120",
  });
  assert.equal(short.code, 0, short.stderr);
  assert.match(
    short.stderr,
    /WARN --interval is 50 s: the platform marks a workspace offline after 120 s without a heartbeat/,
  );
});

test("--log-format json: one JSON object a line with level and message", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  await using scratchDir = await scratch("molecule-cli-");
  const dir = scratchDir.path;
  const r = await cli(["--once", "--log-format", "json", "--verbose"], {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: "ws-1",
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
    CONFIGS_DIR: dir,
  });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.ok(lines.length >= 2);
  for (const line of lines) {
    const obj = JSON.parse(line);
    assert.equal(typeof obj.level, "string");
    assert.equal(typeof obj.message, "string");
  }
  assert.ok(
    lines.some((l) =>
      JSON.parse(l).message.includes("registered workspace ws-1")
    ),
  );
  assert.ok(!r.stderr.includes(TOKEN));
});

test("--demo --once is a self-test that exits 0 and shows each step", async () => {
  await using scratchDir = await scratch("molecule-cli-");
  const dir = scratchDir.path;
  const r = await cli(["--demo", "--once", "--configs-dir", dir], {});
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "");
  for (
    const step of [
      /platform emulator is listening on http:\/\/127\.0\.0\.1:\d+/,
      /registered workspace/,
      /heartbeat of .* accepted/,
      /stored the inbound secret/,
    ]
  ) {
    assert.match(r.stderr, step);
  }
  assert.ok(
    (await readFile(join(dir, ".platform_inbound_secret"), "utf8")).length >
      0,
  );
});

test("--log-format json: an error about a flag, or a setting read before the log settings, is a JSON line too", async () => {
  await using scratchDir = await scratch("molecule-cli-");
  const env = {
    PLATFORM_URL: NOWHERE,
    WORKSPACE_ID: "ws-1",
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
    CONFIGS_DIR: scratchDir.path,
  };
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["--log-format", "json", "--bogus"], {}, /--bogus/],
    [["--log-format=json", "--kill-after", "abc"], {}, /--kill-after/],
    [
      ["--stale-window", "0"],
      { MOLECULE_LOG_FORMAT: "json" },
      /--stale-window/,
    ],
    [["--log-format", "json", "--state-poll", "x"], {}, /--state-poll/],
    // A flag without its value, or a blank one, leaves the variable's json.
    [["--bogus", "--log-format"], { MOLECULE_LOG_FORMAT: "json" }, /--/],
    [["--log-format", " ", "--bogus"], { MOLECULE_LOG_FORMAT: "json" }, /--/],
  ];
  for (const [args, more, names] of cases) {
    const r = await cli(args, { ...env, ...more });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    const lines = r.stderr.split("\n").filter(Boolean);
    assert.ok(lines.length >= 1, args.join(" "));
    for (const line of lines) {
      const parsed = JSON.parse(line) as { level: string; message: string };
      assert.equal(parsed.level, "error", line);
      assert.match(parsed.message, names);
    }
  }
  // A bad log format never stands between a user and --help or --version.
  for (const flag of ["--help", "--version"]) {
    const r = await cli([flag], { MOLECULE_LOG_FORMAT: "xml" });
    assert.equal(r.code, 0, `${flag}: ${r.stderr}`);
    assert.match(r.stdout, /molecule-heartbeat/);
  }
});

test("--once with several workspaces, one refused: exit 1 with a line naming it beside the others", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN, "ws-2": `${TOKEN}-2` },
  });
  await using scratchDir = await scratch("molecule-cli-");
  const r = await cli(["--once"], {
    PLATFORM_URL: platform.url,
    MOLECULE_WORKSPACES: JSON.stringify([
      { id: "ws-1", token: TOKEN },
      { id: "ws-2", token: "wrong-token-0123456789" },
    ]),
    CONFIGS_DIR: scratchDir.path,
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /--once: workspace ws-2 was not accepted: the platform refused its token/,
  );
  assert.doesNotMatch(r.stderr, /ws-1 was not accepted/);
  assert.ok(noStackTrace(r.stderr));
});

test("--once: a register that failed is named with the register's own reason, not the beat's", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  platform.fail({
    kind: "status",
    status: 502,
    body: '{"error":"register is down"}',
  }, { path: "register" });
  platform.fail({ kind: "hang" }, { path: "heartbeat" });
  await using scratchDir = await scratch("molecule-cli-");
  const r = await cli(["--once", "--interval", "1"], {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: "ws-1",
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
    CONFIGS_DIR: scratchDir.path,
  }, 30_000);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /ws-1 was not accepted: register failed \(HTTP 502/);
  assert.ok(noStackTrace(r.stderr));
});

test("a --health-host that is no address of this machine exits 2 naming --health-host, not the port", async () => {
  await using scratchDir = await scratch("molecule-cli-");
  // A name that does not resolve, and an address of no interface here
  // (TEST-NET-1).
  for (const host of ["no-such-host.invalid", "192.0.2.1"]) {
    const r = await cli(["--health-port", "0", "--health-host", host], {
      PLATFORM_URL: NOWHERE,
      WORKSPACE_ID: "ws-1",
      MOLECULE_WORKSPACE_TOKEN: TOKEN,
      CONFIGS_DIR: scratchDir.path,
    });
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(`cannot serve health on ${host}:0`), r.stderr);
    assert.match(r.stderr, /set --health-host \(MOLECULE_HEALTH_HOST\)/);
    assert.doesNotMatch(r.stderr, /pick another --health-port/);
    assert.ok(noStackTrace(r.stderr));
  }
});
