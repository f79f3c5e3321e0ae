/**
 * The process the command runs in: its arguments, stdio, environment,
 * signals, exit, and the few `/proc` reads the wrapper makes. On Deno
 * through the `Deno` namespace, so that a run loads no `node:` module (the
 * first one brings in Deno's Node compatibility layer, several MB of
 * memory: docs/benchmarks.md); elsewhere through Node's global `process`.
 *
 * @module
 */

/** The part of the `Deno` namespace used here. */
interface DenoHost {
  args: string[];
  ppid: number;
  exit(code: number): never;
  cwd(): string;
  env: { toObject(): Record<string, string> };
  stdout: { writeSync(p: Uint8Array): number };
  stderr: { writeSync(p: Uint8Array): number };
  kill(pid: number, signal: string | number): void;
  addSignalListener(signal: string, handler: () => void): void;
  removeSignalListener(signal: string, handler: () => void): void;
  readTextFileSync(path: string): string;
  readDirSync(path: string): Iterable<{ name: string }>;
  unrefTimer(id: number): void;
}

/** The part of Node's `process` used here. */
interface NodeHost {
  argv: string[];
  ppid: number;
  env: Record<string, string | undefined>;
  exit(code: number): never;
  cwd(): string;
  stdout: { write(text: string): boolean };
  stderr: { write(text: string): boolean };
  kill(pid: number, signal: string | number): boolean;
  on(event: string, handler: () => void): unknown;
  off(event: string, handler: () => void): unknown;
  getBuiltinModule?(id: string): unknown;
}

const deno = (globalThis as { Deno?: DenoHost }).Deno;
const node = () => (globalThis as unknown as { process: NodeHost }).process;
const encoder = new TextEncoder();

/** The arguments after the program (and script) name. */
export function commandArgs(): string[] {
  return deno ? [...deno.args] : node().argv.slice(2);
}

/**
 * Writes `text` to stdout or stderr, synchronously (`--help`, `--version`,
 * the one line of a configuration error; log lines go through
 * `log_writer.ts`). A closed stream is no error.
 */
export function writeText(to: "stdout" | "stderr", text: string): void {
  try {
    if (!deno) return void node()[to].write(text);
    let bytes = encoder.encode(text);
    while (bytes.length > 0) bytes = bytes.subarray(deno[to].writeSync(bytes));
  } catch {
    // nobody reads it any more
  }
}

/** Ends the process with `code`. */
export function exitProcess(code: number): never {
  return deno ? deno.exit(code) : node().exit(code);
}

/**
 * The whole environment, as an object (the wrapped server's environment is
 * made from it). On Deno this needs `--allow-env` for every variable.
 */
export function environment(): Record<string, string> {
  // Node's values are all strings.
  return deno
    ? deno.env.toObject()
    : { ...node().env } as Record<string, string>;
}

/** The working directory. */
export function workingDir(): string {
  return deno ? deno.cwd() : node().cwd();
}

/** Our parent's process id (it changes when the parent exits). */
export function parentPid(): number {
  return deno ? deno.ppid : node().ppid;
}

/**
 * Sends `signal` to a process, or with a negative `pid` to the process
 * group `-pid`; `0` only asks whether it exists. Throws when nobody
 * received it (ESRCH) or it is not ours (EPERM).
 */
export function kill(pid: number, signal: string | 0): void {
  if (deno) deno.kill(pid, signal);
  else node().kill(pid, signal);
}

/** The signals the command handles. */
export type HandledSignal = "SIGINT" | "SIGTERM" | "SIGHUP";

/**
 * Calls `handler` on `signal` (instead of the default, which ends the
 * process), or with `"exit"` (synchronously) when the process exits through
 * an exit call or the end of its event loop, until the returned function is
 * called.
 */
export function onSignal(
  signal: HandledSignal | "exit",
  handler: () => void,
): () => void {
  if (!deno) {
    const process = node();
    process.on(signal, handler);
    return () => void process.off(signal, handler);
  }
  if (signal === "exit") {
    globalThis.addEventListener("unload", handler);
    return () => globalThis.removeEventListener("unload", handler);
  }
  deno.addSignalListener(signal, handler);
  return () => deno.removeSignalListener(signal, handler);
}

/**
 * Runs `fn` after `ms` unless the process ends first: the timer never
 * keeps it alive.
 *
 * @param ms The delay.
 * @param fn What to run.
 */
export function unrefLater(ms: number, fn: () => void): void {
  const timer = setTimeout(fn, ms);
  if (deno) deno.unrefTimer(timer as unknown as number);
  else (timer as unknown as { unref(): void }).unref();
}

/** `node:fs`'s synchronous reads, without importing it (off Deno). */
function nodeFs() {
  const fs = node().getBuiltinModule?.("node:fs") as {
    readFileSync(path: string, encoding: string): string;
    readdirSync(path: string): string[];
  } | undefined;
  if (!fs) throw new Error("node:fs is not available");
  return fs;
}

/** Reads a small text file synchronously (a `/proc` file). */
export function readTextSync(path: string): string {
  return deno
    ? deno.readTextFileSync(path)
    : nodeFs().readFileSync(path, "latin1");
}

/** The names in a directory, read synchronously (`/proc`). */
export function readDirNamesSync(path: string): string[] {
  return deno
    ? [...deno.readDirSync(path)].map((entry) => entry.name)
    : nodeFs().readdirSync(path);
}
