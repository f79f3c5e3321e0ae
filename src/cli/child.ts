/**
 * The child process the command wraps, and this process's own stdio, as web
 * streams: one interface, one thin adapter per runtime.
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
   * @param exitCode 127 or 126.
   * @param reason Why, in a few words.
   */
  constructor(command: string, exitCode: 126 | 127, reason: string) {
    super(`${command}: ${reason}`);
    this.name = "SpawnError";
    this.exitCode = exitCode;
  }
}

/** The error for a spawn failure code (`ENOENT`, `EACCES`, …). */
export function spawnError(command: string, code: string | undefined): Error {
  if (code === "ENOENT" || code === "NotFound") {
    return new SpawnError(
      command,
      127,
      "command not found (check the name and PATH)",
    );
  }
  if (code === "EACCES" || code === "PermissionDenied" || code === "EISDIR") {
    return new SpawnError(
      command,
      126,
      "found but cannot be executed (not an executable file, or no permission)",
    );
  }
  return new SpawnError(command, 126, `cannot be started (${code ?? "error"})`);
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
