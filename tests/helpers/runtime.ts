import { spawn } from "node:child_process";
import { resolve } from "node:path";
import process from "node:process";
import { concatBytes } from "../../src/shared/_bytes.ts";
import type { DenoChildProcess } from "../../src/cli/child.ts";

/**
 * What every spawned process gets from the test run's environment: `PATH`,
 * and Node's compile cache when the run sets one (`deno task test:node`
 * does: each `node mod.ts` then skips type stripping after its first start).
 */
export function passedEnv(): Record<string, string> {
  const cache = process.env.NODE_COMPILE_CACHE;
  return {
    PATH: process.env.PATH ?? "",
    ...(cache ? { NODE_COMPILE_CACHE: resolve(cache) } : {}),
  };
}

/** The command that runs a TypeScript file on the runtime running the tests. */
export function runtimeArgs(
  script: string,
  args: string[] = [],
): [string, string[]] {
  if ("Deno" in globalThis) {
    return [process.execPath, ["run", "-A", "--quiet", script, ...args]];
  }
  return [process.execPath, [script, ...args]];
}

/** The result of a finished child process. */
export interface Finished {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs a script on this runtime; kills it after `timeoutMs`. */
export function runScript(
  script: string,
  options: {
    args?: string[];
    env?: Record<string, string>;
    timeoutMs?: number;
    input?: string;
    cwd?: string;
    /** Leave HOME out of the environment. */
    noHome?: boolean;
  } = {},
): Promise<Finished> {
  const [cmd, args] = runtimeArgs(script, options.args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: {
        ...passedEnv(),
        ...(options.noHome ? {} : { HOME: process.env.HOME ?? "/tmp" }),
        ...options.env,
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => stdout += d);
    child.stderr.on("data", (d) => stderr += d);
    const timer = setTimeout(
      () => child.kill("SIGKILL"),
      options.timeoutMs ?? 20_000,
    );
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** A running child process, for tests that signal it or read it as it goes. */
export interface Running {
  kill(signal: "SIGTERM" | "SIGINT" | "SIGKILL"): void;
  stderr: () => string;
  stdout: () => string;
  done: Promise<Finished>;
}

/**
 * Starts a script on this runtime without waiting for it; killed after
 * `timeoutMs`. Its stdin is closed at once. On Deno it uses `Deno.Command`
 * (see {@link startPiped}): Deno's `node:child_process` reports a child that
 * handled SIGTERM and exited 0 as killed by the signal.
 */
export function startScript(
  script: string,
  options: {
    args?: string[];
    env?: Record<string, string>;
    timeoutMs?: number;
  } = {},
): Running {
  const [cmd, args] = runtimeArgs(script, options.args);
  const child = startPiped(cmd, args, {
    env: options.env,
    timeoutMs: options.timeoutMs ?? 20_000,
  });
  void child.end();
  const decoder = new TextDecoder();
  return {
    kill: (signal) => child.kill(signal),
    stderr: () => child.stderr(),
    stdout: () => decoder.decode(child.stdout()),
    done: child.done,
  };
}

/** A running child with piped stdin, for the wrapper's tests. */
export interface Piped {
  pid: number;
  write(data: Uint8Array | string): Promise<void>;
  end(): Promise<void>;
  kill(signal: "SIGTERM" | "SIGINT" | "SIGHUP" | "SIGKILL"): void;
  stdout(): Uint8Array;
  stderr(): string;
  done: Promise<Finished>;
}

/**
 * Starts `cmd args` with every stdio stream piped; killed after `timeoutMs`.
 * On Deno through `Deno.Command` (see {@link startScript}).
 */
export function startPiped(
  cmd: string,
  args: string[],
  options: {
    env?: Record<string, string>;
    timeoutMs?: number;
    /**
     * Start it as the leader of a process group of its own, as a shell
     * starts a foreground job: a signal to the group (`kill -INT -PID`, a
     * terminal's Ctrl-C) reaches every process in it.
     */
    ownGroup?: boolean;
  } = {},
): Piped {
  const env = {
    ...passedEnv(),
    HOME: process.env.HOME ?? "/tmp",
    ...options.env,
  };
  const out: Uint8Array[] = [];
  let stderr = "";
  const encoder = new TextEncoder();
  const bytes = (d: Uint8Array | string) =>
    typeof d === "string" ? encoder.encode(d) : d;
  const deno = (globalThis as {
    Deno?: {
      Command: new (
        c: string,
        o: Record<string, unknown>,
      ) => { spawn(): DenoChildProcess };
    };
  }).Deno;
  if (deno) {
    const child = new deno.Command(cmd, {
      args,
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      detached: options.ownGroup ?? false,
    }).spawn();
    const writer = child.stdin.getWriter();
    const timer = setTimeout(
      () => child.kill("SIGKILL"),
      options.timeoutMs ?? 30_000,
    );
    const decoder = new TextDecoder();
    const done = Promise.all([
      (async () => {
        for await (const c of child.stdout) out.push(c);
      })(),
      (async () => {
        for await (const c of child.stderr) {
          stderr += decoder.decode(c, { stream: true });
        }
      })(),
      child.status,
    ]).then(([, , status]) => {
      clearTimeout(timer);
      return {
        code: status.signal ? null : status.code,
        signal: status.signal,
        stdout: new TextDecoder().decode(concatBytes(out)),
        stderr,
      };
    });
    return {
      pid: child.pid,
      write: (d) => writer.write(bytes(d)).catch(() => {}),
      end: () => writer.close().catch(() => {}),
      kill: (s) => {
        try {
          child.kill(s);
        } catch { /* gone */ }
      },
      stdout: () => concatBytes(out),
      stderr: () => stderr,
      done,
    };
  }
  const child = spawn(cmd, args, {
    env,
    stdio: ["pipe", "pipe", "pipe"],
    detached: options.ownGroup ?? false,
  });
  child.stdin.on("error", () => {});
  child.stdout.on("data", (d: Uint8Array) => out.push(d));
  child.stderr.on("data", (d) => stderr += d);
  const timer = setTimeout(
    () => child.kill("SIGKILL"),
    options.timeoutMs ?? 30_000,
  );
  const done = new Promise<Finished>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: new TextDecoder().decode(concatBytes(out)),
        stderr,
      });
    });
  });
  return {
    pid: child.pid!,
    write: (d) =>
      new Promise<void>((resolve) => {
        if (!child.stdin.write(bytes(d))) child.stdin.once("drain", resolve);
        else resolve();
      }),
    end: () => new Promise<void>((resolve) => child.stdin.end(resolve)),
    kill: (s) => child.kill(s),
    stdout: () => concatBytes(out),
    stderr: () => stderr,
    done,
  };
}

/** A Node binary to run npm's MCP servers and fixture children with. */
export function nodeBin(): string {
  if (!("Deno" in globalThis)) return process.execPath;
  const local = new URL("../../node_modules/.bin/node", import.meta.url)
    .pathname;
  try {
    (globalThis as { Deno: { statSync(p: string): unknown } }).Deno.statSync(
      local,
    );
    return local;
  } catch {
    return "node";
  }
}
