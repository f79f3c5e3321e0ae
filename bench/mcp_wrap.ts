// Wrapper benchmark: the official MCP SDK client talking to
// @modelcontextprotocol/server-everything directly, and through
// `molecule-heartbeat -- <server>` on Deno and on Node, in one run.
//
//   node bench/mcp_wrap.ts [out.json] [--calls 2000] [--big-mib 16] [--soak 100000]
//
// Figures only; it never fails on a number.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { parseArgs } from "node:util";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { Client, StdioClientTransport } from "../tests/helpers/mcp_sdk.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    calls: { type: "string", default: "2000" },
    // The SDK's stdio transport refuses messages over 10 MiB
    // (STDIO_DEFAULT_MAX_BUFFER_SIZE), direct or not: 9 MiB is the largest
    // echo that fits. The raw relay below carries 16 MiB lines.
    "big-mib": { type: "string", default: "9" },
    "stream-mib": { type: "string", default: "100" },
    soak: { type: "string", default: "100000" },
  },
});
const CALLS = Number(values.calls);
const BIG = Number(values["big-mib"]) * 1024 * 1024;
const SOAK_MESSAGES = Number(values.soak);
const STREAM = Number(values["stream-mib"]) * 1024 * 1024;
const out = positionals[0];

const root = new URL("..", import.meta.url);
const bin = (name: string) =>
  fileURLToPath(new URL(`node_modules/.bin/${name}`, root));
const CLI = fileURLToPath(new URL("cli.ts", root));
const EVERYTHING = fileURLToPath(
  new URL(
    "node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    root,
  ),
);
const SERVER = [bin("node"), EVERYTHING, "stdio"];
const TICKS = 100; // USER_HZ on Linux

interface Sample {
  cpuMs: number;
  rssKb: number;
}

function sample(pid: number | null | undefined): Sample | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpu = Number(fields[11]) + Number(fields[12]); // utime + stime
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
    return { cpuMs: (cpu * 1000) / TICKS, rssKb: rss };
  } catch {
    return undefined;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

interface Result {
  name: string;
  p50: number;
  p99: number;
  bigMs: number;
  wrapperCpuUsPerMessage?: number;
  wrapperRssMb?: number;
  soakRssStartMb?: number;
  soakRssEndMb?: number;
}

async function run(
  name: string,
  command: string[],
  env: Record<string, string>,
): Promise<Result> {
  const transport = new StdioClientTransport({
    command: command[0],
    args: command.slice(1),
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      ...env,
    },
    stderr: process.env.BENCH_STDERR ? "inherit" : "ignore",
  });
  const client = new Client({ name: "bench", version: "1.0.0" });
  await client.connect(transport);
  const wrapper = name === "direct" ? undefined : transport.pid;
  const echo = (message: string) =>
    client.callTool({ name: "echo", arguments: { message } }, undefined, {
      timeout: 120_000,
    });
  for (let i = 0; i < 200; i++) await echo("warm-up"); // JIT on both sides
  const before = sample(wrapper);
  const times: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const t = performance.now();
    await echo(`hello ${i}`);
    times.push(performance.now() - t);
  }
  const after = sample(wrapper);
  times.sort((a, b) => a - b);
  const big = "x".repeat(BIG);
  const tBig = performance.now();
  await echo(big);
  const bigMs = performance.now() - tBig;
  const result: Result = {
    name,
    p50: percentile(times, 0.5),
    p99: percentile(times, 0.99),
    bigMs,
  };
  if (before && after) {
    result.wrapperCpuUsPerMessage = ((after.cpuMs - before.cpuMs) * 1000) /
      (2 * CALLS);
    result.wrapperRssMb = after.rssKb / 1024;
  }
  if (wrapper && SOAK_MESSAGES > 0) {
    // Memory over many messages: RSS after the first tenth, then at the end.
    const roundTrips = Math.ceil(SOAK_MESSAGES / 2);
    let start: Sample | undefined;
    for (let i = 0; i < roundTrips; i++) {
      await echo(`soak ${i}`);
      if (i === Math.floor(roundTrips / 10)) start = sample(wrapper);
    }
    const end = sample(wrapper);
    if (start && end) {
      result.soakRssStartMb = start.rssKb / 1024;
      result.soakRssEndMb = end.rssKb / 1024;
    }
  }
  await client.close();
  return result;
}

const FIXTURE = fileURLToPath(new URL("tests/fixtures/child.mjs", root));

interface Raw {
  name: string;
  streamMs: number;
  lineMs: number;
  peakRssMb?: number;
}

/**
 * Streams `STREAM` bytes (1 MiB writes, no newline but every 64 KiB) and then
 * one 16 MiB line through `command` (an echo child, wrapped or not), reading
 * it all back; the wrapper's peak RSS (VmHWM) shows whether memory stays flat.
 */
function raw(
  name: string,
  command: string[],
  env: Record<string, string>,
): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), {
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
        ...env,
      },
      stdio: ["pipe", "pipe", "ignore"],
    });
    child.on("error", reject);
    const chunk = new Uint8Array(1024 * 1024).fill(120);
    for (let i = 65535; i < chunk.length; i += 65536) chunk[i] = 10;
    const line = new Uint8Array(16 * 1024 * 1024 + 1).fill(121);
    line[line.length - 1] = 10;
    let received = 0;
    let phase: "stream" | "line" = "stream";
    let t = performance.now();
    let streamMs = 0;
    let peak = 0;
    const probe = setInterval(() => {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
        peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
      } catch { /* gone */ }
    }, 50);
    const finish = (lineMs: number) => {
      clearInterval(probe);
      child.stdin.end();
      resolve({
        name,
        streamMs,
        lineMs,
        peakRssMb: name === "direct" ? undefined : peak / 1024,
      });
    };
    child.stdout.on("data", (d: Uint8Array) => {
      received += d.length;
      if (phase === "stream" && received >= STREAM) {
        streamMs = performance.now() - t;
        phase = "line";
        received -= STREAM;
        t = performance.now();
        child.stdin.write(line);
      }
      if (phase === "line" && received >= line.length) {
        finish(performance.now() - t);
      }
    });
    const write = (left: number) => {
      while (left > 0) {
        left -= chunk.length;
        if (!child.stdin.write(chunk)) {
          child.stdin.once("drain", () => write(left));
          return;
        }
      }
    };
    write(STREAM);
  });
}

const platform = await startPlatformEmulator({ uuidIds: false, record: false });
const env = {
  PLATFORM_URL: platform.url,
  WORKSPACE_ID: "bench-mcp",
  MOLECULE_WORKSPACE_TOKEN: "bench-token-0123456789",
  CONFIGS_DIR: fileURLToPath(new URL(".ci/out/bench-mcp-configs", root)),
};
const results: Result[] = [];
const raws: Raw[] = [];
try {
  const echo = [bin("node"), FIXTURE, "echo"];
  raws.push(await raw("direct", echo, {}));
  raws.push(
    await raw(
      "wrapped (Deno)",
      [bin("deno"), "run", "-A", CLI, "--", ...echo],
      env,
    ),
  );
  raws.push(
    await raw("wrapped (Node 24)", [bin("node"), CLI, "--", ...echo], env),
  );
  results.push(await run("direct", SERVER, {}));
  results.push(
    await run(
      "wrapped (Deno)",
      [bin("deno"), "run", "-A", CLI, "--", ...SERVER],
      env,
    ),
  );
  results.push(
    await run("wrapped (Node 24)", [bin("node"), CLI, "--", ...SERVER], env),
  );
  results.push(
    await run("wrapped (Deno, small young generation)", [
      bin("deno"),
      "run",
      "-A",
      "--v8-flags=--max-semi-space-size=1",
      CLI,
      "--",
      ...SERVER,
    ], env),
  );
} finally {
  await platform.close();
}

const direct = results[0];
const f = (n: number | undefined, digits = 2) =>
  n === undefined ? "–" : n.toFixed(digits);
console.log(
  `\nMCP wrapper: ${CALLS} sequential echo round trips, one ${
    BIG / 1024 / 1024
  } MiB echo, ${SOAK_MESSAGES} messages for memory (SDK client, server-everything)\n`,
);
console.log(
  "| path | p50 ms | p99 ms | added p50 ms | added p99 ms | big message ms | × direct | wrapper CPU µs/message | wrapper RSS MB | RSS after 10 % → 100 % of messages |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
  const isDirect = r === direct;
  console.log(
    `| ${r.name} | ${f(r.p50, 3)} | ${f(r.p99, 3)} | ${
      isDirect ? "–" : f(r.p50 - direct.p50, 3)
    } | ${isDirect ? "–" : f(r.p99 - direct.p99, 3)} | ${f(r.bigMs, 0)} | ${
      isDirect ? "1" : f(r.bigMs / direct.bigMs)
    } | ${f(r.wrapperCpuUsPerMessage, 1)} | ${f(r.wrapperRssMb, 1)} | ${
      r.soakRssStartMb === undefined
        ? "–"
        : `${f(r.soakRssStartMb, 1)} → ${f(r.soakRssEndMb, 1)} (${
          f(((r.soakRssEndMb! / r.soakRssStartMb) - 1) * 100, 1)
        } %)`
    } |`,
  );
}
console.log(
  `\nRaw relay through an echo child: ${
    STREAM / 1024 / 1024
  } MiB streamed, then one 16 MiB line\n`,
);
console.log(
  "| path | stream ms | MiB/s | 16 MiB line ms | × direct | wrapper peak RSS MB |",
);
console.log("|---|---|---|---|---|---|");
for (const r of raws) {
  console.log(
    `| ${r.name} | ${f(r.streamMs, 0)} | ${
      f(STREAM / 1024 / 1024 / (r.streamMs / 1000), 0)
    } | ${f(r.lineMs, 0)} | ${f(r.lineMs / raws[0].lineMs)} | ${
      f(r.peakRssMb, 1)
    } |`,
  );
}
if (out) {
  writeFileSync(
    out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        calls: CALLS,
        bigBytes: BIG,
        soakMessages: SOAK_MESSAGES,
        streamBytes: STREAM,
        results,
        raw: raws,
      },
      null,
      2,
    ) + "\n",
  );
}
process.exit(0);
