// Fleet benchmark: one agent process heartbeating N workspaces against the
// platform emulator running in a separate process, for this project's CLI and
// (where python3 with httpx is present) the Python reference, side by side.
// Measured from outside: the emulator counts and timestamps beats and
// connections; /proc reports the agent's CPU time and peak RSS.
//
//   deno task bench [out.json] [--sizes 1,100,1000,10000] [--window 30]
//     [--subjects project,reference] [--deno-flags "--v8-flags=..."]
//
// A benchmark, not a test: it prints a table and writes JSON, never fails on a number.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import process from "node:process";
import { fileURLToPath } from "node:url";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const outPath =
  args.find((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--")) ??
    "bench-results.json";
const sizes = opt("--sizes", "1,100,1000,10000").split(",").map(Number);
const windowS = Number(opt("--window", "30"));
const subjects = opt("--subjects", "project,reference").split(",");
// Extra `deno run` flags for the project's agent, to try V8 settings.
const denoFlags = opt("--deno-flags", "").split(" ").filter(Boolean);
const refDir = here("../../shared/reference");
const nodeBin = here("../node_modules/.bin/node");
const denoBin = here("../node_modules/.bin/deno");
const ticksPerSecond = 100;

/** A python3 that has httpx (Debian's python3-httpx lives under /usr/bin/python3). */
function findPython(): string | undefined {
  for (const python of ["/usr/bin/python3", "python3"]) {
    const r = spawnSync(python, ["-c", "import httpx"], { stdio: "ignore" });
    if (r.status === 0) return python;
  }
  return undefined;
}
const python = findPython();

// ---- the emulator process ----
const emu = spawn(nodeBin, [here("./emulator_process.ts")], {
  stdio: ["pipe", "pipe", "inherit"],
});
const emuLines = createInterface({ input: emu.stdout! })
  [Symbol.asyncIterator]();
const platformUrl = String((await emuLines.next()).value);
async function emuCall(cmd: string): Promise<Record<string, number | null>> {
  emu.stdin!.write(cmd + "\n");
  return JSON.parse(String((await emuLines.next()).value));
}

// ---- /proc readings ----
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond; // utime + stime
}
async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(status.match(/VmHWM:\s+(\d+)/)?.[1] ?? 0);
  return kb / 1024;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Point {
  subject: string;
  workspaces: number;
  intervalS: number;
  windowS: number;
  beatsReceived: number;
  beatsExpected: number;
  delivered: number;
  periodErrorMs: { p50: number | null; p99: number | null; max: number | null };
  cpuMsPerBeat: number | null;
  cpuShareOfOneCore: number;
  peakRssMb: number;
  connections: number;
  connectionsPer1000Beats: number | null;
  coldStartMs: number | null;
}

async function runPoint(
  subject: "project" | "reference",
  n: number,
): Promise<Point> {
  const intervalS = n === 1 ? 1 : 20;
  const dir = await mkdtemp(join(tmpdir(), "molecule-bench-"));
  const file = join(dir, "workspaces.json");
  await writeFile(
    file,
    JSON.stringify(
      Array.from(
        { length: n },
        (_, i) => ({ id: `bench-${i}`, token: `bench-token-${i}` }),
      ),
    ),
    { mode: 0o600 },
  );
  await emuCall(`reset ${intervalS * 1000}`);
  const warmupS = intervalS + Math.ceil(n / 2000);
  const started = performance.now();
  let child: ChildProcess;
  if (subject === "project") {
    child = spawn(denoBin, [
      "run",
      "-A",
      ...denoFlags,
      here("../cli.ts"),
      "--workspaces-file",
      file,
      "--interval",
      String(intervalS),
      "--configs-dir",
      dir,
    ], {
      env: {
        PATH: process.env.PATH ?? "",
        HOME: dir,
        PLATFORM_URL: platformUrl,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
  } else {
    child = spawn(python!, [
      here("./reference_runner.py"),
      refDir,
      platformUrl,
      file,
      String(intervalS),
      String(warmupS + windowS + 5),
      dir,
    ], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  }
  let stderr = "";
  child.stderr!.on("data", (d) => stderr = (stderr + d).slice(-4000));
  // Cold start: process start to the first register reaching the emulator.
  let coldStartMs: number | null = null;
  while (performance.now() - started < 15_000) {
    if (((await emuCall("stats")).registers ?? 0) > 0) {
      coldStartMs = performance.now() - started;
      break;
    }
    await sleep(5);
  }
  await sleep(warmupS * 1000 - (performance.now() - started));
  await emuCall(`reset ${intervalS * 1000}`);
  const cpu0 = await cpuSeconds(child.pid!);
  await sleep(windowS * 1000);
  const stats = await emuCall("stats");
  const cpu1 = await cpuSeconds(child.pid!);
  const rss = await peakRssMb(child.pid!);
  child.kill("SIGTERM");
  await new Promise((r) => child.once("close", r));
  await rm(dir, { recursive: true, force: true });
  if (stats.beats === 0) {
    console.error(`${subject} N=${n}: no beats; stderr:\n${stderr}`);
  }
  const beats = stats.beats ?? 0;
  const expected = (n * windowS) / intervalS;
  return {
    subject,
    workspaces: n,
    intervalS,
    windowS,
    beatsReceived: beats,
    beatsExpected: expected,
    delivered: beats / expected,
    periodErrorMs: {
      p50: stats.periodErrorP50,
      p99: stats.periodErrorP99,
      max: stats.periodErrorMax,
    },
    cpuMsPerBeat: beats ? ((cpu1 - cpu0) * 1000) / beats : null,
    cpuShareOfOneCore: (cpu1 - cpu0) / windowS,
    peakRssMb: rss,
    connections: stats.connections ?? 0,
    connectionsPer1000Beats: beats
      ? ((stats.connections ?? 0) * 1000) / beats
      : null,
    coldStartMs,
  };
}

const withReference = python !== undefined;
const points: Point[] = [];
for (const n of sizes) {
  for (const subject of ["project", "reference"] as const) {
    if (!subjects.includes(subject)) continue;
    if (subject === "reference" && (!withReference || n > 1000)) continue;
    console.error(`running ${subject} with ${n} workspace(s)...`);
    points.push(await runPoint(subject, n));
  }
}
await emuCall("quit").catch(() => {});
emu.kill();

const f = (v: number | null, digits = 1) =>
  v === null ? "n/a" : v.toFixed(digits);
const rows = [
  "| workspaces (interval) | subject | delivered | period error p50 / p99 / max (ms) | CPU ms per beat | CPU, share of one core | peak RSS (MB) | TCP connections per 1,000 beats | cold start (ms) |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
];
for (const n of sizes) {
  for (const subject of ["project", "reference"]) {
    const p = points.find((x) => x.workspaces === n && x.subject === subject);
    if (!p) {
      rows.push(
        `| ${n} | ${subject} | not run${
          subject === "reference"
            ? (withReference
              ? " (it falls behind at 1,000)"
              : " (no python3-httpx)")
            : ""
        } | | | | | | |`,
      );
      continue;
    }
    rows.push(
      `| ${n} (${p.intervalS} s) | ${subject} | ${p.beatsReceived}/${p.beatsExpected} = ${
        (p.delivered * 100).toFixed(1)
      } % | ${f(p.periodErrorMs.p50)} / ${f(p.periodErrorMs.p99)} / ${
        f(p.periodErrorMs.max)
      } | ${f(p.cpuMsPerBeat, 2)} | ${
        (p.cpuShareOfOneCore * 100).toFixed(1)
      } % | ${p.peakRssMb.toFixed(0)} | ${f(p.connectionsPer1000Beats, 1)} | ${
        f(p.coldStartMs, 0)
      } |`,
    );
  }
}
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${
  (totalmem() / 2 ** 30).toFixed(0)
} GiB`;
const result = { date: new Date().toISOString(), machine, windowS, points };
await writeFile(outPath, JSON.stringify(result, null, 2));
console.log(
  `${result.date} on ${machine}; measuring window ${windowS} s after warm-up\n`,
);
console.log(rows.join("\n"));
process.exit(0);
