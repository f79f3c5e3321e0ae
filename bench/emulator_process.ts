// The benches' platform: the emulator in a process of its own, so that agent
// and platform never share an event loop. Prints its URL as the first line of
// stdout, then answers each stdin line with one JSON line:
//
//   reset <intervalMs>   zero the counters (and set the interval periods are
//                        measured against)
//   stats                the counters since the last reset (and when the
//                        first request and first accepted register came,
//                        in ms since the epoch: performance.timeOrigin + now)
//   fail <path> <json>   inject a Fault (src/testing/emulator.ts) on path
//                        register, heartbeat, state or any
//   heal                 remove every fault
//   mark <n>             start a recovery clock: stats then say when n distinct
//                        workspaces had a beat, and a register, accepted since
//   quit                 stop
import { createInterface } from "node:readline";
import process from "node:process";
import { type Fault, startPlatformEmulator } from "../src/testing/emulator.ts";

const last = new Map<string, number>();
let errors: number[] = [];
let beats = 0;
let registers = 0;
let requests = 0;
let interval = Number(process.argv[2] ?? 20_000);
let connectionsAtReset = 0;
let firstRequestAt: number | null = null;
let firstRegisterAt: number | null = null;
// Recovery clock: since `mark`, who had a beat or a register accepted.
let markAt: number | undefined;
let markTarget = 0;
const beatenSinceMark = new Set<string>();
const registeredSinceMark = new Set<string>();
let beatsRecoveredMs: number | null = null;
let registersRecoveredMs: number | null = null;
const platform = await startPlatformEmulator({
  uuidIds: false,
  record: false,
  secretFor: () => "bench-inbound-secret",
  onRequest: (r) => {
    requests++;
    firstRequestAt ??= performance.timeOrigin + r.at;
    if (r.status !== 200 || !r.workspaceId) return;
    if (r.path === "register") {
      registers++;
      firstRegisterAt ??= performance.timeOrigin + r.at;
      if (markAt !== undefined && registersRecoveredMs === null) {
        registeredSinceMark.add(r.workspaceId);
        if (registeredSinceMark.size >= markTarget) {
          registersRecoveredMs = r.at - markAt;
        }
      }
    }
    if (r.path !== "heartbeat") return;
    beats++;
    if (markAt !== undefined && beatsRecoveredMs === null) {
      beatenSinceMark.add(r.workspaceId);
      if (beatenSinceMark.size >= markTarget) beatsRecoveredMs = r.at - markAt;
    }
    const prev = last.get(r.workspaceId);
    if (prev !== undefined) errors.push(Math.abs(r.at - prev - interval));
    last.set(r.workspaceId, r.at);
  },
});
process.stdout.write(platform.url + "\n");
const quantile = (sorted: number[], q: number) =>
  sorted.length === 0
    ? null
    : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
for await (const line of createInterface({ input: process.stdin })) {
  const [cmd, arg, ...rest] = line.trim().split(/\s+/);
  if (cmd === "reset") {
    last.clear();
    errors = [];
    beats = 0;
    registers = 0;
    requests = 0;
    firstRequestAt = null;
    firstRegisterAt = null;
    interval = Number(arg ?? interval);
    connectionsAtReset = platform.connections;
    process.stdout.write("{}\n");
  } else if (cmd === "fail") {
    const fault = JSON.parse(rest.join(" ")) as Fault;
    platform.fail(fault, {
      path: arg as "register" | "heartbeat" | "state" | "any",
    });
    process.stdout.write("{}\n");
  } else if (cmd === "heal") {
    platform.heal();
    process.stdout.write("{}\n");
  } else if (cmd === "mark") {
    markAt = performance.now();
    markTarget = Number(arg);
    beatenSinceMark.clear();
    registeredSinceMark.clear();
    beatsRecoveredMs = null;
    registersRecoveredMs = null;
    process.stdout.write("{}\n");
  } else if (cmd === "stats") {
    const sorted = [...errors].sort((a, b) => a - b);
    process.stdout.write(
      JSON.stringify({
        beats,
        registers,
        requests,
        workspacesSeen: last.size,
        periods: sorted.length,
        periodErrorP50: quantile(sorted, 0.5),
        periodErrorP99: quantile(sorted, 0.99),
        periodErrorMax: sorted.length ? sorted[sorted.length - 1] : null,
        connections: platform.connections - connectionsAtReset,
        openConnections: platform.openConnections,
        beatenSinceMark: beatenSinceMark.size,
        registeredSinceMark: registeredSinceMark.size,
        beatsRecoveredMs,
        registersRecoveredMs,
        firstRequestAt,
        firstRegisterAt,
      }) + "\n",
    );
  } else if (cmd === "quit") break;
}
await platform.close();
process.exit(0);
