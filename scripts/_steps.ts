/**
 * What the release check and the real-client check share (private to the
 * scripts): named steps that report PASS or FAIL and a summary, running a
 * command with its output captured under a timeout, and the tail of that
 * output for a failure's message.
 *
 * @module
 */

/** A finished command: its exit code and its output, decoded. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** How to run a command with {@link capture}. */
export interface CaptureOptions {
  cwd?: string;
  /** The environment (added to ours unless `clearEnv`). */
  env?: Record<string, string>;
  /** Start from an empty environment. Default: `false`. */
  clearEnv?: boolean;
  /** Killed past this. */
  timeoutMs: number;
}

/**
 * Runs `cmd` with `args`, stdin closed, and captures its output.
 *
 * @example
 * ```ts ignore
 * const r = await capture("deno", ["--version"], { timeoutMs: 10_000 });
 * ```
 */
export async function capture(
  cmd: string,
  args: string[],
  options: CaptureOptions,
): Promise<Ran> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    clearEnv: options.clearEnv ?? false,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs),
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** The last `lines` lines of a command's stdout and stderr, for a message. */
export function outputTail(r: Ran, lines = 15): string {
  return [r.stdout.trim(), r.stderr.trim()].filter(Boolean).join("\n")
    .split("\n").slice(-lines).join("\n");
}

/** Fails the step with `what` unless `cond` holds. */
export function expect(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

/** A step's outcome. */
export interface StepResult {
  step: string;
  ok: boolean;
  detail: string;
}

/**
 * A run of named steps: `step` runs one (a throw is its FAIL, with the
 * message), `finish` prints `<title>: K/N steps passed` with the failed
 * ones and exits with their count.
 */
export function steps(title: string): {
  step: (
    name: string,
    fn: () => string | void | Promise<string | void>,
  ) => Promise<void>;
  results: StepResult[];
  finish: () => never;
} {
  const results: StepResult[] = [];
  async function step(
    name: string,
    fn: () => string | void | Promise<string | void>,
  ): Promise<void> {
    const started = performance.now();
    console.log(`\n--- ${name}`);
    try {
      const detail = (await fn()) ?? "";
      const s = ((performance.now() - started) / 1000).toFixed(1);
      console.log(`PASS ${name} (${s} s)${detail ? `: ${detail}` : ""}`);
      results.push({ step: name, ok: true, detail });
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      console.log(`FAIL ${name}\n${msg}`);
      results.push({ step: name, ok: false, detail: msg });
    }
  }
  function finish(): never {
    const failed = results.filter((r) => !r.ok);
    console.log(
      `\n${title}: ${
        results.length - failed.length
      }/${results.length} steps passed`,
    );
    for (const f of failed) console.log(`  FAILED: ${f.step}`);
    Deno.exit(failed.length);
  }
  return { step, results, finish };
}
