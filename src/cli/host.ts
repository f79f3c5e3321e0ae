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
  build: { os: string };
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
}

/** The part of Node's `process` used here. */
interface NodeHost {
  argv: string[];
  ppid: number;
  platform: string;
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

/** Writes all of `text` to a Deno stdio file, in as many writes as it takes. */
function writeAllSync(
  file: { writeSync(p: Uint8Array): number },
  text: string,
): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(file.writeSync(bytes));
}

/** The arguments after the program (and script) name. */
export function commandArgs(): string[] {
  return deno ? [...deno.args] : node().argv.slice(2);
}

/** Writes `text` to stdout (synchronously: `--help`, `--version`). */
export function writeStdout(text: string): void {
  if (deno) writeAllSync(deno.stdout, text);
  else node().stdout.write(text);
}

/**
 * Writes `text` to stderr (synchronously: the one line of a configuration
 * error; log lines go through `log_writer.ts`). A closed stderr is no error.
 */
export function writeStderrText(text: string): void {
  try {
    if (deno) writeAllSync(deno.stderr, text);
    else node().stderr.write(text);
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
  if (deno) return deno.env.toObject();
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(node().env)) {
    if (value !== undefined) env[name] = value;
  }
  return env;
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
 * process) until the returned function is called.
 */
export function onSignal(
  signal: HandledSignal,
  handler: () => void,
): () => void {
  if (deno) {
    deno.addSignalListener(signal, handler);
    return () => deno.removeSignalListener(signal, handler);
  }
  const process = node();
  process.on(signal, handler);
  return () => void process.off(signal, handler);
}

/**
 * Calls `handler` (synchronously) when the process exits through an exit
 * call or the end of its event loop, until the returned function is called.
 */
export function onExit(handler: () => void): () => void {
  if (deno) {
    globalThis.addEventListener("unload", handler);
    return () => globalThis.removeEventListener("unload", handler);
  }
  const process = node();
  process.on("exit", handler);
  return () => void process.off("exit", handler);
}

/** Whether `/proc` may hold this process's view of the system (Linux). */
export function isLinux(): boolean {
  return deno ? deno.build.os === "linux" : node().platform === "linux";
}

/** Reads a small text file synchronously (a `/proc` file). */
export function readTextSync(path: string): string {
  if (deno) return deno.readTextFileSync(path);
  const fs = node().getBuiltinModule?.("node:fs") as
    | { readFileSync(path: string, encoding: string): string }
    | undefined;
  if (!fs) throw new Error("node:fs is not available");
  return fs.readFileSync(path, "latin1");
}

/** The names in a directory, read synchronously (`/proc`). */
export function readDirNamesSync(path: string): string[] {
  if (deno) return [...deno.readDirSync(path)].map((entry) => entry.name);
  const fs = node().getBuiltinModule?.("node:fs") as
    | { readdirSync(path: string): string[] }
    | undefined;
  if (!fs) throw new Error("node:fs is not available");
  return fs.readdirSync(path);
}

/**
 * Signal numbers, for the exit code a shell reports (128 + N). Linux's;
 * macOS and the BSDs number a few differently.
 */
const LINUX_SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};
const BSD_SIGNALS: Record<string, number> = {
  ...LINUX_SIGNALS,
  SIGBUS: 10,
  SIGUSR1: 30,
  SIGSEGV: 11,
  SIGUSR2: 31,
  SIGSYS: 12,
  SIGURG: 16,
  SIGSTOP: 17,
  SIGTSTP: 18,
  SIGCONT: 19,
  SIGCHLD: 20,
  SIGIO: 23,
  SIGINFO: 29,
};

/** The number of signal `name` on this system; 0 when unknown. */
export function signalNumber(name: string): number {
  const os = deno ? deno.build.os : node().platform;
  const table = os === "darwin" || os.endsWith("bsd")
    ? BSD_SIGNALS
    : LINUX_SIGNALS;
  return table[name] ?? 0;
}
