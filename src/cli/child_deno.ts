/**
 * The Deno process adapter: `Deno.Command`, `Deno.stdin`, `Deno.stdout`.
 *
 * @module
 */
import {
  type Child,
  fdWritable,
  type ProcessAdapter,
  spawnError,
} from "./child.ts";

/** The part of `Deno.ChildProcess` the adapter uses (the test helpers too). */
export interface DenoChildProcess {
  pid: number;
  stdin: WritableStream<Uint8Array>;
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  status: Promise<{ code: number; signal: string | null }>;
  kill(signal: string): void;
}

interface DenoLike {
  Command: new (
    command: string,
    options: Record<string, unknown>,
  ) => { spawn(): DenoChildProcess };
  stdin: { readable: ReadableStream<Uint8Array> };
  stdout: { write(p: Uint8Array): Promise<number> };
  stderr: { write(p: Uint8Array): Promise<number> };
}

/** The adapter. */
export function denoProcessAdapter(): ProcessAdapter {
  const deno = (globalThis as unknown as { Deno: DenoLike }).Deno;
  return {
    spawn(command, args, env) {
      let child: DenoChildProcess;
      try {
        child = new deno.Command(command, {
          args,
          // The whole environment: nothing of ours beyond it.
          env,
          clearEnv: true,
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
          // Deno 2's `detached` calls setsid() in the child before exec (as
          // Node's does): it leads a new session and process group whose id
          // is its pid. Checked by tests/wrapper.test.ts, which reads the
          // child's group from /proc.
          detached: true,
        }).spawn();
      } catch (error) {
        return Promise.reject(
          spawnError(command, (error as { name?: string }).name),
        );
      }
      const wrapped: Child = {
        pid: child.pid,
        stdin: child.stdin,
        stdout: child.stdout,
        stderr: child.stderr,
        // Deno's code is 128 + N when signal N killed it.
        exited: child.status.then((s) => s.code),
        kill: (signal) => child.kill(signal),
      };
      return Promise.resolve(wrapped);
    },
    stdin: () => deno.stdin.readable,
    stdout: () => fdWritable((chunk) => deno.stdout.write(chunk)),
    stderr: () => fdWritable((chunk) => deno.stderr.write(chunk)),
  };
}
