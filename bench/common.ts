// What the fleet and trouble benches share: the emulator in a process of its
// own (bench/emulator_process.ts) driven over its stdin, /proc readings of an
// agent, and the workspaces file an agent is started with.
import { spawn, spawnSync } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** A path relative to bench/. */
export const here = (p: string): string =>
  fileURLToPath(new URL(p, import.meta.url));
export const nodeBin: string = here("../node_modules/.bin/node");
export const denoBin: string = here("../node_modules/.bin/deno");
/**
 * The V8 setting the README recommends for big fleets: a young generation of
 * 1 MiB semi-spaces instead of letting it grow to 16 MiB and more.
 */
export const SMALL_HEAP = "--v8-flags=--max-semi-space-size=1";

/**
 * Deno's cache dir as `deno run` finds it here (`DENO_DIR`, else under
 * HOME). An agent started with HOME set to a fresh temporary dir must be
 * given it, or every start compiles every module again: that is not the
 * cached start a user has, and it costs memory (about 10 MB of RSS for the
 * wrapper) as well as time.
 */
export function denoDir(): string {
  const info = spawnSync(denoBin, ["info", "--json"], { encoding: "utf8" });
  return (JSON.parse(info.stdout) as { denoDir: string }).denoDir;
}
const ticksPerSecond = 100;

export const sleep = (ms: number): Promise<void> =>
  new Promise((r) => setTimeout(r, ms));

/** The emulator process: its URL, and one JSON answer per command line. */
export interface EmulatorProcess {
  url: string;
  call(cmd: string): Promise<Record<string, number | null>>;
  close(): Promise<void>;
}

export async function startEmulatorProcess(): Promise<EmulatorProcess> {
  const emu = spawn(nodeBin, [here("./emulator_process.ts")], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: emu.stdout! })[Symbol.asyncIterator]();
  const url = String((await lines.next()).value);
  // One command at a time: answers come back in order.
  let queue: Promise<unknown> = Promise.resolve();
  const call = (cmd: string) => {
    const answer = queue.then(async () => {
      emu.stdin!.write(cmd + "\n");
      return JSON.parse(String((await lines.next()).value));
    });
    queue = answer.catch(() => {});
    return answer;
  };
  return {
    url,
    call,
    close: async () => {
      await call("quit").catch(() => {});
      emu.kill();
    },
  };
}

/** User plus system CPU seconds of a process. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** A figure of /proc/PID/status in MB (VmHWM: peak RSS; VmRSS: now). */
export async function statusMb(
  pid: number,
  key: "VmHWM" | "VmRSS" = "VmHWM",
): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(status.match(new RegExp(`${key}:\\s+(\\d+)`))?.[1] ?? 0);
  return kb / 1024;
}

/** Open file descriptors of a process (0 once it is gone). */
export async function openFds(pid: number): Promise<number> {
  try {
    return (await readdir(`/proc/${pid}/fd`)).length;
  } catch {
    return 0;
  }
}

/** A workspaces file of n workspaces `<prefix>-<i>` in dir. */
export async function writeWorkspacesFile(
  dir: string,
  n: number,
  prefix = "bench",
): Promise<string> {
  const file = join(dir, "workspaces.json");
  await writeFile(
    file,
    JSON.stringify(
      Array.from(
        { length: n },
        (_, i) => ({ id: `${prefix}-${i}`, token: `${prefix}-token-${i}` }),
      ),
    ),
    { mode: 0o600 },
  );
  return file;
}

/**
 * A bench's command line: `[out.json] [--name value]...`. `opt` reads a
 * flag's value (or the fallback); `outPath` is the one bare argument.
 */
export function benchArgs(argv: string[], defaultOut: string): {
  opt: (name: string, fallback: string) => string;
  outPath: string;
} {
  const opt = (name: string, fallback: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : fallback;
  };
  const outPath =
    argv.find((a, i) =>
      !a.startsWith("--") && !argv[i - 1]?.startsWith("--")
    ) ?? defaultOut;
  return { opt, outPath };
}

/** A figure for a table: `n/a` for null, else with `digits` decimals. */
export const fmt = (v: number | null, digits = 1): string =>
  v === null ? "n/a" : v.toFixed(digits);

/** This machine in a line: cores, CPU model, memory. */
export function machineDescription(): string {
  return `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${
    (totalmem() / 2 ** 30).toFixed(0)
  } GiB`;
}
