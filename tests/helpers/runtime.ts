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
