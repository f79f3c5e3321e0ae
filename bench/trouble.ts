// Trouble benchmark: one agent process (`deno run` with the small-heap flag the
// README recommends for fleets) heartbeating N workspaces at 20 s against the
// emulator in its own process, while the platform or the reader of our stderr
// misbehaves. A fresh agent per scenario; measured from outside:
//
// - beats delivered: heartbeats the emulator accepted in the window, against
//   one per workspace per interval;
// - peak descriptors (/proc/PID/fd, sampled every 250 ms) and peak RSS
//   (VmHWM);
// - requests per second reaching the platform in the window (any path, any
//   answer), against the healthy scenario's;
// - log lines per second on stderr (when it is read);
// - /healthz: how many of one probe per second got an HTTP answer at all;
// - time to full recovery: from the platform healing to every workspace
//   having a beat accepted again (a register, for "register hung");
// - with register hung: how many workspaces had a beat accepted within their
//   first interval.
//
//   deno task bench:trouble [out.json] [--sizes 1000,10000]
//     [--scenarios healthy,register-hung,...] [--intervals 2]
//
// A benchmark, not a test: it prints a table and writes JSON, never fails on a
// number.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  benchArgs,
  denoBin,
  type EmulatorProcess,
  fmt,
  here,
  machineDescription,
  openFds,
  sleep,
  SMALL_HEAP,
  startEmulatorProcess,
  statusMb,
  writeWorkspacesFile,
} from "./common.ts";

const { opt, outPath } = benchArgs(process.argv.slice(2), "bench-trouble.json");
const sizes = opt("--sizes", "1000,10000").split(",").map(Number);
const INTERVAL_S = 20;
const REQUEST_TIMEOUT_S = 10;
/** The window: this many whole intervals after the warm-up. */
const intervals = Number(opt("--intervals", "2"));
const windowS = intervals * INTERVAL_S;
/** The longest a recovery is waited for: interval + timeout, then 30 s more. */
const RECOVERY_LIMIT_S = INTERVAL_S + REQUEST_TIMEOUT_S + 30;

interface Scenario {
  name: string;
  /** What the platform does from the agent's start (before warm-up). */
  atStart?: [path: string, fault: object];
  /** What the platform does from the window's start (after warm-up). */
  inWindow?: [path: string, fault: object];
  /** Whether the platform heals after the window (then recovery is timed). */
  heals?: boolean;
  /** What the agent's stderr meets. */
  stderr?: "read" | "not-read" | "closed";
  /** Start the agent under this open-files limit. */
  ulimit?: number;
  /** Extra agent flags. */
  flags?: string[];
}
const HANG = { kind: "hang" };
const SCENARIOS: Scenario[] = [
  { name: "healthy" },
  { name: "register hung", atStart: ["register", HANG], heals: true },
  { name: "platform hung", inWindow: ["any", HANG], heals: true },
  {
    name: "platform hung, ulimit -n 1024",
    inWindow: ["any", HANG],
    heals: true,
    ulimit: 1024,
  },
  {
    name: "5xx outage, then recovery",
    inWindow: ["any", { kind: "status", status: 503 }],
    heals: true,
  },
  {
    name: "401 for all",
    inWindow: ["heartbeat", { kind: "status", status: 401 }],
    heals: true,
  },
  { name: "stderr not read (--verbose)", stderr: "not-read", flags: ["-v"] },
  { name: "stderr closed (--verbose)", stderr: "closed", flags: ["-v"] },
];
const wanted = opt("--scenarios", "").split(",").filter(Boolean);
const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-");
const scenarios = wanted.length
  ? SCENARIOS.filter((s) => wanted.some((w) => slug(s.name).startsWith(w)))
  : SCENARIOS;

interface Row {
  scenario: string;
  workspaces: number;
  /** Distinct workspaces with a beat accepted within the first interval. */
  firstInterval: number | null;
  beats: number;
  beatsExpected: number;
  peakFds: number;
  peakRssMb: number;
  requestsPerS: number;
  logLinesPerS: number | null;
  healthAnswered: string;
  recoveryS: number | null;
  tooManyOpenFiles: number | null;
  exited: string | null;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

function startAgent(
  emu: EmulatorProcess,
  s: Scenario,
  file: string,
  dir: string,
  healthPort: number,
): ChildProcess {
  const argv = [
    denoBin,
    "run",
    "-A",
    SMALL_HEAP,
    here("../cli.ts"),
    "--workspaces-file",
    file,
    "--interval",
    String(INTERVAL_S),
    "--configs-dir",
    dir,
    "--health-port",
    String(healthPort),
    ...(s.flags ?? []),
  ];
  const [cmd, ...rest] = s.ulimit
    ? ["/bin/sh", "-c", `ulimit -n ${s.ulimit} && exec "$@"`, "sh", ...argv]
    : argv;
  return spawn(cmd, rest, {
    env: { PATH: process.env.PATH ?? "", HOME: dir, PLATFORM_URL: emu.url },
    stdio: ["ignore", "ignore", "pipe"],
  });
}

async function run(emu: EmulatorProcess, s: Scenario, n: number): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), "molecule-trouble-"));
  const file = await writeWorkspacesFile(dir, n);
  await emu.call("heal");
  await emu.call(`reset ${INTERVAL_S * 1000}`);
  if (s.atStart) {
    await emu.call(`fail ${s.atStart[0]} ${JSON.stringify(s.atStart[1])}`);
  }
  const healthPort = await freePort();
  const started = performance.now();
  const child = startAgent(emu, s, file, dir, healthPort);
  const pid = child.pid!;
  let exited: string | null = null;
  child.once("exit", (code, signal) => exited = `exit ${code ?? signal}`);
  // stderr: counted, left unread, or closed at once.
  let lines = 0;
  let emfile = 0;
  let tail = "";
  if ((s.stderr ?? "read") === "read") {
    child.stderr!.on("data", (d: Buffer) => {
      const text = d.toString();
      for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) {
        lines++;
      }
      emfile += text.split("Too many open files").length - 1;
      tail = (tail + text).slice(-2000);
    });
  } else if (s.stderr === "closed") {
    child.stderr!.destroy();
  } // "not-read": the pipe fills and stays full.
  // Samplers: descriptors every 250 ms, /healthz once a second.
  let peakFds = 0;
  let probes = 0;
  let answered = 0;
  let sampling = true;
  const fdSampler = (async () => {
    while (sampling) {
      peakFds = Math.max(peakFds, await openFds(pid));
      await sleep(250);
    }
  })();
  const prober = (async () => {
    while (sampling) {
      probes++;
      try {
        const r = await fetch(`http://127.0.0.1:${healthPort}/healthz`, {
          signal: AbortSignal.timeout(2_000),
        });
        await r.body?.cancel();
        answered++;
      } catch { /* no answer */ }
      await sleep(1_000);
    }
  })();

  let firstInterval: number | null = null;
  if (s.atStart) {
    // Beats never wait on register: count who beat in the first interval,
    // from the agent's first request (its start reads 10,000 workspaces).
    while (performance.now() - started < 30_000 && exited === null) {
      if (((await emu.call("stats")).requests ?? 0) > 0) break;
      await sleep(50);
    }
    await sleep(INTERVAL_S * 1000 + 500);
    firstInterval = (await emu.call("stats")).workspacesSeen ?? 0;
  } else {
    // Warm-up: every workspace registered, then one interval.
    while (performance.now() - started < 180_000 && exited === null) {
      if (((await emu.call("stats")).registers ?? 0) >= n) break;
      await sleep(200);
    }
    await sleep(INTERVAL_S * 1000);
  }
  if (s.inWindow) {
    await emu.call(`fail ${s.inWindow[0]} ${JSON.stringify(s.inWindow[1])}`);
  }
  await emu.call(`reset ${INTERVAL_S * 1000}`);
  const linesAtStart = lines;
  await sleep(windowS * 1000);
  const stats = await emu.call("stats");
  const windowLines = lines - linesAtStart;
  let recoveryS: number | null = null;
  if (s.heals && exited === null) {
    await emu.call("heal");
    await emu.call(`mark ${n}`);
    const healed = performance.now();
    const key = s.atStart ? "registersRecoveredMs" : "beatsRecoveredMs";
    while (performance.now() - healed < RECOVERY_LIMIT_S * 1000) {
      const ms = (await emu.call("stats"))[key];
      if (ms !== null && ms !== undefined) {
        recoveryS = ms / 1000;
        break;
      }
      await sleep(250);
    }
  }
  const peakRssMb = exited === null ? await statusMb(pid) : 0;
  // Only an exit before this point is the agent's own doing.
  const exitedEarly: string | null = exited;
  sampling = false;
  await Promise.all([fdSampler, prober]);
  child.kill("SIGTERM");
  const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  if (exited === null) await new Promise((r) => child.once("close", r));
  clearTimeout(killer);
  await rm(dir, { recursive: true, force: true });
  if (exitedEarly !== null) {
    console.error(`${s.name} N=${n}: ${exitedEarly}\n${tail}`);
  }
  return {
    scenario: s.name,
    workspaces: n,
    firstInterval,
    beats: stats.beats ?? 0,
    beatsExpected: n * intervals,
    peakFds,
    peakRssMb,
    requestsPerS: (stats.requests ?? 0) / windowS,
    logLinesPerS: (s.stderr ?? "read") === "read"
      ? windowLines / windowS
      : null,
    healthAnswered: `${answered}/${probes}`,
    recoveryS,
    tooManyOpenFiles: (s.stderr ?? "read") === "read" ? emfile : null,
    exited: exitedEarly,
  };
}

const emu = await startEmulatorProcess();
const rows: Row[] = [];
for (const n of sizes) {
  for (const s of scenarios) {
    console.error(`${s.name}, ${n} workspaces...`);
    rows.push(await run(emu, s, n));
  }
}
await emu.close();

const f = fmt;
const table = [
  "| workspaces | scenario | beaten in 1st interval | beats accepted in window | peak fds | peak RSS (MB) | requests/s (× healthy) | log lines/s | /healthz answered | full recovery after (s) |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
];
for (const r of rows) {
  const healthy = rows.find((h) =>
    h.workspaces === r.workspaces && h.scenario === "healthy"
  );
  const ratio = healthy && healthy.requestsPerS > 0
    ? ` (${(r.requestsPerS / healthy.requestsPerS).toFixed(2)}×)`
    : "";
  table.push(
    `| ${r.workspaces} | ${r.scenario}${r.exited ? ` (${r.exited})` : ""} | ${
      r.firstInterval === null ? "" : `${r.firstInterval}/${r.workspaces}`
    } | ${r.beats}/${r.beatsExpected} | ${r.peakFds} | ${
      r.peakRssMb.toFixed(0)
    } | ${r.requestsPerS.toFixed(0)}${ratio} | ${
      r.logLinesPerS === null ? "not read" : f(r.logLinesPerS, 2)
    }${
      r.tooManyOpenFiles ? `, ${r.tooManyOpenFiles} EMFILE` : ""
    } | ${r.healthAnswered} | ${f(r.recoveryS, 1)} |`,
  );
}
const machine = machineDescription();
const result = {
  date: new Date().toISOString(),
  machine,
  intervalS: INTERVAL_S,
  windowS,
  rows,
};
await writeFile(outPath, JSON.stringify(result, null, 2) + "\n");
console.log(
  `${result.date} on ${machine}; interval ${INTERVAL_S} s, window ${windowS} s after warm-up; agent: deno run ${SMALL_HEAP}\n`,
);
console.log(table.join("\n"));
process.exit(0);
