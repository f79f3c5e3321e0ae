// Beside one MCP server: the footprint of the wrapper serving one workspace
// at 20 s (`deno run -A mod.ts -- sleep 600`, `node mod.ts -- sleep 600`),
// against the same runtime running a script that only waits
// (bench/idle_script.ts, loaded the same way), against the runtime's part of
// any wrapper (bench/floor_script.ts, without and with LogTape), and against
// the Python reference (register, then one heartbeat thread), all in one run.
// `deno run` uses Deno's cache as a user has it (DENO_DIR), not an empty one.
//
//   node bench/beside_mcp.ts [out.json] [--idle 20] [--cold 5]
//     [--subjects deno-bare,deno-floor,deno-floor-logtape,deno-wrapper,
//                 node-bare,node-floor,node-floor-logtape,node-wrapper,
//                 node-bare-cached,node-wrapper-cached,
//                 python-bare,reference]
//
// Two phases, against the emulator in a process of its own on loopback:
//
// 1. cold start, one subject at a time, `--cold` times each (median): from
//    process start to the first request at the emulator (ours: the
//    `GET /workspaces/:id` lookup before register; the reference: its
//    register), and to the first register;
// 2. side by side: every subject started at once; when every agent has
//    registered, `--idle` seconds of idle, then each one's RSS (VmRSS), peak
//    RSS (VmHWM) and the CPU it used in the idle window, from /proc.
//
// The `-cached` Node subjects run with NODE_COMPILE_CACHE (Node's own compile
// cache, a directory warmed by the first start): the types of a module are
// stripped once, not at every start.
//
// A benchmark, not a test: it prints a table and writes JSON, never fails on a number.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
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
  startEmulatorProcess,
  statusMb,
} from "./common.ts";

const today = new Date().toISOString().slice(0, 10);
const { opt, outPath } = benchArgs(
  process.argv.slice(2),
  here(`./results/${today}-beside-mcp.json`),
);
const idleS = Number(opt("--idle", "20"));
const coldRuns = Number(opt("--cold", "5"));
const only = opt("--subjects", "").split(",").filter(Boolean);

const refDir = process.env.MOLECULE_REFERENCE_DIR ??
  here("../../shared/reference");
const haveReference = existsSync(join(refDir, "mcp_heartbeat.py"));
/** A python3 that has httpx (Debian's python3-httpx lives under /usr/bin/python3). */
function findPython(): string | undefined {
  for (const python of ["/usr/bin/python3", "python3"]) {
    const r = spawnSync(python, ["-c", "import httpx"], { stdio: "ignore" });
    if (r.status === 0) return python;
  }
  return undefined;
}
const python = findPython();
const withReference = python !== undefined && haveReference;

type SubjectName =
  | "deno-bare"
  | "deno-floor"
  | "deno-floor-logtape"
  | "deno-wrapper"
  | "node-bare"
  | "node-floor"
  | "node-floor-logtape"
  | "node-wrapper"
  | "node-bare-cached"
  | "node-wrapper-cached"
  | "python-bare"
  | "reference";

interface Subject {
  name: SubjectName;
  label: string;
  /** Sends requests to the platform (so has a cold start). */
  agent: boolean;
  /** The bare runtime it is compared with. */
  baseline?: SubjectName;
  start(workspaceId: string, configsDir: string): ChildProcess;
}

const emu = await startEmulatorProcess();
const MOD = here("../mod.ts");
const IDLE_SCRIPT = here("./idle_script.ts");
const FLOOR_SCRIPT = here("./floor_script.ts");
const TOKEN = "bench-beside-token-0123456789";
// `deno run` as a user's: its modules compiled once, in Deno's cache.
const DENO_DIR = denoDir();
const agentEnv = (id: string, configsDir: string) => ({
  PATH: process.env.PATH ?? "",
  HOME: configsDir,
  DENO_DIR,
  PLATFORM_URL: emu.url,
  WORKSPACE_ID: id,
  MOLECULE_WORKSPACE_TOKEN: TOKEN,
  CONFIGS_DIR: configsDir,
});
// Node's compile cache, one directory for the run, warmed by the first start.
const NODE_CACHE = await mkdtemp(join(tmpdir(), "molecule-beside-node-cache-"));
const cached = (env: Record<string, string>) => ({
  ...env,
  NODE_COMPILE_CACHE: NODE_CACHE,
});
const quietEnv = (dir: string) => ({
  PATH: process.env.PATH ?? "",
  HOME: dir,
  DENO_DIR,
});
// stdin held open and never written, as an MCP client holds it between calls.
const stdio = ["pipe", "ignore", "pipe"] as ["pipe", "ignore", "pipe"];
const pythonVersion = python
  ? spawnSync(python, ["-c", "import sys;print(sys.version.split()[0])"])
    .stdout?.toString().trim()
  : undefined;

const subjects: Subject[] = ([
  {
    name: "deno-bare",
    label: "Deno, a script that only waits (`deno run`)",
    agent: false,
    start: (_id, dir) =>
      spawn(denoBin, ["run", IDLE_SCRIPT], { env: quietEnv(dir), stdio }),
  },
  {
    name: "deno-floor",
    label:
      "Deno, the runtime's part of any wrapper (bench/floor_script.ts: spawn, relay, a request every 20 s, a file, signals)",
    agent: false,
    baseline: "deno-bare",
    start: (id, dir) =>
      spawn(denoBin, ["run", "-A", FLOOR_SCRIPT], {
        env: agentEnv(id, dir),
        stdio,
      }),
  },
  {
    name: "deno-floor-logtape",
    label: "Deno, the same and LogTape (npm) loaded and configured",
    agent: false,
    baseline: "deno-bare",
    start: (id, dir) =>
      spawn(denoBin, ["run", "-A", FLOOR_SCRIPT, "--logtape"], {
        env: agentEnv(id, dir),
        stdio,
      }),
  },
  {
    name: "deno-wrapper",
    label: "ours on Deno (`deno run -A mod.ts -- sleep 600`)",
    agent: true,
    baseline: "deno-bare",
    start: (id, dir) =>
      spawn(denoBin, ["run", "-A", MOD, "--", "sleep", "600"], {
        env: agentEnv(id, dir),
        stdio,
      }),
  },
  {
    name: "node-bare",
    label: `Node ${process.versions.node}, a .ts script that only waits`,
    agent: false,
    start: (_id, dir) =>
      spawn(nodeBin, [IDLE_SCRIPT], { env: quietEnv(dir), stdio }),
  },
  {
    name: "node-floor",
    label: "Node, the runtime's part of any wrapper (the same script)",
    agent: false,
    baseline: "node-bare",
    start: (id, dir) =>
      spawn(nodeBin, [FLOOR_SCRIPT], { env: agentEnv(id, dir), stdio }),
  },
  {
    name: "node-floor-logtape",
    label: "Node, the same and LogTape loaded and configured",
    agent: false,
    baseline: "node-bare",
    start: (id, dir) =>
      spawn(nodeBin, [FLOOR_SCRIPT, "--logtape"], {
        env: agentEnv(id, dir),
        stdio,
      }),
  },
  {
    name: "node-wrapper",
    label: "ours on Node (`node mod.ts -- sleep 600`)",
    agent: true,
    baseline: "node-bare",
    start: (id, dir) =>
      spawn(nodeBin, [MOD, "--", "sleep", "600"], {
        env: agentEnv(id, dir),
        stdio,
      }),
  },
  {
    name: "node-bare-cached",
    label: "Node, a .ts script that only waits, with NODE_COMPILE_CACHE",
    agent: false,
    start: (_id, dir) =>
      spawn(nodeBin, [IDLE_SCRIPT], { env: cached(quietEnv(dir)), stdio }),
  },
  {
    name: "node-wrapper-cached",
    label: "ours on Node with NODE_COMPILE_CACHE",
    agent: true,
    baseline: "node-bare-cached",
    start: (id, dir) =>
      spawn(nodeBin, [MOD, "--", "sleep", "600"], {
        env: cached(agentEnv(id, dir)),
        stdio,
      }),
  },
  ...(python
    ? [{
      name: "python-bare" as const,
      label: `Python ${pythonVersion}, a script that only waits`,
      agent: false,
      start: (_id: string, dir: string) =>
        spawn(python, ["-c", "import time; time.sleep(3600)"], {
          env: quietEnv(dir),
          stdio,
        }),
    }]
    : []),
  ...(withReference
    ? [{
      name: "reference" as const,
      label:
        `the reference (Python ${pythonVersion}: register, a heartbeat thread)`,
      agent: true,
      baseline: "python-bare" as const,
      start: (id: string, dir: string) => {
        const file = join(dir, "workspaces.json");
        writeFileSync(file, JSON.stringify([{ id, token: TOKEN }]), {
          mode: 0o600,
        });
        return spawn(python!, [
          here("./reference_runner.py"),
          refDir,
          emu.url,
          file,
          "20",
          "3600",
          dir,
        ], { env: quietEnv(dir), stdio });
      },
    }]
    : []),
] as Subject[]).filter((s) => only.length === 0 || only.includes(s.name));

const closed = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once("close", r));
async function stop(child: ChildProcess): Promise<void> {
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await closed(child);
  clearTimeout(timer);
}

// ---- phase 1: cold start, one subject at a time ----
interface Cold {
  firstRequestMs: number[];
  firstRegisterMs: number[];
}
const cold: Partial<Record<SubjectName, Cold>> = {};
const median = (xs: number[]) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
for (const subject of subjects.filter((s) => s.agent && coldRuns > 0)) {
  console.error(`cold start of ${subject.name}, ${coldRuns} runs...`);
  const times: Cold = { firstRequestMs: [], firstRegisterMs: [] };
  // One run first, not counted: every cache warm (`deno run` compiles once).
  for (let i = -1; i < coldRuns; i++) {
    const dir = await mkdtemp(join(tmpdir(), "molecule-beside-cold-"));
    await emu.call("reset 20000");
    // Process start and the emulator's arrivals on one clock: the epoch.
    const startedAt = performance.timeOrigin + performance.now();
    const child = subject.start(`cold-${subject.name}-${i + 1}`, dir);
    child.stderr!.resume();
    // Polled gently: the arrival times are the emulator's own.
    while (performance.timeOrigin + performance.now() - startedAt < 15_000) {
      const stats = await emu.call("stats");
      if (stats.firstRegisterAt !== null && stats.firstRequestAt !== null) {
        if (i >= 0) {
          times.firstRequestMs.push(stats.firstRequestAt - startedAt);
          times.firstRegisterMs.push(stats.firstRegisterAt - startedAt);
        }
        break;
      }
      await sleep(50);
    }
    await stop(child);
    await rm(dir, { recursive: true, force: true });
  }
  cold[subject.name] = times;
}

// Node's compile cache warm for both cached subjects (a start of each),
// whether or not phase 1 ran: a cold cache would strip types as a plain run.
for (const subject of subjects.filter((s) => s.name.endsWith("-cached"))) {
  const dir = await mkdtemp(join(tmpdir(), "molecule-beside-warm-"));
  const child = subject.start(`warm-${subject.name}`, dir);
  child.stderr!.resume();
  await sleep(3_000);
  await stop(child);
  await rm(dir, { recursive: true, force: true });
}

// ---- phase 2: side by side, idle ----
console.error(`side by side: every subject at once, then ${idleS} s idle...`);
await emu.call("reset 20000");
const running = await Promise.all(subjects.map(async (subject) => {
  const dir = await mkdtemp(join(tmpdir(), "molecule-beside-idle-"));
  await mkdir(dir, { recursive: true });
  const child = subject.start(`idle-${subject.name}`, dir);
  let stderr = "";
  child.stderr!.on("data", (d) => stderr = (stderr + d).slice(-4000));
  return { subject, dir, child, stderr: () => stderr };
}));
const agents = subjects.filter((s) => s.agent).length;
const t0 = performance.now();
while (performance.now() - t0 < 30_000) {
  if (((await emu.call("stats")).registers ?? 0) >= agents) break;
  await sleep(20);
}
const registeredAfterMs = performance.now() - t0;
const cpuAtStart = new Map<SubjectName, number>();
const cpuOf = (pid: number) => cpuSeconds(pid).catch(() => 0);
for (const r of running) {
  cpuAtStart.set(r.subject.name, await cpuOf(r.child.pid!));
}
await sleep(idleS * 1000);
const beats = (await emu.call("stats")).beats ?? 0;
interface Idle {
  rssMb: number;
  peakRssMb: number;
  cpuMsInIdle: number;
  cpuMsTotal: number;
  exited: boolean;
}
const idle: Partial<Record<SubjectName, Idle>> = {};
for (const r of running) {
  const exited = r.child.exitCode !== null || r.child.signalCode !== null;
  if (exited) {
    console.error(`${r.subject.name} exited early; stderr:\n${r.stderr()}`);
  }
  const cpu = exited ? 0 : await cpuOf(r.child.pid!);
  idle[r.subject.name] = {
    rssMb: exited ? 0 : await statusMb(r.child.pid!, "VmRSS"),
    peakRssMb: exited ? 0 : await statusMb(r.child.pid!),
    cpuMsInIdle: (cpu - (cpuAtStart.get(r.subject.name) ?? 0)) * 1000,
    cpuMsTotal: cpu * 1000,
    exited,
  };
}
await Promise.all(running.map(async (r) => {
  await stop(r.child);
  await rm(r.dir, { recursive: true, force: true });
}));
await emu.close();
await rm(NODE_CACHE, { recursive: true, force: true });

// ---- the table ----
const rows = [
  `| subject | RSS after ${idleS} s idle (MB) | × its bare runtime | peak RSS (MB) | CPU in the idle window (ms) | cold start to the first request, median of ${coldRuns} (ms) | to the first register (ms) |`,
  "| --- | --- | --- | --- | --- | --- | --- |",
];
for (const s of subjects) {
  const i = idle[s.name];
  const base = s.baseline ? idle[s.baseline] : undefined;
  const c = cold[s.name];
  rows.push(
    `| ${s.label} | ${i && !i.exited ? fmt(i.rssMb) : "exited"} | ${
      i && base && base.rssMb > 0
        ? `${(i.rssMb / base.rssMb).toFixed(2)}×`
        : "–"
    } | ${i ? fmt(i.peakRssMb) : "–"} | ${i ? fmt(i.cpuMsInIdle, 0) : "–"} | ${
      c ? fmt(median(c.firstRequestMs), 0) : "–"
    } | ${c ? fmt(median(c.firstRegisterMs), 0) : "–"} |`,
  );
}
const machine = machineDescription();
const result = {
  date: new Date().toISOString(),
  machine,
  versions: {
    deno: spawnSync(denoBin, ["--version"]).stdout?.toString().split("\n")[0],
    node: process.versions.node,
    python: pythonVersion ?? null,
  },
  idleS,
  coldRuns,
  registeredAfterMs,
  beatsInIdleWindow: beats,
  reference: withReference
    ? "run"
    : !haveReference
    ? `not found in ${refDir}`
    : "no python3-httpx",
  idle,
  coldStart: Object.fromEntries(
    Object.entries(cold).map(([name, c]) => [name, {
      ...c,
      firstRequestMedianMs: median(c!.firstRequestMs),
      firstRegisterMedianMs: median(c!.firstRegisterMs),
    }]),
  ),
};
await mkdir(join(outPath, ".."), { recursive: true });
await writeFile(outPath, JSON.stringify(result, null, 2) + "\n");
console.log(
  `${result.date} on ${machine}: beside one MCP server, one workspace at 20 s; side by side, RSS after every agent registered and ${idleS} s idle\n`,
);
console.log(rows.join("\n"));
if (!withReference) console.log(`\nreference: ${result.reference}`);
console.log(`\nJSON: ${outPath}`);
process.exit(0);
