/**
 * The Node process adapter: `node:child_process`, and stdio written with
 * `fs.write` on the thread pool (Node writes to a pipe on stdout or stderr
 * synchronously, so a reader that stalls would freeze the event loop).
 *
 * @module
 */
import { spawn } from "node:child_process";
import { fstatSync, write } from "node:fs";
import { Socket } from "node:net";
import process from "node:process";
import { Readable, Writable } from "node:stream";
import { constants } from "node:os";
import { fdWritable, type ProcessAdapter, SpawnError } from "./child.ts";

function writeFd(fd: number, chunk: Uint8Array): Promise<number> {
  return new Promise((resolve, reject) =>
    write(fd, chunk, 0, chunk.length, null, (error, written) => {
      if (!error) return resolve(written);
      if ((error as NodeJS.ErrnoException).code === "EAGAIN") {
        // A non-blocking descriptor that is full: try again shortly.
        return setTimeout(() => resolve(0), 2);
      }
      reject(error);
    })
  );
}

/**
 * Our stdout as a non-blocking libuv stream when it is a pipe or a socket (as
 * under an MCP client): a write costs no thread-pool hop, and a reader that
 * stalls backs up into `drain` instead of blocking. Files and terminals keep
 * a writable over `fs.write`. Nothing else writes to fd 1 in wrapper mode.
 */
function stdoutStream(): WritableStream<Uint8Array> {
  let info;
  try {
    info = fstatSync(1);
  } catch {
    return fdWritable((chunk) => writeFd(1, chunk));
  }
  if (!info.isFIFO() && !info.isSocket()) {
    return fdWritable((chunk) => writeFd(1, chunk));
  }
  const socket = new Socket({ fd: 1, readable: false, writable: true });
  let failure: Error | undefined;
  let closed = false;
  socket.on("error", (error) => failure = error);
  // Writes accepted but not yet written to fd 1 (the socket queues what the
  // pipe cannot take now): an exit before they are would lose the end of
  // the server's last answer. close() waits for them.
  let unwritten = 0;
  let allWritten: (() => void) | undefined;
  const written = () => {
    if (--unwritten === 0 && allWritten) allWritten();
  };
  socket.on("close", () => {
    closed = true;
    allWritten?.();
  });
  return new WritableStream({
    write(chunk) {
      if (failure) return Promise.reject(failure);
      unwritten++;
      if (socket.write(chunk, written)) return;
      return new Promise<void>((resolve, reject) => {
        const done = () => {
          socket.off("drain", done);
          socket.off("close", done);
          return failure ? reject(failure) : resolve();
        };
        socket.on("drain", done);
        socket.on("close", done);
      });
    },
    // The fd stays open (nothing else writes to it in wrapper mode, and the
    // process exits next); this resolves once every accepted byte is out.
    close() {
      if (unwritten === 0 || failure || closed) return;
      return new Promise<void>((resolve) => allWritten = resolve);
    },
  });
}

/** A Node stream as a web stream of bytes. */
const web = (stream: Readable) =>
  Readable.toWeb(stream) as unknown as ReadableStream<Uint8Array>;

/** The adapter. */
export function nodeProcessAdapter(): ProcessAdapter {
  return {
    spawn(command, args, env) {
      return new Promise((resolve, reject) => {
        // detached: the child calls setsid() before exec, so it leads a new
        // session and process group (its pid is the group id). `env` is
        // its whole environment.
        const child = spawn(command, args, {
          stdio: ["pipe", "pipe", "pipe"],
          detached: true,
          env,
        });
        // Listened to from the start: an exit is never missed.
        const exited = new Promise<number>((done) =>
          child.once(
            "exit",
            (code, signal) =>
              done(signal ? 128 + (constants.signals[signal] ?? 0) : code ?? 1),
          )
        );
        child.once("error", (error: NodeJS.ErrnoException) => {
          reject(new SpawnError(command, error.code));
        });
        child.once("spawn", () => {
          // After the spawn, errors are the pipes' (EPIPE on a child that
          // closed its stdin): the relay sees them through the streams.
          child.on("error", () => {});
          child.stdin!.on("error", () => {});
          resolve({
            pid: child.pid!,
            stdin: Writable.toWeb(child.stdin!) as WritableStream<Uint8Array>,
            stdout: web(child.stdout!),
            stderr: web(child.stderr!),
            exited,
            kill: (signal) => void child.kill(signal as NodeJS.Signals),
          });
        });
      });
    },
    stdin: () => web(process.stdin),
    stdout: stdoutStream,
    stderr: () => fdWritable((chunk) => writeFd(2, chunk)),
  };
}
