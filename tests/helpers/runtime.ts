import { spawn } from "node:child_process";
import process from "node:process";

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
  } = {},
): Promise<Finished> {
  const [cmd, args] = runtimeArgs(script, options.args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
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

interface DenoChild {
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  status: Promise<{ code: number; signal: string | null }>;
  kill(signal: string): void;
}
interface DenoLike {
  Command: new (
    cmd: string,
    options: Record<string, unknown>,
  ) => { spawn(): DenoChild };
}

/**
 * Starts a script on this runtime without waiting for it; killed after
 * `timeoutMs`. On Deno it uses `Deno.Command`: Deno's `node:child_process`
 * reports a child that handled SIGTERM and exited 0 as killed by the signal.
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
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    ...options.env,
  };
  let stdout = "";
  let stderr = "";
  const deno = (globalThis as { Deno?: DenoLike }).Deno;
  if (deno) {
    const child = new deno.Command(cmd, {
      args,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
      .spawn();
    const pump = async (
      stream: ReadableStream<Uint8Array>,
      add: (s: string) => void,
    ) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        add(decoder.decode(chunk, { stream: true }));
      }
    };
    const timer = setTimeout(
      () => child.kill("SIGKILL"),
      options.timeoutMs ?? 20_000,
    );
    const done = Promise.all([
      pump(child.stdout, (s) => stdout += s),
      pump(child.stderr, (s) => stderr += s),
      child.status,
    ]).then(([, , status]) => {
      clearTimeout(timer);
      return {
        code: status.signal ? null : status.code,
        signal: status.signal,
        stdout,
        stderr,
      };
    });
    return {
      kill: (signal) => child.kill(signal),
      stderr: () => stderr,
      stdout: () => stdout,
      done,
    };
  }
  const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (d) => stdout += d);
  child.stderr!.on("data", (d) => stderr += d);
  const timer = setTimeout(
    () => child.kill("SIGKILL"),
    options.timeoutMs ?? 20_000,
  );
  const done = new Promise<Finished>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    kill: (signal) => child.kill(signal),
    stderr: () => stderr,
    stdout: () => stdout,
    done,
  };
}
