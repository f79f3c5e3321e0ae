// A fleet under platform trouble (issue 9): beats never wait on register, a
// retry budget keeps an outage from raising the request rate, and a cap on
// requests in flight bounds sockets when the platform hangs.
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { type SecretKind, startHeartbeat } from "../mod.ts";
import { parseFlags } from "../src/cli/flags.ts";
import { maxInFlightSetting, openFileLimit } from "../src/cli/settings.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { FakeClock } from "./helpers/fake_clock.ts";
import { fakeFetch } from "./helpers/fake_fetch.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";
import { waitFor } from "./helpers/wait.ts";

const fleet = (n: number) =>
  Array.from(
    { length: n },
    (_, i) => ({ id: `ws-${i}`, token: `tok-${i}-000000` }),
  );

test("register hung: every workspace of the fleet still beats within its first interval", async () => {
  await using platform = await startPlatformEmulator({ uuidIds: false });
  platform.fail({ kind: "hang" }, { path: "register" });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: fleet(100),
    intervalMs: 500,
    timeoutMs: 5_000,
  });
  try {
    await waitFor(
      () =>
        new Set(platform.requestsTo("heartbeat").map((r) => r.workspaceId))
          .size === 100,
      // One interval, with room for a busy machine; a fleet waiting on its
      // registers (8 at a time, each hung for 5 s) would take a minute.
      3_000,
      "a beat from each of 100 workspaces",
    );
    assert.ok(
      platform.requestsTo("register").length <= 8 + 1,
      "registers still bounded",
    );
  } finally {
    await hb.stop();
  }
});

test("retry budget: during an outage the fleet sends at most 1.1 times its healthy request rate, from its first interval", async () => {
  const clock = new FakeClock();
  let down = false;
  const fetch = fakeFetch(
    (req) =>
      req.path === "/registry/heartbeat" && down
        ? { status: 503, body: { error: "down" } }
        : { status: 200, body: { status: "ok" } },
    clock.now,
  );
  const hb = startHeartbeat({
    platformUrl: "http://platform.test",
    workspaces: fleet(200),
    intervalMs: 20_000,
    clock,
    fetch,
    random: () => 0.5,
  });
  const beatsBetween = (from: number, to: number) =>
    fetch.seen.filter((r) =>
      r.path === "/registry/heartbeat" && r.at >= from && r.at < to
    ).length;
  await captureLogs(async () => {
    await clock.advance(100_000);
    const healthy = beatsBetween(20_000, 100_000);
    down = true;
    await clock.advance(200_000);
    // From the outage's start: what was saved while healthy is spent in its
    // first interval, then nothing is earned but the floor.
    const onset = beatsBetween(100_000, 140_000) / 2; // per 20 s
    const outage = beatsBetween(100_000, 300_000) / 2.5; // per 80 s, as healthy
    const late = beatsBetween(200_000, 300_000) / 1.25;
    assert.equal(healthy, 800);
    assert.ok(
      onset <= (healthy / 4) * 1.1 && outage <= healthy * 1.1,
      `healthy ${healthy}, outage ${outage}, onset ${onset} per 20 s`,
    );
    assert.ok(late <= healthy * 1.01 + 4, `late in the outage: ${late}`);
    assert.ok(hb.status().retriesDeferred > 0);
    // Recovery: every workspace accepted within one interval plus one timeout
    // of the platform healing (an early retry can stand in for a grid slot).
    down = false;
    const healedAt = clock.now();
    await clock.advance(30_000);
    const okSince = hb.status().workspaces.filter((w) =>
      w.sinceLastSuccessMs !== undefined &&
      w.sinceLastSuccessMs <= clock.now() - healedAt
    );
    assert.equal(okSince.length, 200);
  });
  await hb.stop();
});

test("in-flight cap: with a hung platform, sockets stay under the cap plus registers; skipped beats are counted and warned about once", async () => {
  await using platform = await startPlatformEmulator({ uuidIds: false });
  await captureLogs(async (records) => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: fleet(60),
      intervalMs: 200,
      timeoutMs: 3_000,
      maxInFlight: 10,
    });
    try {
      await waitFor(() => hb.status().workspaces.every((w) => w.registered));
      platform.fail({ kind: "hang" });
      let peak = 0;
      await waitFor(
        () => {
          peak = Math.max(peak, platform.openConnections);
          return hb.status().beatsSkipped >= 100;
        },
        10_000,
        "skipped beats",
      );
      const status = hb.status();
      assert.ok(status.inFlight <= 10, `in flight ${status.inFlight}`);
      assert.ok(peak <= 10 + 8 + 2, `open connections peaked at ${peak}`);
      const warnings = levelsAndTexts(records).filter((l) =>
        /beat\(s\) skipped/.test(l)
      );
      assert.equal(warnings.length, 1, warnings.join("\n"));
      platform.heal();
      const healedAt = performance.now();
      // Recovery within one interval plus one timeout.
      await waitFor(
        () =>
          hb.status().workspaces.every((w) =>
            w.sinceLastSuccessMs !== undefined &&
            w.sinceLastSuccessMs < performance.now() - healedAt
          ),
        3_000 + 200 + 3_000,
        "every workspace accepted again",
      );
    } finally {
      await hb.stop();
    }
  });
});

test("--max-in-flight: a flag, a variable, or half the open-files limit left after 128 (16 to 1024)", () => {
  const none = () => undefined;
  assert.equal(maxInFlightSetting(parseFlags([]), none, () => 1024), 448);
  assert.equal(maxInFlightSetting(parseFlags([]), none, () => 100), 16);
  assert.equal(maxInFlightSetting(parseFlags([]), none, () => 1_048_576), 1024);
  assert.equal(maxInFlightSetting(parseFlags([]), none, () => undefined), 256);
  assert.equal(
    maxInFlightSetting(parseFlags(["--max-in-flight", "50"]), none, () => 1024),
    50,
  );
  assert.equal(
    maxInFlightSetting(
      parseFlags([]),
      (n) => n === "MOLECULE_MAX_IN_FLIGHT" ? "7" : undefined,
      () => 1024,
    ),
    7,
  );
  assert.throws(
    () =>
      maxInFlightSetting(
        parseFlags(["--max-in-flight", "0"]),
        none,
        () => 1024,
      ),
    /from 1 to 65536/,
  );
  assert.equal(
    openFileLimit(() =>
      "Limit  Soft Limit  Hard Limit  Units\nMax open files            1024                 524288               files\n"
    ),
    1024,
  );
  assert.equal(openFileLimit(() => "nothing here"), undefined);
});

/** A fleet on a fake clock against a fake platform answering `answer`. */
function fakeFleetOf(
  answer: Parameters<typeof fakeFetch>[0],
  options: { n?: number; intervalMs?: number; summarizeLogs?: boolean } = {},
) {
  const clock = new FakeClock();
  const hb = startHeartbeat({
    platformUrl: "http://platform.test",
    workspaces: fleet(options.n ?? 100),
    intervalMs: options.intervalMs ?? 2_000,
    clock,
    fetch: fakeFetch(answer, clock.now),
    random: () => 0.5,
    ...(options.summarizeLogs === undefined
      ? {}
      : { summarizeLogs: options.summarizeLogs }),
  });
  return { clock, hb };
}

function failingFleet(status: number, summarizeLogs?: boolean) {
  return fakeFleetOf(
    (req) =>
      req.path === "/registry/heartbeat"
        ? { status, body: { error: "trouble" } }
        : { status: 200, body: { status: "registered" } },
    { summarizeLogs },
  );
}

test("fleet logs: trouble shared by 100 workspaces is about a line a second per kind, with a count and ids; every line with summarizeLogs: false", async () => {
  const lines = async (summarize?: boolean) =>
    await captureLogs(async (records) => {
      const { clock, hb } = failingFleet(503, summarize);
      await clock.advance(10_000);
      await hb.stop();
      return levelsAndTexts(records).filter((l) =>
        /heartbeat of|same trouble/.test(l)
      );
    });
  const summarised = await lines();
  const every = await lines(false);
  assert.ok(every.length >= 500, `every line: ${every.length}`);
  assert.ok(summarised.length <= 3 * 11, `summarised: ${summarised.length}`);
  const summary = summarised.find((l) => /same trouble \(http_5xx\)/.test(l));
  assert.ok(summary, summarised.join("\n"));
  assert.match(
    summary,
    /…and \d+ more workspace\(s\).*: ws-\d+, ws-\d+, ws-\d+, ws-\d+, ws-\d+ and \d+ more/,
  );
});

test("fleet logs: 401 for every workspace is summarised too, while each workspace's escalation event keeps the reference's cadence", async () => {
  await captureLogs(async (records) => {
    const { clock, hb } = failingFleet(401);
    const escalations: number[] = [];
    hb.addEventListener(
      "auth-escalation",
      (e) => escalations.push((e as CustomEvent).detail.count),
    );
    await clock.advance(2_000 * 24);
    await hb.stop();
    assert.equal(escalations.filter((c) => c === 3).length, 100);
    assert.equal(escalations.filter((c) => c === 23).length, 100);
    const errors = levelsAndTexts(records).filter((l) => l.startsWith("error"));
    // 200 escalation lines unsummarised (100 at 3, 100 at 23); each spreads
    // over the 2 s interval, so a first line and a summary per second.
    assert.ok(errors.length <= 20, `error lines: ${errors.length}`);
    assert.ok(
      errors.some((l) => /more workspace\(s\).*same trouble \(auth\)/.test(l)),
    );
  });
});

test("fleet logs: one 401 blip for every workspace (each accepted again at its next beat) is summarised as a warning, never an error: an error is a refusal confirmed", async () => {
  await captureLogs(async (records) => {
    const refused = new Set<unknown>();
    const { clock, hb } = fakeFleetOf((req) => {
      const id = req.body.workspace_id;
      if (req.path !== "/registry/heartbeat" || refused.has(id)) {
        return { status: 200, body: { status: "ok" } };
      }
      refused.add(id);
      return { status: 401, body: { error: "invalid token" } };
    });
    await clock.advance(2_000 * 4);
    await hb.stop();
    assert.equal(refused.size, 100);
    const lines = levelsAndTexts(records);
    const summary = lines.find((l) => /same trouble \(auth\)/.test(l));
    assert.ok(summary?.startsWith("warning"), summary ?? lines.join("\n"));
    assert.deepEqual(lines.filter((l) => l.startsWith("error")), []);
  });
});

test("fleet logs: 30 workspaces whose registers are all refused (401) are summarised too: a line and a summary, a warning while unconfirmed, an error once confirmed", async () => {
  await captureLogs(async (records) => {
    const { clock, hb } = fakeFleetOf(
      (req) =>
        req.path.startsWith("/workspaces/")
          ? { status: 200, body: { id: "x", status: "online" } }
          : { status: 401, body: { error: "invalid token" } },
      { n: 30, intervalMs: 20_000 },
    );
    await clock.advance(10_000);
    await hb.stop();
    const lines = levelsAndTexts(records);
    const refused = lines.filter((l) =>
      /^warning: register of workspace .* was refused/.test(l)
    );
    const rejected = lines.filter((l) => /^error: register rejected/.test(l));
    assert.ok(refused.length <= 3, refused.join("\n"));
    assert.ok(rejected.length <= 3, rejected.join("\n"));
    assert.ok(
      lines.some((l) => /^warning: …and \d+ more .*\(auth\)/.test(l)),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((l) => /^error: …and \d+ more .*\(auth\)/.test(l)),
      lines.join("\n"),
    );
    assert.equal(hb.status().workspaces.filter((w) => w.rejected).length, 30);
  });
});

test("the revoked-token error names where the token came from and whether a restart is needed", async () => {
  for (
    const [extra, expected] of [
      [
        { tokenSource: "the token file /run/tok", tokenReread: true },
        /then put the new one in the token file \/run\/tok \(re-read when it changes: no restart needed\)/,
      ],
      [
        { tokenSource: "MOLECULE_WORKSPACE_TOKEN" },
        /then update MOLECULE_WORKSPACE_TOKEN, and restart/,
      ],
    ] as const
  ) {
    await captureLogs(async (records) => {
      const clock = new FakeClock();
      const fetch = fakeFetch(
        (req) =>
          req.path === "/registry/heartbeat"
            ? { status: 401, body: { error: "invalid workspace auth token" } }
            : { status: 200, body: {} },
        clock.now,
      );
      const hb = startHeartbeat({
        platformUrl: "http://platform.test",
        workspaces: [{ id: "ws-1", token: "tok-000000", ...extra }],
        intervalMs: 1_000,
        clock,
        fetch,
      });
      await clock.advance(4_000);
      await hb.stop();
      const error = levelsAndTexts(records).find((l) =>
        l.startsWith("error") && /REVOKED/.test(l)
      );
      assert.match(error ?? "", expected);
    });
  }
});

test("health server: after descriptors ran out, /healthz answers again as soon as they are free", async () => {
  const { spawn } = await import("node:child_process");
  const net = await import("node:net");
  const { passedEnv, runtimeArgs } = await import("./helpers/runtime.ts");
  const cli = new URL("../cli.ts", import.meta.url).pathname;
  await using platform = await startPlatformEmulator({ uuidIds: false });
  const [cmd, args] = runtimeArgs(cli, [
    "--health-port",
    "0",
    "--verbose",
    "--interval",
    "0.5",
  ]);
  const quoted = [cmd, ...args].map((a) => `'${a}'`).join(" ");
  const child = spawn("sh", ["-c", `ulimit -n 100; exec ${quoted}`], {
    env: {
      ...passedEnv(),
      HOME: process.env.HOME ?? "/tmp",
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: "ws-1",
      MOLECULE_WORKSPACE_TOKEN: "tok-0123456789",
      CONFIGS_DIR: "/tmp/molecule-emfile-test",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d) => stderr += d);
  const sockets: import("node:net").Socket[] = [];
  try {
    await waitFor(
      () => /health: (http:\/\/\S+)\/healthz/.test(stderr),
      15_000,
      "the health URL",
    );
    const base = /health: (http:\/\/\S+)\/healthz/.exec(stderr)![1];
    // More connections than the process may hold descriptors: accept fails (EMFILE).
    for (let i = 0; i < 150; i++) {
      const socket = net.connect(Number(new URL(base).port), "127.0.0.1");
      socket.on("error", () => {});
      sockets.push(socket);
    }
    await new Promise((r) => setTimeout(r, 1_500));
    for (const socket of sockets) socket.destroy();
    let answer: number | string = "none";
    await waitFor(
      async () => {
        answer = await fetch(`${base}/healthz`, {
          signal: AbortSignal.timeout(1_000),
        })
          .then(
            async (r) => (await r.body?.cancel(), r.status),
            (e: Error) => e.name,
          );
        return answer === 200;
      },
      10_000,
      "/healthz to answer again",
    );
    assert.equal(answer, 200);
  } finally {
    for (const socket of sockets) socket.destroy();
    child.kill("SIGKILL");
    await new Promise((r) => child.on("close", r));
  }
});

test("RetryBudget: starts full, accepted requests earn 10 %, requests on schedule one per interval, spending past it defers", async () => {
  const { createRetryBudget } = await import("../src/schedule/_retry.ts");
  const budget = createRetryBudget(0.1, 100);
  let spent = 0;
  while (budget.spend()) spent++;
  assert.equal(spent, 10, "max(2, 0.1 × 100) to start with");
  assert.equal(budget.deferred, 1);
  // One interval of the fleet on schedule, every request refused: the floor.
  for (let i = 0; i < 100; i++) budget.earn();
  spent = 0;
  while (budget.spend()) spent++;
  assert.equal(spent, 1, "one retry per interval for the fleet while failing");
  // One interval of the fleet on schedule and accepted.
  for (let i = 0; i < 100; i++) {
    budget.earn();
    budget.accepted();
  }
  spent = 0;
  while (budget.spend()) spent++;
  assert.equal(
    spent,
    10,
    "10 % of 100 accepted beats, plus one per interval, capped at 10",
  );
});

test("secret writes: a fleet registering together writes at most 8 secrets at once, and every one lands", async () => {
  const { MemorySecretStore } = await import("../mod.ts");
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    secretFor: (id) => `secret-of-${id}`,
  });
  let writing = 0;
  let peak = 0;
  const memory = new MemorySecretStore();
  const store = {
    load: (kind: SecretKind, id: string) => memory.load(kind, id),
    save: async (kind: SecretKind, id: string, value: string) => {
      writing++;
      peak = Math.max(peak, writing);
      await new Promise((r) => setTimeout(r, 5)); // a file write and fsync
      await memory.save(kind, id, value);
      writing--;
    },
  };
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: fleet(200),
    intervalMs: 60_000,
    timeoutMs: 5_000,
    registerConcurrency: 64,
    secretStore: store,
  });
  try {
    await hb.ready;
    await waitFor(
      () => hb.status().workspaces.every((w) => w.secretStored),
      10_000,
    );
    assert.ok(peak <= 8, `${peak} secret writes at once`);
    assert.ok(peak >= 2, `writes ran one at a time (${peak}): not a fleet`);
    for (let i = 0; i < 200; i++) {
      assert.equal(
        await memory.load("inbound-secret", `ws-${i}`),
        `secret-of-ws-${i}`,
      );
    }
  } finally {
    await hb.stop();
  }
});
