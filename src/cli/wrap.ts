/**
 * Wrapper mode (`molecule-heartbeat [flags] -- COMMAND [ARGS...]`): runs the
 * command as a child, relays stdin to it and its stdout and stderr back byte
 * for byte, and forwards signals, with a grace period before SIGKILL.
 *
 * @module
 */
import type { McpStreamTap } from "../mcp/stream_tap.ts";
import { type Child, exitCodeOf, type ProcessAdapter } from "./child.ts";

/** Options of {@link startWrapped}. */
export interface WrapOptions {
  /** This runtime's process adapter. */
  adapter: ProcessAdapter;
  /** The command to run. */
  command: string;
  /** Its arguments. */
  args: string[];
  /** Time from the first forwarded signal to SIGKILL, in ms. @default {10000} */
  killAfterMs?: number;
  /** Sees the bytes in both directions (never changes them). */
  tap?: McpStreamTap;
  /** How long to wait for the child's output after it exited, in ms. @default {2000} */
  drainMs?: number;
}

/** A running wrapped child; see {@link startWrapped}. */
export interface Wrapped {
  /** The child. */
  readonly child: Child;
  /**
   * The exit code to exit with (the child's, or 128 + N for signal N), once
   * the child has exited and its output has been relayed.
   */
  readonly done: Promise<number>;
  /**
   * Sends `signal` to the child; if it has not exited `killAfterMs` after the
   * first call, sends SIGKILL.
   */
  terminate(signal: string): void;
}

/**
 * Copies `from` to `to` chunk by chunk, awaiting each write (so a slow
 * reader slows the writer instead of growing a buffer). When `to` fails
 * (its reader went away) the rest of `from` is still read and dropped, so
 * the writer never blocks on a pipe nobody reads.
 */
async function pump(
  from: ReadableStream<Uint8Array>,
  to: WritableStream<Uint8Array>,
  options: {
    onChunk?: (chunk: Uint8Array) => void;
    onEnd?: () => void;
    close?: boolean;
    stopOnWriteError?: boolean;
  } = {},
): Promise<void> {
  const reader = from.getReader();
  const writer = to.getWriter();
  let open = true;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      options.onChunk?.(value);
      if (!open) continue;
      try {
        await writer.write(value);
      } catch {
        open = false;
        if (options.stopOnWriteError) break;
      }
    }
  } catch {
    // the source failed: treat as its end
  }
  options.onEnd?.();
  if (open && options.close) await writer.close().catch(() => {});
  else writer.releaseLock();
  if (options.stopOnWriteError) await reader.cancel().catch(() => {});
}

/**
 * Starts `command` and relays: our stdin to its stdin (EOF included), its
 * stdout to our stdout and its stderr to our stderr, nothing added, removed
 * or held back beyond one chunk. The child gets our environment unchanged.
 * If this process dies, the child's stdin closes and it sees EOF.
 *
 * @throws {SpawnError} When the command cannot be found (127) or run (126).
 */
export async function startWrapped(options: WrapOptions): Promise<Wrapped> {
  const { adapter, tap } = options;
  const child = await adapter.spawn(options.command, options.args);
  const killAfterMs = options.killAfterMs ?? 10_000;
  const drainMs = options.drainMs ?? 2_000;

  void pump(adapter.stdin(), child.stdin, {
    onChunk: tap && ((chunk) => tap.client(chunk)),
    onEnd: tap && (() => tap.clientEnd()),
    close: true,
    stopOnWriteError: true,
  });
  const output = Promise.all([
    pump(child.stdout, adapter.stdout(), {
      onChunk: tap && ((chunk) => tap.server(chunk)),
      onEnd: tap && (() => tap.serverEnd()),
    }),
    pump(child.stderr, adapter.stderr()),
  ]);

  let killTimer: ReturnType<typeof setTimeout> | undefined;
  let exited = false;
  const done = child.exited.then(async (exit) => {
    exited = true;
    clearTimeout(killTimer);
    // Its output ends with it, unless a grandchild still holds the pipes.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      output,
      new Promise((resolve) => timer = setTimeout(resolve, drainMs)),
    ]);
    clearTimeout(timer);
    return exitCodeOf(exit);
  });

  return {
    child,
    done,
    terminate(signal) {
      if (exited) return;
      child.kill(signal);
      killTimer ??= setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, killAfterMs);
    },
  };
}
