/**
 * Wrapper mode (`molecule-heartbeat [flags] -- COMMAND [ARGS...]`): runs the
 * command as a child in a process group of its own, relays stdin to it and
 * its stdout and stderr back byte for byte, and forwards signals to the
 * group, with a grace period before SIGKILL. When the child ends, whatever it
 * left running in its group is stopped the same way: nothing we started
 * outlives us: the child is spawned as the leader of a group (and session)
 * of its own, so its group id is its pid, and whatever it starts (a
 * launcher's real server: `bash run.sh` → `python server.py`, `npx` →
 * `node`) is in that group unless it moves itself out. How the run follows
 * the child is in `run.ts`.
 *
 * @module
 */
import { createMcpStreamTap } from "../mcp/stream_tap.ts";
import type { McpTracker } from "../mcp/tracker.ts";
import type { ProcessAdapter } from "./child.ts";
import {
  kill,
  onSignal,
  parentPid,
  readDirNamesSync,
  readTextSync,
} from "./host.ts";
import { log } from "./logging.ts";

// What else only wrapper mode needs: `main.ts` loads this module alone for it.
export { createMcpTracker } from "../mcp/tracker.ts";
export { childEnvironment } from "./child_env.ts";

/** Options of {@link startWrapped}. */
export interface WrapOptions {
  /** This runtime's process adapter. */
  adapter: ProcessAdapter;
  /** The command to run, and its arguments. */
  command: string[];
  /** Its whole environment (see `child_env.ts`: ours without our secrets). */
  env: Record<string, string>;
  /**
   * Time from the first signal sent to the child's group (forwarded, or
   * ours when the heartbeat stops it or the child left processes behind) to
   * SIGKILL for the group, in ms. @default {10000}
   */
  killAfterMs?: number;
  /** Sees the bytes in both directions, through a stream tap. */
  tracker: McpTracker;
}

/** A running wrapped child; see {@link startWrapped}. */
export type Wrapped = Awaited<ReturnType<typeof startWrapped>>;

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
    /** Set while a write waits for the other end to read. */
    writing?: { now: boolean };
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
        if (options.writing) options.writing.now = true;
        await writer.write(value);
      } catch {
        open = false;
        if (options.stopOnWriteError) break;
      } finally {
        if (options.writing) options.writing.now = false;
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
 * or held back beyond one chunk. The child gets `env`, nothing more. If
 * this process dies, the child's stdin closes and it sees EOF.
 *
 * @throws {SpawnError} When the command cannot be found (127) or run (126).
 */
export async function startWrapped(options: WrapOptions) {
  const { adapter, command: [command, ...args] } = options;
  const child = await adapter.spawn(command, args, options.env);
  const tap = createMcpStreamTap(options.tracker);
  const killAfterMs = options.killAfterMs ?? 10_000;

  const group = child.pid;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  let killed = false;
  let finished = false;
  const armKill = () => {
    killTimer ??= setTimeout(() => {
      killed = true;
      if (liveGroupMembers(group).length > 0) {
        log.warn(
          "the child's process group did not stop within {seconds} s of the signal: SIGKILL",
          { seconds: killAfterMs / 1000 },
        );
        signalGroup(group, "SIGKILL");
      }
    }, killAfterMs);
  };
  // Sends `signal` to the child's process group; if any of it still runs
  // `killAfterMs` after the first call, sends the group SIGKILL.
  const terminate = (signal: string) => {
    if (finished) return;
    // Its whole group (what it started, too); the child alone if it left it.
    if (!signalGroup(group, signal)) {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
    }
    armKill();
  };
  // Our parent: the MCP client, which closes our stdin to shut the server
  // down and then stops it itself if it lingers (MCP's stdio transport).
  const parent = parentPid();
  let stdinEnded = false;
  // Set while the server is not reading what the client sent: the EOF of
  // a client that died then waits, unread, behind it.
  const writing = { now: false };
  void pump(adapter.stdin(), child.stdin, {
    onChunk: (chunk) => tap.client(chunk),
    onEnd: () => {
      tap.clientEnd();
      stdinEnded = true;
    },
    close: true,
    stopOnWriteError: true,
    writing,
  });
  // A client that died cannot stop it: once we are orphaned and our stdin
  // closed (or its EOF waits behind what the server does not read), the
  // server is stopped as the client would have.
  const parentWatch = setInterval(() => {
    if (finished || parentPid() === parent) return;
    if (!stdinEnded && !writing.now) return;
    clearInterval(parentWatch);
    log.warn(
      "the MCP client is gone ({how}, parent {pid} exited): stopping the server's process group (SIGTERM, then SIGKILL after {seconds} s)",
      {
        how: stdinEnded
          ? "stdin closed"
          : "the server stopped reading what it sent",
        pid: parent,
        seconds: killAfterMs / 1000,
      },
    );
    terminate("SIGTERM");
  }, PARENT_CHECK_MS);
  const output = Promise.all([
    pump(child.stdout, adapter.stdout(), {
      onChunk: (chunk) => tap.server(chunk),
      onEnd: () => tap.serverEnd(),
      // Closed to flush: what the client has not read yet still reaches it
      // before we exit (within DRAIN_MS).
      close: true,
    }),
    pump(child.stderr, adapter.stderr()),
  ]);

  // Last resort, if this process exits before the group is gone (an
  // exit from elsewhere): SIGKILL whatever of it still runs.
  const offExit = onSignal("exit", () => {
    if (!finished && liveGroupMembers(group).length > 0) {
      signalGroup(group, "SIGKILL");
    }
  });

  const done = child.exited.then(async (code) => {
    // The child is gone. What it started is in its group: a launcher that
    // died (or exited) leaves its server running, holding our pipes, and
    // maybe ignoring SIGTERM and stdin's EOF.
    const left = liveGroupMembers(group);
    if (left.length > 0) {
      if (killTimer === undefined) {
        log.warn(
          "the child exited and left {count} process(es) of its group running (pids {pids}): SIGTERM, then SIGKILL after {seconds} s",
          {
            count: left.length,
            pids: left.slice(0, 5).join(", "),
            seconds: killAfterMs / 1000,
          },
        );
        terminate("SIGTERM");
      }
      await groupGone(group, () => killed);
    }
    finished = true;
    clearTimeout(killTimer);
    clearInterval(parentWatch);
    offExit();
    // Its output ends with it, unless something outside its group (a
    // process that moved itself out) still holds the pipes.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      output,
      new Promise((resolve) => timer = setTimeout(resolve, DRAIN_MS)),
    ]);
    clearTimeout(timer);
    return code;
  });

  return {
    child,
    /**
     * The exit code to exit with (the child's, or 128 + N for signal N), once
     * the child has exited, nothing of its process group runs any more, and
     * its output has been relayed.
     */
    done,
    /**
     * Sends `signal` to the child's process group; if any of it still runs
     * `killAfterMs` after the first call, sends the group SIGKILL.
     */
    terminate,
  };
}

/** How long to wait for the child's output after it exited, in ms. */
const DRAIN_MS = 2_000;

/** How often, once stdin closed, whether our parent (the client) is gone. */
const PARENT_CHECK_MS = 1_000;

/** How long to wait for the group after SIGKILL before giving up on it. */
const AFTER_KILL_MS = 2_000;

/**
 * Waits until no process of the group runs; bounded: at most
 * {@link AFTER_KILL_MS} once `killed()` says SIGKILL went out.
 */
async function groupGone(group: number, killed: () => boolean) {
  let killedAt: number | undefined;
  let wait = 10;
  while (liveGroupMembers(group).length > 0) {
    if (killed()) {
      killedAt ??= performance.now();
      if (performance.now() - killedAt > AFTER_KILL_MS) return;
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(100, wait * 2);
  }
}

/**
 * Sends `signal` to every process in group `pgid`. A group already empty is
 * no error.
 *
 * @param pgid The group id (the child's pid: never 0, our own group, or
 *   -1, every process).
 * @param signal Such as `"SIGTERM"`.
 * @returns Whether the signal was delivered to at least one process.
 */
export function signalGroup(pgid: number, signal: string): boolean {
  if (!(pgid > 1)) return false; // never -1 (every process) or our own group (0)
  try {
    kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: nobody left; EPERM: not ours to signal
  }
}

/**
 * The processes of group `pgid` that still run. A zombie (dead, waiting for
 * its parent to collect it) does not count: it runs nothing, and where PID
 * 1 does not reap orphans (some containers) it would count forever. On
 * Linux this reads `/proc`; elsewhere it can only tell whether the group
 * has any member at all (then it answers `[pgid]`).
 *
 * @param pgid The group id.
 * @returns Pids still running in the group; empty when none.
 */
export function liveGroupMembers(pgid: number): number[] {
  if (!(pgid > 1)) return [];
  // Cheap first: no member at all, zombies included.
  try {
    kill(-pgid, 0);
  } catch (error) {
    // ESRCH: no member; a runtime that cannot send signal 0 reads /proc.
    if (!(error instanceof TypeError)) return [];
  }
  let entries: string[];
  try {
    entries = readDirNamesSync("/proc");
  } catch {
    return [pgid]; // no /proc (macOS): the group has members, that is all we know
  }
  const live: number[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readTextSync(`/proc/${name}/stat`);
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") {
      live.push(Number(name));
    }
  }
  return live;
}
