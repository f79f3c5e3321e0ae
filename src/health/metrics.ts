/**
 * What `/metrics` shows: the heartbeat's counts and gauges, the MCP
 * wrapper's tool calls, the log writer's drops, the health port's own
 * connections, build info and the process, as metric families. No
 * workspace id is ever a label; every label value known in advance is
 * written, at 0 until counted. And the Prometheus text exposition format,
 * version 0.0.4: the few rules it has (`# HELP`, `# TYPE`, escaped label
 * values, `+Inf`, cumulative histogram buckets), written by hand.
 *
 * @see https://prometheus.io/docs/instrumenting/exposition_formats/
 * @module
 */
import { VERSION } from "../shared/version.ts";
import type { HeartbeatMetrics } from "../schedule/types.ts";
import { CLOSED_REASONS, type ConnectionFigures } from "./http_server.ts";
import type { ProcessFigures } from "./process_metrics.ts";

/** Everything {@link renderMetrics} writes. */
export interface MetricsInput {
  /** The heartbeat's figures (`HeartbeatHandle.metrics()`). */
  metrics: HeartbeatMetrics;
  /** Tool calls ended and under way, in wrapper mode; absent otherwise. */
  mcp?: { ok: number; error: number; active: number } | undefined;
  /** Log lines dropped because stderr was not read fast enough. */
  logLinesDropped: number;
  /** The event loop's lag, in seconds. */
  loopLagSeconds: number;
  /** The health port's connections. */
  connections: ConnectionFigures;
  /** The process. */
  process: ProcessFigures;
  /** The runtime's name (`deno`, `node`) and version. */
  runtime: { name: string; version: string };
  /**
   * The shard of a sharded workspaces list this process serves (`--shard`
   * of `--total-shards`): written as `shard_info`. @default {not sharded: no `shard_info`}
   */
  shard?: { index: number; total: number } | undefined;
}

const PREFIX = "molecule_heartbeat_";

/**
 * The metric families for a scrape, in the text exposition format.
 *
 * @example
 * ```ts
 * import { startHeartbeat } from "../schedule/start_heartbeat.ts";
 * import { renderMetrics } from "./metrics.ts";
 * // Stopped at once: nothing is sent, the figures are all 0.
 * const hb = startHeartbeat({
 *   platformUrl: "http://127.0.0.1:9",
 *   workspaces: [{ id: "ws-1", token: "tok-0123456789" }],
 *   signal: AbortSignal.abort(),
 * });
 * const text = renderMetrics({
 *   metrics: hb.metrics(),
 *   logLinesDropped: 0,
 *   loopLagSeconds: 0,
 *   connections: { open: 0, closed: {} },
 *   process: {},
 *   runtime: { name: "deno", version: "2.9.6" },
 * });
 * console.log(text.includes('molecule_heartbeat_beats_total{outcome="accepted"} 0')); // true
 * ```
 *
 * @param input The figures.
 * @returns The exposition text.
 */
export function renderMetrics(input: MetricsInput): string {
  const m = input.metrics;
  const d = m.beatDuration;
  const families: MetricFamily[] = [
    gauge(
      "build_info",
      "Always 1; the labels say which version of @molecule/heartbeat runs on which runtime.",
      [{
        labels: {
          version: VERSION,
          runtime: input.runtime.name,
          runtime_version: input.runtime.version,
        },
        value: 1,
      }],
    ),
    counter(
      "beats_total",
      "Heartbeats by outcome: accepted (2xx with the platform's JSON), refused (401, a 403 with the platform's error, or another 4xx but 408 and 429), failed (5xx, 408, 429, network, timeout, redirect, the CORS layer's empty 403, a 2xx that is not the platform's), skipped (a grid slot missed: the in-flight cap was full; the beat waits for the next free slot).",
      labelled("outcome", m.beats),
    ),
    counter(
      "beat_failures_total",
      "Heartbeats not accepted, by reason.",
      labelled("reason", m.beatFailures),
    ),
    {
      name: `${PREFIX}beat_duration_seconds`,
      help: "Time from sending a heartbeat to its outcome.",
      type: "histogram",
      samples: histogramSamples(d.bounds, d.counts, d.sum, d.count),
    },
    counter(
      "registers_total",
      "Registers by outcome: accepted, refused (401/403, 400, 409), failed (transient).",
      labelled("outcome", m.registers),
    ),
    counter(
      "auth_escalations_total",
      "Times a workspace's refused-token count reached 3, or 3 + k x 20 (the revoked-token error).",
      [{ value: m.authEscalations }],
    ),
    gauge("requests_in_flight", "Requests to the platform in flight now.", [
      { value: m.requestsInFlight },
    ]),
    gauge(
      "workspaces",
      "Workspaces by state: registering (no register accepted yet), beating, paused, deleted, rejected (token refused at register).",
      labelled("state", m.workspaces),
    ),
    gauge(
      "oldest_accepted_beat_age_seconds",
      "Seconds since the last accepted heartbeat of the served workspace that has waited longest (one never accepted counts from start); 0 with none served. Alert on it.",
      [{ value: m.oldestAcceptedBeatAgeSeconds }],
    ),
    gauge(
      "retry_budget_tokens",
      "Early retries the retry budget holds now.",
      [{ value: m.retryBudgetTokens }],
    ),
    gauge(
      "unarmed_workspaces",
      "Served workspaces with neither a beat armed nor one in flight; 0 while the scheduler works (the liveness probe fails otherwise).",
      [{ value: m.unarmed }],
    ),
    counter(
      "log_lines_dropped_total",
      "Log lines dropped because stderr was not read fast enough.",
      [{ value: input.logLinesDropped }],
    ),
  ];
  if (input.shard) {
    families.push(gauge(
      "shard_info",
      "Always 1; the labels say which shard of the workspaces list this process serves (--shard, from 0) and among how many (--total-shards).",
      [{
        labels: {
          shard: String(input.shard.index),
          total_shards: String(input.shard.total),
        },
        value: 1,
      }],
    ));
  }
  if (input.mcp) {
    families.push(
      counter(
        "mcp_tool_calls_total",
        "MCP tool calls ended, by outcome: ok, or error (a JSON-RPC error or isError: true).",
        labelled("outcome", input.mcp, ["ok", "error"]),
      ),
      gauge("mcp_tool_calls_active", "MCP tool calls under way now.", [
        { value: input.mcp.active },
      ]),
    );
  }
  const c = input.connections;
  families.push(
    gauge(
      "event_loop_lag_seconds",
      "The largest lateness of a timer in the last 10 s.",
      [{ value: input.loopLagSeconds }],
    ),
    gauge("health_connections", "Connections open to the health port now.", [
      { value: c.open },
    ]),
    counter(
      "health_connections_closed_total",
      "Health connections closed by the server before an answer, by reason: over_cap (a new one refused: at the cap, every open one was being answered), evicted (at the cap, the one that had waited longest for its request head, in the place of a new one), head_timeout, head_too_large, exchange_timeout.",
      labelled("reason", c.closed, CLOSED_REASONS),
    ),
  );
  const p = input.process;
  if (p.cpuSeconds !== undefined) {
    families.push({
      name: "process_cpu_seconds_total",
      help: "Total user and system CPU time spent, in seconds.",
      type: "counter",
      samples: [{ value: p.cpuSeconds }],
    });
  }
  const processGauge = (name: string, help: string, value?: number) => {
    if (value !== undefined) {
      families.push({ name, help, type: "gauge", samples: [{ value }] });
    }
  };
  processGauge(
    "process_resident_memory_bytes",
    "Resident memory size, in bytes.",
    p.residentMemoryBytes,
  );
  processGauge(
    "process_start_time_seconds",
    "Start time of the process since the Unix epoch, in seconds.",
    p.startTimeSeconds,
  );
  processGauge("process_open_fds", "Open file descriptors.", p.openFds);
  processGauge(
    "process_max_fds",
    "The limit on open file descriptors (ulimit -n).",
    p.maxFds,
  );
  return renderExposition(families);
}

function counter(name: string, help: string, samples: Sample[]): MetricFamily {
  return { name: PREFIX + name, help, type: "counter", samples };
}

function gauge(name: string, help: string, samples: Sample[]): MetricFamily {
  return { name: PREFIX + name, help, type: "gauge", samples };
}

/** One sample per label value (each one known: 0 where the figures lack it). */
function labelled(
  label: string,
  values: Partial<Record<string, number>>,
  keys: readonly string[] = Object.keys(values),
): Sample[] {
  return keys.map((key) => ({
    labels: { [label]: key },
    value: values[key] ?? 0,
  }));
}

/** The `Content-Type` of a text exposition. */
export const EXPOSITION_CONTENT_TYPE =
  "text/plain; version=0.0.4; charset=utf-8";

/** One sample: a value, its labels, and a name suffix (`_bucket`, `_sum`, `_count`). */
export interface Sample {
  /** The value. */
  value: number;
  /** Label names to values. @default {none} */
  labels?: Readonly<Record<string, string>>;
  /** Appended to the family's name (histograms). @default {""} */
  suffix?: string;
}

/** A metric family: a name, its help text, its type and its samples. */
export interface MetricFamily {
  /** The name, such as `molecule_heartbeat_beats_total`. */
  name: string;
  /** One line saying what it counts. */
  help: string;
  /** The type. */
  type: "counter" | "gauge" | "histogram";
  /** The samples, in order. */
  samples: readonly Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Renders metric families as a text exposition (every line ends with `\n`).
 *
 * @example
 * ```ts
 * import { renderExposition } from "./metrics.ts";
 * const text = renderExposition([{
 *   name: "jobs_total", help: "Jobs done.", type: "counter",
 *   samples: [{ labels: { outcome: "ok" }, value: 3 }],
 * }]);
 * console.log(text);
 * // # HELP jobs_total Jobs done.
 * // # TYPE jobs_total counter
 * // jobs_total{outcome="ok"} 3
 * ```
 *
 * @param families The families, each name once.
 * @returns The exposition.
 * @throws {TypeError} For a metric name the format does not allow.
 */
export function renderExposition(families: readonly MetricFamily[]): string {
  let out = "";
  for (const family of families) {
    if (!METRIC_NAME.test(family.name)) {
      throw new TypeError(`not a Prometheus metric name: ${family.name}`);
    }
    out += `# HELP ${family.name} ${escape(family.help, /[\\\n]/g)}\n`;
    out += `# TYPE ${family.name} ${family.type}\n`;
    for (const sample of family.samples) {
      out += `${family.name}${sample.suffix ?? ""}${
        renderLabels(sample.labels)
      } ${formatValue(sample.value)}\n`;
    }
  }
  return out;
}

/**
 * The samples of a histogram from per-bucket counts: `counts[i]` values were
 * at most `bounds[i]` (and over the bound before), the last count is for
 * those over the last bound. Buckets come out cumulative, with `+Inf`,
 * `_sum` and `_count`.
 *
 * @example
 * ```ts
 * import { histogramSamples } from "./metrics.ts";
 * const samples = histogramSamples([0.1, 1], [2, 1, 1], 2.5, 4);
 * console.log(samples.map((s) => `${s.suffix}${s.labels?.le ?? ""}=${s.value}`));
 * // ["_bucket0.1=2", "_bucket1=3", "_bucket+Inf=4", "_sum=2.5", "_count=4"]
 * ```
 *
 * @param bounds The buckets' upper bounds, ascending.
 * @param counts One count per bound, and one over the last.
 * @param sum The sum of the values observed.
 * @param count How many values were observed.
 * @returns The samples.
 */
export function histogramSamples(
  bounds: readonly number[],
  counts: readonly number[],
  sum: number,
  count: number,
): Sample[] {
  let cumulative = 0;
  return [
    ...bounds.map((bound, i) => ({
      suffix: "_bucket",
      labels: { le: formatValue(bound) },
      value: cumulative += counts[i] ?? 0,
    })),
    { suffix: "_bucket", labels: { le: "+Inf" }, value: count },
    { suffix: "_sum", value: sum },
    { suffix: "_count", value: count },
  ];
}

/** A sample value as the format writes it: `+Inf`, `-Inf`, `NaN` or a number. */
function formatValue(value: number): string {
  if (Math.abs(value) !== Infinity) return String(value); // NaN too
  return value > 0 ? "+Inf" : "-Inf";
}

function renderLabels(labels: Readonly<Record<string, string>> = {}): string {
  const parts = Object.entries(labels).map(([name, value]) =>
    `${name}="${escape(value, /[\\"\n]/g)}"`
  );
  return parts.length > 0 ? `{${parts.join(",")}}` : "";
}

/** Escapes what `pattern` finds: `\` and line feeds, and in label values `"`. */
function escape(text: string, pattern: RegExp): string {
  return text.replace(pattern, (c) => c === "\n" ? "\\n" : `\\${c}`);
}
