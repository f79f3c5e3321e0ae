/**
 * The child process the command wraps, and this process's own stdio, as web
 * streams: one interface, one thin adapter per runtime (Deno's here; Node's,
 * which loads `node:` modules, in `child_node.ts`).
 *
 * @module
 */

/**
 * A running child with piped stdio, leading a process group of its own (so
 * its pid is also its group id, and a terminal's Ctrl-C, sent to our
 * foreground group, never reaches it directly).
 */
export interface Child {
  /** Its process id, and its process group's id. */
  readonly pid: number;
  /** Its standard input. */
  readonly stdin: WritableStream<Uint8Array>;
  /** Its standard output. */
  readonly stdout: ReadableStream<Uint8Array>;
  /** Its standard error. */
  readonly stderr: ReadableStream<Uint8Array>;
  /**
   * Settles with its exit code once it has exited (not waiting for its
   * pipes to close): its own code, or 128 + N when signal N killed it, as a
   * shell reports it.
   */
  readonly exited: Promise<number>;
  /** Sends a signal to it alone; may throw once it has exited. */
  kill(signal: string): void;
}

/** This process's stdio and a way to start children, for one runtime. */
export interface ProcessAdapter {
  /**
   * Starts `command` with `args`, every stdio stream piped, as the leader
   * of a new process group and session; `env` is its whole environment.
   *
   * @throws {SpawnError} When the command cannot be found or run.
   */
  spawn(
    command: string,
    args: string[],
    env: Record<string, string>,
  ): Promise<Child>;
  /** This process's standard input. */
  stdin(): ReadableStream<Uint8Array>;
  /**
   * This process's standard output; writes never block the event loop.
   * Closing it resolves once every byte written is out (the descriptor
   * itself stays open), so an exit after it loses nothing.
   */
  stdout(): WritableStream<Uint8Array>;
  /** This process's standard error; writes never block the event loop. */
  stderr(): WritableStream<Uint8Array>;
}

/** A command that could not be started, with the exit code a shell gives. */
export class SpawnError extends Error {
  /** 127: not found; 126: found but not executable. */
  readonly exitCode: 126 | 127;

  /**
   * Creates the error.
   *
   * @param command The command.
   * @param code The spawn failure's code (`ENOENT`, `EACCES`, …).
   */
  constructor(command: string, code: string | undefined) {
    const notFound = code === "ENOENT" || code === "NotFound";
    super(
      `${command}: ${
        notFound
          ? "command not found (check the name and PATH)"
          : code === "EACCES" || code === "PermissionDenied" ||
              code === "EISDIR"
          ? "found but cannot be executed (not an executable file, or no permission)"
          : `cannot be started (${code ?? "error"})`
      }`,
    );
    this.name = "SpawnError";
    this.exitCode = notFound ? 127 : 126;
  }
}

/**
 * A writable over a stdio descriptor that never closes it: each chunk is
 * written whole, in as many calls of `write` (bytes written, off the event
 * loop) as it takes.
 */
export function fdWritable(
  write: (chunk: Uint8Array) => Promise<number>,
): WritableStream<Uint8Array> {
  return new WritableStream({
    async write(chunk) {
      let offset = 0;
      while (offset < chunk.length) {
        offset += await write(chunk.subarray(offset));
      }
    },
  });
}

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

/** The Deno adapter: `Deno.Command`, `Deno.stdin`, `Deno.stdout`. */
export function denoProcessAdapter(): ProcessAdapter {
  const deno = (globalThis as unknown as { Deno: DenoLike }).Deno;
  return {
    // deno-lint-ignore require-await
    async spawn(command, args, env) {
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
        throw new SpawnError(command, (error as { name?: string }).name);
      }
      // Deno's code is 128 + N when signal N killed it.
      return Object.assign(child, { exited: child.status.then((s) => s.code) });
    },
    stdin: () => deno.stdin.readable,
    stdout: () => fdWritable((chunk) => deno.stdout.write(chunk)),
    stderr: () => fdWritable((chunk) => deno.stderr.write(chunk)),
  };
}
