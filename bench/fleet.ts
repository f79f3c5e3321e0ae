// Fleet benchmark: one agent process heartbeating N workspaces against the
// platform emulator running in a separate process, for this project's CLI and
// (where python3 with httpx is present) the Python reference, side by side.
// Measured from outside: the emulator counts and timestamps beats and
// connections; /proc reports the agent's CPU time and peak RSS; inotify
// (fs.watch on the configs dir) counts secret files renamed into place.
// Then cold start (process start to the first register at the emulator, for
// `deno run`, the Node build and the reference) and idle footprint (RSS of
// one workspace at 20 s after --idle seconds).
//
//   deno task bench [out.json] [--sizes 1,100,1000,10000] [--window 30]
//     [--subjects project,project-small-heap,reference] [--idle 60]
//     [--deno-flags "--v8-flags=..."]
//
// A benchmark, not a test: it prints a table and writes JSON, never fails on a number.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, watch } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  benchArgs,
  cpuSeconds,
  denoBin,
  denoDir,
  fmt,
  here,
  machineDescription,
  nodeBin,
  sleep,
  SMALL_HEAP,
  startEmulatorProcess,
  statusMb,
  writeWorkspacesFile as workspacesFile,
} from "./common.ts";

const { opt, outPath } = benchArgs(process.argv.slice(2), "bench-results.json");
const sizes = opt("--sizes", "1,100,1000,10000").split(",").map(Number);
const windowS = Number(opt("--window", "30"));
const subjects = opt("--subjects", "project,project-small-heap,reference")
  .split(",");
const idleS = Number(opt("--idle", "60"));
// Extra `deno run` flags for the project's agent, to try V8 settings.
const denoFlags = opt("--deno-flags", "").split(" ").filter(Boolean);
type Subject = "project" | "project-small-heap" | "reference";
// The reference: MOLECULE_REFERENCE_DIR, else ../shared/reference beside the
// checkout (where this project's build machines keep it).
const refDir = process.env.MOLECULE_REFERENCE_DIR ??
  here("../../shared/reference");
const haveReference = existsSync(join(refDir, "mcp_heartbeat.py"));
// The Node build: the same tsc output the npm package ships.
const nodeCli = here("../.ci/out/npm/dist/cli.js");
// `deno run` cached, as a user's: HOME below is a fresh dir each time.
const DENO_DIR = denoDir();

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
const emu = await startEmulatorProcess();
const platformUrl = emu.url;
const emuCall = emu.call;

interface Point {
  subject: string;
  workspaces: number;
  intervalS: number;
  windowS: number;
  allRegisteredMs: number | null;
  beatsReceived: number;
  beatsExpected: number;
  delivered: number;
  periodErrorMs: { p50: number | null; p99: number | null; max: number | null };
  cpuMsPerBeat: number | null;
  cpuShareOfOneCore: number;
  peakRssMb: number;
  connections: number;
  connectionsPer1000Beats: number | null;
  secretWrites: number;
  secretWritesPer1000Beats: number | null;
  coldStartMs: number | null;
}

type Agent = "deno" | "node" | "reference";

/** How long a point waits for every workspace to be registered. */
const REGISTER_LIMIT_S = 180;

/** Starts an agent: this project's CLI on Deno or Node, or the reference. */
function startAgent(
  agent: Agent,
  workspacesFile: string,
  intervalS: number,
  configsDir: string,
  durationS: number,
  flags: string[] = [],
): ChildProcess {
  const options = {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: configsDir,
      DENO_DIR,
      PLATFORM_URL: platformUrl,
    },
    stdio: ["ignore", "ignore", "pipe"] as ["ignore", "ignore", "pipe"],
  };
  const cliArgs = [
    "--workspaces-file",
    workspacesFile,
    "--interval",
    String(intervalS),
    "--configs-dir",
    configsDir,
  ];
  if (agent === "deno") {
    return spawn(denoBin, [
      "run",
      "-A",
      ...flags,
      here("../cli.ts"),
      ...cliArgs,
    ], options);
  }
  if (agent === "node") {
    return spawn(nodeBin, [...flags, nodeCli, ...cliArgs], options);
  }
  return spawn(python!, [
    here("./reference_runner.py"),
    refDir,
    platformUrl,
    workspacesFile,
    String(intervalS),
    String(durationS),
    configsDir,
  ], options);
}

/** A secret file renamed into place (not a temporary file). */
const SECRET_FILE = /^\.platform_inbound_secret(\.[^/]*)?$/;
const isSecretFile = (name: string) =>
  SECRET_FILE.test(name) && !name.endsWith(".tmp");

async function runPoint(
  subject: Subject,
  n: number,
): Promise<Point | undefined> {
  const intervalS = n === 1 ? 1 : 20;
  const dir = await mkdtemp(join(tmpdir(), "molecule-bench-"));
  const file = await workspacesFile(dir, n);
  await emuCall(`reset ${intervalS * 1000}`);
  // A whole number of intervals (two at least, for periods to measure), so
  // that every workspace is due the same number of times in the window
  // wherever its phase falls.
  const pointWindowS = Math.max(2, Math.ceil(windowS / intervalS)) * intervalS;
  const started = performance.now();
  // Every atomic write ends in a rename onto the secret file's name.
  let secretWrites = 0;
  const watcher = watch(dir, (event, name) => {
    if (event === "rename" && name && isSecretFile(String(name))) {
      secretWrites++;
    }
  });
  const child = startAgent(
    subject === "reference" ? "reference" : "deno",
    file,
    intervalS,
    dir,
    REGISTER_LIMIT_S + intervalS + pointWindowS + 10,
    subject === "project-small-heap" ? [SMALL_HEAP, ...denoFlags] : denoFlags,
  );
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
  // Warm-up: every workspace registered (the reference registers them one
  // after the other before its threads start), then one interval.
  let allRegisteredMs: number | null = null;
  while (performance.now() - started < REGISTER_LIMIT_S * 1000) {
    if (((await emuCall("stats")).registers ?? 0) >= n) {
      allRegisteredMs = performance.now() - started;
      break;
    }
    await sleep(20);
  }
  await sleep(intervalS * 1000);
  await emuCall(`reset ${intervalS * 1000}`);
  if (child.exitCode !== null || child.signalCode !== null) {
    console.error(`${subject} N=${n}: exited early; stderr:\n${stderr}`);
    watcher.close();
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }
  const cpu0 = await cpuSeconds(child.pid!);
  secretWrites = 0;
  await sleep(pointWindowS * 1000);
  const stats = await emuCall("stats");
  const writes = secretWrites;
  watcher.close();
  const cpu1 = await cpuSeconds(child.pid!);
  const rss = await statusMb(child.pid!);
  child.kill("SIGTERM");
  await new Promise((r) => child.once("close", r));
  await rm(dir, { recursive: true, force: true });
  if (stats.beats === 0) {
    console.error(`${subject} N=${n}: no beats; stderr:\n${stderr}`);
  }
  const beats = stats.beats ?? 0;
  const expected = (n * pointWindowS) / intervalS;
  return {
    subject,
    workspaces: n,
    intervalS,
    windowS: pointWindowS,
    allRegisteredMs,
    beatsReceived: beats,
    beatsExpected: expected,
    delivered: beats / expected,
    periodErrorMs: {
      p50: stats.periodErrorP50,
      p99: stats.periodErrorP99,
      max: stats.periodErrorMax,
    },
    cpuMsPerBeat: beats ? ((cpu1 - cpu0) * 1000) / beats : null,
    cpuShareOfOneCore: (cpu1 - cpu0) / pointWindowS,
    peakRssMb: rss,
    connections: stats.connections ?? 0,
    connectionsPer1000Beats: beats
      ? ((stats.connections ?? 0) * 1000) / beats
      : null,
    secretWrites: writes,
    secretWritesPer1000Beats: beats ? (writes * 1000) / beats : null,
    coldStartMs,
  };
}

const withReference = python !== undefined && haveReference;
const referenceMissing = !haveReference
  ? `reference not found in ${refDir}`
  : "no python3-httpx";
const SUBJECTS: Subject[] = ["project", "project-small-heap", "reference"];
const runs = (subject: Subject, n: number) =>
  subjects.includes(subject) &&
  (subject !== "reference" || (withReference && n <= 1000)) &&
  (subject !== "project-small-heap" || n >= 1000);
const points: Point[] = [];
const failedPoints: string[] = [];
for (const n of sizes) {
  for (const subject of SUBJECTS) {
    if (!runs(subject, n)) continue;
    console.error(`running ${subject} with ${n} workspace(s)...`);
    const point = await runPoint(subject, n);
    if (point) points.push(point);
    else failedPoints.push(`${subject}:${n}`);
  }
}

// ---- cold start and idle footprint ----
console.error("building the Node build (tsc)...");
const built = spawnSync(here("../node_modules/.bin/tsc"), [
  "-p",
  here("../tsconfig.build.json"),
], { stdio: "inherit" }).status === 0;
const agents: Agent[] = [
  "deno",
  ...(built ? ["node" as const] : []),
  ...(withReference ? ["reference" as const] : []),
];

/** Process start to the first register at the emulator, median of 3. */
async function coldStart(agent: Agent): Promise<number | null> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const dir = await mkdtemp(join(tmpdir(), "molecule-bench-cold-"));
    const file = await workspacesFile(dir, 1, `cold-${agent}`);
    await emuCall("reset 20000");
    const started = performance.now();
    const child = startAgent(agent, file, 20, dir, 20);
    while (performance.now() - started < 15_000) {
      if (((await emuCall("stats")).registers ?? 0) > 0) {
        times.push(performance.now() - started);
        break;
      }
      await sleep(2);
    }
    child.kill("SIGTERM");
    await new Promise((r) => child.once("close", r));
    await rm(dir, { recursive: true, force: true });
  }
  times.sort((a, b) => a - b);
  return times.length ? times[Math.floor(times.length / 2)] : null;
}
const cold: Record<string, number | null> = {};
for (const agent of agents) {
  console.error(`cold start of ${agent}...`);
  cold[agent] = await coldStart(agent);
}

// Idle: every agent at once, one workspace each at 20 s, for idleS seconds.
console.error(`idle footprint: ${idleS} s...`);
const idleRuns = await Promise.all(agents.map(async (agent) => {
  const dir = await mkdtemp(join(tmpdir(), "molecule-bench-idle-"));
  const file = await workspacesFile(dir, 1, `idle-${agent}`);
  const child = startAgent(agent, file, 20, dir, idleS + 10);
  return { agent, dir, child };
}));
await sleep(idleS * 1000);
const idle: Record<string, { rssMb: number; peakRssMb: number; cpuS: number }> =
  {};
for (const { agent, dir, child } of idleRuns) {
  idle[agent] = {
    rssMb: await statusMb(child.pid!, "VmRSS"),
    peakRssMb: await statusMb(child.pid!),
    cpuS: await cpuSeconds(child.pid!),
  };
  child.kill("SIGTERM");
  await new Promise((r) => child.once("close", r));
  await rm(dir, { recursive: true, force: true });
}
await emu.close();

const f = fmt;
const rows = [
  "| workspaces (interval) | subject | delivered | period error p50 / p99 / max (ms) | CPU ms per beat | CPU, share of one core | peak RSS (MB) | TCP connections per 1,000 beats | secret-file writes per 1,000 beats | cold start (ms) | all registered after (s) |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
];
for (const n of sizes) {
  for (const subject of SUBJECTS) {
    const p = points.find((x) => x.workspaces === n && x.subject === subject);
    if (!p) {
      if (failedPoints.includes(`${subject}:${n}`)) {
        rows.push(
          `| ${n} | ${subject} | exited early (see stderr) | | | | | | | | |`,
        );
        continue;
      }
      if (subject === "reference" && subjects.includes("reference")) {
        rows.push(
          `| ${n} | reference | not run${
            withReference
              ? " (it already falls behind at 1,000)"
              : ` (${referenceMissing})`
          } | | | | | | | | |`,
        );
      }
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
        f(p.secretWritesPer1000Beats, 1)
      } | ${f(p.coldStartMs, 0)} | ${
        f(p.allRegisteredMs === null ? null : p.allRegisteredMs / 1000, 1)
      } |`,
    );
  }
}
const label: Record<Agent, string> = {
  deno: "project, `deno run` (cached)",
  node: "project, Node build (Node " + process.versions.node + ")",
  reference: "reference (Python " +
    (spawnSync(python ?? "python3", [
      "-c",
      "import sys;print(sys.version.split()[0])",
    ])
      .stdout?.toString().trim() ?? "?") +
    ")",
};
const startRows = [
  `| agent | cold start, median of 3 (ms) | RSS after ${idleS} s idle, 1 workspace (MB) | peak RSS (MB) | CPU from start to then (ms) |`,
  "| --- | --- | --- | --- | --- |",
  ...agents.map((a) =>
    `| ${label[a]} | ${f(cold[a], 0)} | ${f(idle[a]?.rssMb ?? null, 0)} | ${
      f(idle[a]?.peakRssMb ?? null, 0)
    } | ${f(idle[a] ? idle[a].cpuS * 1000 : null, 0)} |`
  ),
];
const machine = machineDescription();
const result = {
  date: new Date().toISOString(),
  machine,
  windowS,
  idleS,
  points,
  coldStartMs: cold,
  idle,
};
await writeFile(outPath, JSON.stringify(result, null, 2) + "\n");
console.log(
  `${result.date} on ${machine}; measuring ${windowS} s rounded up to whole intervals, after every register and one interval\n`,
);
console.log(rows.join("\n"));
console.log("\n" + startRows.join("\n"));
process.exit(0);
