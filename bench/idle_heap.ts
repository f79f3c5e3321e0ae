// Idle allocation: what the heap grows by per second while one workspace
// waits between two beats, beside a script that only waits and a bare 2 s
// timer, on Deno and on Node 24, every subject at once against the emulator
// in a process of its own (bench/idle_heap_subject.ts does the measuring).
//
//   node bench/idle_heap.ts [out.json] [--window 12] [--runs 3]
//
// A benchmark, not a test: it prints a table and writes JSON, never fails on a number.
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import {
  benchArgs,
  denoBin,
  denoDir,
  fmt,
  here,
  machineDescription,
  nodeBin,
  startEmulatorProcess,
} from "./common.ts";

const today = new Date().toISOString().slice(0, 10);
const { opt, outPath } = benchArgs(
  process.argv.slice(2),
  here(`./results/${today}-idle-heap.json`),
);
const windowS = Number(opt("--window", "12"));
const runs = Number(opt("--runs", "3"));
const SUBJECT = here("./idle_heap_subject.ts");
const MODES = ["wait", "timer", "library"] as const;
const RUNTIMES = {
  deno: [denoBin, ["run", "-A", "--v8-flags=--expose-gc", SUBJECT]],
  node: [nodeBin, ["--expose-gc", SUBJECT]],
} as const;

const emu = await startEmulatorProcess();
await emu.call("reset 20000");
const env = {
  PATH: process.env.PATH ?? "",
  HOME: process.env.HOME ?? "/tmp",
  DENO_DIR: denoDir(),
};

function measure(cmd: string, args: readonly string[], mode: string) {
  return new Promise<number>((resolve, reject) => {
    const child = spawn(cmd, [...args, mode, emu.url, String(windowS)], {
      env,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout!.on("data", (d) => out += d);
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`${cmd} ${mode}: exit ${code}`));
      resolve(
        (JSON.parse(out.trim()) as { bytesPerSecond: number })
          .bytesPerSecond,
      );
    });
  });
}

// Every subject of a run at once; runs one after the other.
const figures: Record<string, number[]> = {};
for (let run = 0; run < runs; run++) {
  console.error(`run ${run + 1} of ${runs}: ${windowS} s idle...`);
  await Promise.all(
    Object.entries(RUNTIMES).flatMap(([runtime, [cmd, args]]) =>
      MODES.map(async (mode) => {
        const kbs = (await measure(cmd, args, mode)) / 1024;
        (figures[`${runtime}-${mode}`] ??= []).push(kbs);
      })
    ),
  );
}
await emu.close();

const median = (xs: number[]) =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const LABEL = {
  wait: "a script that only waits",
  timer: "a bare 2 s setInterval (the runtime's cost of waking)",
  library: "startHeartbeat, one workspace at 20 s, between two beats",
};
const rows = [
  `| subject | Deno, KB a second (median of ${runs}) | Node 24, KB a second |`,
  "| --- | --- | --- |",
  ...MODES.map((mode) =>
    `| ${LABEL[mode]} | ${fmt(median(figures[`deno-${mode}`]), 2)} | ${
      fmt(median(figures[`node-${mode}`]), 2)
    } |`
  ),
];
const machine = machineDescription();
const result = {
  date: new Date().toISOString(),
  machine,
  windowS,
  runs,
  kbPerSecond: figures,
};
await mkdir(join(outPath, ".."), { recursive: true });
await writeFile(outPath, JSON.stringify(result, null, 2) + "\n");
console.log(
  `${result.date} on ${machine}: heap growth while idle, ${windowS} s after a full GC\n`,
);
console.log(rows.join("\n"));
console.log(`\nJSON: ${outPath}`);
process.exit(0);
