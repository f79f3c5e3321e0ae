// Soak: many beats at a short interval; heap used after the run must be
// within 10 % (plus 1 MiB of slack for a small heap) of heap used after
// warm-up, and open sockets must not grow.
//
//   node --expose-gc bench/soak.ts [beats]      (deno task soak: 12,000 beats)
import process from "node:process";
import { startHeartbeat } from "../mod.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";

const target = Number(process.argv[2] ?? 12_000);
const workspaces = 50;
const intervalMs = 50; // 50 workspaces every 50 ms: 1,000 beats a second
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error("run with --expose-gc (node) or --v8-flags=--expose-gc (deno)");
  process.exit(2);
}
const heap = () => {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const platform = await startPlatformEmulator({ uuidIds: false, record: false });
let beats = 0;
const hb = startHeartbeat({
  platformUrl: platform.url,
  workspaces: Array.from(
    { length: workspaces },
    (_, i) => ({ id: `soak-${i}`, token: `soak-token-${i}` }),
  ),
  intervalMs,
  // Requests get a second, not min(10 s, interval) = 50 ms: this measures memory and sockets, not timeouts.
  timeoutMs: 1_000,
});
hb.addEventListener("beat", () => beats++);
// Warm-up long enough for the connection pool to reach its size (each pooled
// socket holds some heap), so that what is left is growth.
const warmup = Math.max(3_000, Math.min(10_000, target / 4));
// Sockets sampled every 100 ms: a pool grows to the peak concurrency and stops; a leak keeps growing.
let peakDuringWarmup = 0;
while (beats < warmup) {
  await sleep(100);
  peakDuringWarmup = Math.max(peakDuringWarmup, platform.openConnections);
}
const heapAfterWarmup = heap();
const socketsAfterWarmup = platform.openConnections;
const t0 = performance.now();
const samples: number[] = [];
while (beats < warmup + target) {
  await sleep(100);
  samples.push(platform.openConnections);
}
const half = Math.floor(samples.length / 2);
const peakFirstHalf = Math.max(peakDuringWarmup, ...samples.slice(0, half));
const peakSecondHalf = Math.max(...samples.slice(half));
const seconds = (performance.now() - t0) / 1000;
const heapAfterRun = heap();
const socketsAfterRun = platform.openConnections;
const failures = hb.status().workspaces.reduce(
  (sum, w) => sum + w.beatsSent - w.beatsAccepted,
  0,
);
await hb.stop();
await platform.close();

const growth = (heapAfterRun - heapAfterWarmup) / heapAfterWarmup;
const heapOk = heapAfterRun <= heapAfterWarmup * 1.1 + 1024 * 1024;
// No growth: the second half of the run needs no more sockets than warm-up and the first half did.
const socketsOk = peakSecondHalf <= Math.ceil(peakFirstHalf * 1.1) + 2; // slack for pool jitter; a leak grows with every beat
const mb = (b: number) => (b / 2 ** 20).toFixed(2);
console.log(
  `soak: ${target} beats in ${seconds.toFixed(1)} s (${
    (target / seconds).toFixed(0)
  } beats/s), ${failures} failed`,
);
console.log(
  `soak: heap used after warm-up ${mb(heapAfterWarmup)} MiB, after the run ${
    mb(heapAfterRun)
  } MiB (${(growth * 100).toFixed(1)} %): ${heapOk ? "ok" : "GREW"}`,
);
console.log(
  `soak: open sockets after warm-up ${socketsAfterWarmup}, peak in the first half ${peakFirstHalf}, in the second half ${peakSecondHalf}, at the end ${socketsAfterRun}: ${
    socketsOk ? "ok" : "GREW"
  }`,
);
process.exit(heapOk && socketsOk && failures === 0 ? 0 : 1);
