import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { createMcpTracker, startHeartbeat } from "../mod.ts";
import { startHealthServer } from "../src/health/server.ts";
import { histogramSamples, renderExposition } from "../src/health/metrics.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { getJson, startWithHealth } from "./helpers/health.ts";
import { runtimeArgs } from "./helpers/runtime.ts";
import { scratch } from "./helpers/scratch.ts";
import { sleep, waitFor } from "./helpers/wait.ts";

const CHILD = fileURLToPath(new URL("./fixtures/child.mjs", import.meta.url));

/** Debian's prometheus package: `promtool` and `prometheus`, if installed. */
function installed(binary: string): boolean {
  const r = spawnSync(binary, ["--version"], { stdio: "ignore" });
  return r.error === undefined && r.status === 0;
}
const NO_PROMTOOL = installed("promtool")
  ? false
  : "promtool is not installed (apt-get install -y prometheus; CI installs it)";
const NO_PROMETHEUS = installed("prometheus")
  ? false
  : "prometheus is not installed (apt-get install -y prometheus; CI installs it)";

for (const missing of [NO_PROMTOOL, NO_PROMETHEUS]) {
  if (missing) {
    console.warn(`health_metrics.test.ts: skipping a test: ${missing}`);
  }
}

/** One sample's value from an exposition, by its name and labels as written. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) {
      return Number(line.slice(series.length + 1));
    }
  }
  return undefined;
}

async function metricsOf(base: string): Promise<string> {
  const answer = await fetch(`${base}/metrics`, {
    signal: AbortSignal.timeout(5_000),
  });
  assert.equal(answer.status, 200);
  assert.equal(
    answer.headers.get("content-type"),
    "text/plain; version=0.0.4; charset=utf-8",
  );
  return await answer.text();
}

test("exposition: HELP and TYPE lines, escaped label values and help, +Inf and NaN, cumulative histogram buckets", () => {
  const text = renderExposition([
    {
      name: "a_total",
      help: 'back\\slash and\nnewline, "quotes" kept',
      type: "counter",
      samples: [{ labels: { x: 'say "hi"\\\n' }, value: 1.5 }],
    },
    {
      name: "b",
      help: "b.",
      type: "gauge",
      samples: [{ value: Infinity }, { labels: { k: "n" }, value: NaN }],
    },
    {
      name: "c_seconds",
      help: "c.",
      type: "histogram",
      samples: histogramSamples([0.005, 10], [1, 2, 3], 40.25, 6),
    },
  ]);
  assert.equal(
    text,
    [
      '# HELP a_total back\\\\slash and\\nnewline, "quotes" kept',
      "# TYPE a_total counter",
      'a_total{x="say \\"hi\\"\\\\\\n"} 1.5',
      "# HELP b b.",
      "# TYPE b gauge",
      "b +Inf",
      'b{k="n"} NaN',
      "# HELP c_seconds c.",
      "# TYPE c_seconds histogram",
      'c_seconds_bucket{le="0.005"} 1',
      'c_seconds_bucket{le="10"} 3',
      'c_seconds_bucket{le="+Inf"} 6',
      "c_seconds_sum 40.25",
      "c_seconds_count 6",
      "",
    ].join("\n"),
  );
  assert.throws(
    () =>
      renderExposition([{
        name: "bad-name",
        help: "",
        type: "gauge",
        samples: [],
      }]),
    TypeError,
  );
});

test("/metrics: every label value known in advance is written at 0 from the start; no workspace id; build info and the process", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-metrics-aaaa": "tok-a-0123456789" },
  });
  platform.fail({ kind: "hang" }); // nothing completes: every count is 0
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-metrics-aaaa", token: "tok-a-0123456789" }],
    intervalMs: 60_000,
  });
  const server = await startHealthServer(hb, { host: "127.0.0.1", port: 0 });
  try {
    const text = await metricsOf(server.url);
    const zeros = [
      ...["accepted", "refused", "failed", "skipped"].map((o) =>
        `molecule_heartbeat_beats_total{outcome="${o}"}`
      ),
      ...[
        "timeout",
        "network",
        "http_4xx",
        "http_5xx",
        "rate_limited",
        "auth",
        "redirect",
      ].map((r) => `molecule_heartbeat_beat_failures_total{reason="${r}"}`),
      ...["accepted", "refused", "failed"].map((o) =>
        `molecule_heartbeat_registers_total{outcome="${o}"}`
      ),
      ...["beating", "paused", "deleted", "rejected"].map((s) =>
        `molecule_heartbeat_workspaces{state="${s}"}`
      ),
      'molecule_heartbeat_beat_duration_seconds_bucket{le="0.005"}',
      'molecule_heartbeat_beat_duration_seconds_bucket{le="10"}',
      'molecule_heartbeat_beat_duration_seconds_bucket{le="+Inf"}',
      "molecule_heartbeat_beat_duration_seconds_count",
      "molecule_heartbeat_auth_escalations_total",
      "molecule_heartbeat_log_lines_dropped_total",
      "molecule_heartbeat_unarmed_workspaces",
      'molecule_heartbeat_health_connections_closed_total{reason="over_cap"}',
    ];
    for (const series of zeros) {
      assert.equal(sample(text, series), 0, series);
    }
    assert.equal(
      sample(text, 'molecule_heartbeat_workspaces{state="registering"}'),
      1,
    );
    for (
      const gauge of [
        "molecule_heartbeat_requests_in_flight",
        "molecule_heartbeat_oldest_accepted_beat_age_seconds",
        "molecule_heartbeat_retry_budget_tokens",
      ]
    ) {
      assert.ok(sample(text, gauge) !== undefined, gauge);
    }
    const runtime = "Deno" in globalThis ? "deno" : "node";
    assert.match(
      text,
      new RegExp(
        `^molecule_heartbeat_build_info\\{version="\\d+\\.\\d+\\.\\d+[^"]*",runtime="${runtime}",runtime_version="[^"]+"\\} 1$`,
        "m",
      ),
    );
    assert.ok(sample(text, "process_cpu_seconds_total")! > 0);
    assert.ok(sample(text, "process_resident_memory_bytes")! > 1_000_000);
    const started = sample(text, "process_start_time_seconds")!;
    assert.ok(Math.abs(started - Date.now() / 1000) < 600, `start ${started}`);
    if (process.platform === "linux") {
      assert.ok(sample(text, "process_open_fds")! > 0);
      assert.ok(sample(text, "process_max_fds")! > 0);
    }
    assert.ok(!text.includes("ws-metrics-aaaa"), "no workspace id");
    assert.ok(
      !text.includes("mcp_tool_calls"),
      "no MCP figures outside wrapper mode",
    );
  } finally {
    await server.close();
    await hb.stop();
  }
});

test("/metrics agrees with /status: beats by outcome, skipped beats, workspaces by state; MCP tool calls and dropped log lines from their sources", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: {
      "ws-a": "tok-a-0123456789",
      "ws-b": "tok-b-0123456789",
      "ws-c": "tok-c-0123456789",
    },
  });
  const tracker = createMcpTracker();
  tracker.fromClient({
    jsonrpc: "2.0",
    id: 1,
    method: "tools/call",
    params: { name: "x" },
  });
  tracker.fromClient({
    jsonrpc: "2.0",
    id: 2,
    method: "tools/call",
    params: { name: "y" },
  });
  tracker.fromClient({
    jsonrpc: "2.0",
    id: 3,
    method: "tools/call",
    params: { name: "z" },
  });
  tracker.fromServer({ jsonrpc: "2.0", id: 1, result: { content: [] } });
  tracker.fromServer({
    jsonrpc: "2.0",
    id: 2,
    error: { code: -1, message: "no" },
  });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [
      { id: "ws-a", token: "tok-a-0123456789" },
      { id: "ws-b", token: "tok-b-0123456789" },
      { id: "ws-c", token: "tok-c-0123456789" },
    ],
    intervalMs: 100,
    timeoutMs: 2_000,
  });
  const server = await startHealthServer({
    status: () => hb.status(),
    metrics: () => hb.metrics(),
    mcp: tracker,
    logLinesDropped: () => 7,
  }, { host: "127.0.0.1", port: 0 });
  try {
    await hb.ready;
    platform.revoke("ws-b"); // refused from now on
    platform.fail({ kind: "status", status: 503 }, {
      workspaceId: "ws-c",
      path: "heartbeat",
    });
    // The escalation comes once refusals span a few seconds.
    await waitFor(
      () =>
        hb.status().workspaces.every((w) => w.beatsSent >= 4) &&
        hb.metrics().authEscalations >= 1,
      10_000,
      "four beats each, and an escalation",
    );
    await hb.stop(); // the figures hold still from here
    const text = await metricsOf(server.url);
    const status = (await getJson(`${server.url}/status`)).body as unknown as {
      beatsSkipped: number;
      workspaces: {
        beatsSent: number;
        beatsAccepted: number;
        beatsSkipped: number;
        registered: boolean;
        paused: boolean;
        deleted: boolean;
        rejected: boolean;
      }[];
    };
    const sum = (f: (w: typeof status.workspaces[number]) => number) =>
      status.workspaces.reduce((n, w) => n + f(w), 0);
    const beats = (o: string) =>
      sample(text, `molecule_heartbeat_beats_total{outcome="${o}"}`)!;
    assert.equal(beats("accepted"), sum((w) => w.beatsAccepted));
    assert.equal(
      beats("accepted") + beats("refused") + beats("failed"),
      sum((w) => w.beatsSent),
    );
    assert.equal(beats("skipped"), status.beatsSkipped);
    assert.ok(beats("refused") >= 3 && beats("failed") >= 3, text);
    const failures = (r: string) =>
      sample(text, `molecule_heartbeat_beat_failures_total{reason="${r}"}`)!;
    assert.equal(failures("auth"), beats("refused"));
    assert.equal(failures("http_5xx"), beats("failed"));
    assert.equal(
      sample(text, "molecule_heartbeat_beat_duration_seconds_count"),
      beats("accepted") + beats("refused") + beats("failed"),
    );
    assert.equal(
      sample(text, 'molecule_heartbeat_workspaces{state="beating"}'),
      status.workspaces.filter((w) =>
        w.registered && !w.paused && !w.deleted && !w.rejected
      ).length,
    );
    assert.equal(
      sample(text, 'molecule_heartbeat_registers_total{outcome="accepted"}'),
      3,
    );
    assert.ok(sample(text, "molecule_heartbeat_auth_escalations_total")! >= 1);
    assert.equal(
      sample(text, 'molecule_heartbeat_mcp_tool_calls_total{outcome="ok"}'),
      1,
    );
    assert.equal(
      sample(text, 'molecule_heartbeat_mcp_tool_calls_total{outcome="error"}'),
      1,
    );
    assert.equal(sample(text, "molecule_heartbeat_mcp_tool_calls_active"), 1);
    assert.equal(sample(text, "molecule_heartbeat_log_lines_dropped_total"), 7);
  } finally {
    await server.close();
    await hb.stop();
  }
});

test("promtool check metrics accepts /metrics of the command in wrapper mode", {
  skip: NO_PROMTOOL,
}, async () => {
  await using platform = await startPlatformEmulator({ uuidIds: false });
  await using dir = await scratch("molecule-promtool-");
  const [cmd, args] = runtimeArgs(CHILD, ["no-stdin"]);
  const { run, base } = await startWithHealth(
    ["--interval", "0.2", "--", cmd, ...args],
    {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: "ws-1",
      MOLECULE_WORKSPACE_TOKEN: "tok-1-0123456789",
      CONFIGS_DIR: dir.path,
    },
  );
  try {
    await waitFor(() => platform.requestsTo("heartbeat").length >= 3, 10_000);
    const text = await metricsOf(base);
    assert.equal(
      sample(text, 'molecule_heartbeat_mcp_tool_calls_total{outcome="ok"}'),
      0,
    );
    assert.ok(
      sample(text, 'molecule_heartbeat_beats_total{outcome="accepted"}')! >= 1,
    );
    const file = join(dir.path, "metrics.txt");
    await writeFile(file, text);
    const check = spawnSync(
      "sh",
      ["-c", `promtool check metrics < '${file}'`],
      {
        encoding: "utf8",
        timeout: 20_000,
      },
    );
    assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
    assert.equal(check.stdout + check.stderr, "", "no lint findings");
    // And the check can fail: a counter without _total is a finding.
    await writeFile(
      file,
      "# HELP x_count x.\n# TYPE x_count counter\nx_count 1\n",
    );
    const bad = spawnSync("sh", ["-c", `promtool check metrics < '${file}'`], {
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.notEqual(bad.status, 0);
  } finally {
    run.kill("SIGTERM");
    await run.done;
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const port = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(port));
    });
  });
}

test(
  "a real Prometheus scrapes the health port every second: up is 1 and molecule_heartbeat_beats_total grows",
  { skip: NO_PROMETHEUS },
  async () => {
    await using platform = await startPlatformEmulator({ uuidIds: false });
    await using dir = await scratch("molecule-prometheus-");
    const { run, base } = await startWithHealth(["--interval", "0.2"], {
      PLATFORM_URL: platform.url,
      MOLECULE_WORKSPACES: JSON.stringify([
        { id: "ws-1", token: "tok-1-0123456789" },
        { id: "ws-2", token: "tok-2-0123456789" },
      ]),
      CONFIGS_DIR: dir.path,
    });
    const target = new URL(base).host;
    const port = await freePort();
    await writeFile(
      join(dir.path, "prometheus.yml"),
      [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "scrape_configs:",
        "  - job_name: molecule-heartbeat",
        "    static_configs:",
        `      - targets: ["${target}"]`,
        "",
      ].join("\n"),
    );
    const prometheus = spawn("prometheus", [
      `--config.file=${join(dir.path, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir.path, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    prometheus.stderr!.on("data", (d) => log += d);
    const exited = new Promise((r) => prometheus.once("close", r));
    const api = `http://127.0.0.1:${port}`;
    const query = async (q: string) => {
      const answer = await fetch(
        `${api}/api/v1/query?query=${encodeURIComponent(q)}`,
        {
          signal: AbortSignal.timeout(2_000),
        },
      );
      const body = await answer.json() as {
        data: {
          result: { metric: Record<string, string>; value: [number, string] }[];
        };
      };
      return body.data.result;
    };
    try {
      await waitFor(
        () =>
          fetch(`${api}/-/ready`, { signal: AbortSignal.timeout(1_000) })
            .then(
              async (r) => (await r.body?.cancel(), r.status === 200),
              () => false,
            ),
        30_000,
        `Prometheus to be ready (its log: ${log.slice(-500)})`,
      );
      let first = 0;
      await waitFor(
        async () => {
          const up = await query('up{job="molecule-heartbeat"}').catch(
            () => [],
          );
          const beats = await query(
            'molecule_heartbeat_beats_total{job="molecule-heartbeat",outcome="accepted"}',
          ).catch(() => []);
          first = Number(beats[0]?.value[1] ?? 0);
          return up[0]?.value[1] === "1" && first > 0;
        },
        30_000,
        "Prometheus to have scraped up = 1 and accepted beats",
      );
      // A later scrape sees more beats: the counter grows between scrapes.
      let later = first;
      await waitFor(
        async () => {
          const beats = await query(
            'molecule_heartbeat_beats_total{job="molecule-heartbeat",outcome="accepted"}',
          ).catch(() => []);
          later = Number(beats[0]?.value[1] ?? 0);
          return later > first;
        },
        30_000,
        "a later scrape with more accepted beats",
      );
      const states = await query(
        'molecule_heartbeat_workspaces{job="molecule-heartbeat"}',
      );
      assert.deepEqual(
        states.map((s) => s.metric.state).sort(),
        ["beating", "deleted", "paused", "registering", "rejected"],
      );
      assert.ok(
        !states.some((s) =>
          Object.values(s.metric).some((v) => v.startsWith("ws-"))
        ),
      );
    } finally {
      prometheus.kill("SIGTERM");
      const killer = setTimeout(() => prometheus.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
      run.kill("SIGTERM");
      await run.done;
      await sleep(0);
    }
  },
);
