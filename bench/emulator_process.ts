// The bench's platform: the emulator in a process of its own, so that agent
// and platform never share an event loop. Prints its URL as the first line of
// stdout, then answers "stats <intervalMs>" and "reset" lines on stdin with
// one JSON line each.
import { createInterface } from "node:readline";
import process from "node:process";
import { startPlatformEmulator } from "../src/platform_emulator.ts";

const last = new Map<string, number>();
let errors: number[] = [];
let beats = 0;
let registers = 0;
let interval = Number(process.argv[2] ?? 20_000);
let connectionsAtReset = 0;
const platform = await startPlatformEmulator({
  record: false,
  secretFor: () => "bench-inbound-secret",
  onRequest: (r) => {
    if (r.status !== 200 || !r.workspaceId) return;
    if (r.path === "register") registers++;
    if (r.path !== "heartbeat") return;
    beats++;
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
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === "reset") {
    last.clear();
    errors = [];
    beats = 0;
    registers = 0;
    interval = Number(arg ?? interval);
    connectionsAtReset = platform.connections;
    process.stdout.write("{}\n");
  } else if (cmd === "stats") {
    const sorted = [...errors].sort((a, b) => a - b);
    process.stdout.write(
      JSON.stringify({
        beats,
        registers,
        workspacesSeen: last.size,
        periods: sorted.length,
        periodErrorP50: quantile(sorted, 0.5),
        periodErrorP99: quantile(sorted, 0.99),
        periodErrorMax: sorted.length ? sorted[sorted.length - 1] : null,
        connections: platform.connections - connectionsAtReset,
      }) + "\n",
    );
  } else if (cmd === "quit") break;
}
await platform.close();
process.exit(0);
