/**
 * The Prometheus text exposition format, version 0.0.4: the few rules it
 * has (`# HELP`, `# TYPE`, escaped label values, `+Inf`, cumulative
 * histogram buckets), written by hand.
 *
 * @see https://prometheus.io/docs/instrumenting/exposition_formats/
 * @module
 */

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
 * import { renderExposition } from "./prometheus.ts";
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
 * import { histogramSamples } from "./prometheus.ts";
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
