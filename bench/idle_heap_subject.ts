// One subject of bench/idle_heap.ts, run with the GC exposed
// (`node --expose-gc`, `deno run --v8-flags=--expose-gc`):
//
//   idle_heap_subject.ts <mode> <platformUrl> <window s>
//
// mode: `wait` (a script that only waits), `timer` (a 2 s setInterval that
// does nothing: a runtime's own cost of waking), `library` (startHeartbeat
// from mod.ts, one workspace at 20 s, registered and beaten once first).
// After a settling pause, a full GC, then `window` seconds with no beat
// inside, then the heap used again without a GC in between: what the subject
// allocated while idle (a young-generation collection inside the window
// would make it read low; the window is far too short for one at these
// rates). Prints one JSON line.
import process from "node:process";

const [mode, platformUrl, windowS] = process.argv.slice(2);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let stop = async () => {};
if (mode === "timer") {
  const t = setInterval(() => {}, 2_000);
  stop = () => Promise.resolve(clearInterval(t));
} else if (mode === "library") {
  const { startHeartbeat } = await import("../mod.ts");
  const hb = startHeartbeat({
    platformUrl,
    workspaces: [{ id: "idle-heap", token: "bench-idle-heap-token-0123" }],
  });
  await hb.ready;
  stop = () => hb.stop();
} else {
  const t = setTimeout(() => {}, 3_600_000);
  stop = () => Promise.resolve(clearTimeout(t));
}
// The first beat and its answer are behind us, and the runtime's own start
// work (Node compiles lazily for seconds); the next beat is ~20 s after it.
await sleep(5_000);
gc();
const before = process.memoryUsage().heapUsed;
const started = performance.now();
await sleep(Number(windowS) * 1000);
const after = process.memoryUsage().heapUsed;
const seconds = (performance.now() - started) / 1000;
await stop();
console.log(JSON.stringify({
  mode,
  seconds,
  bytesPerSecond: (after - before) / seconds,
}));
process.exit(0);
