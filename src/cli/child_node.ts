/**
 * The Node process adapter: `node:child_process`, and stdio written with
 * `fs.write` on the thread pool (Node writes to a pipe on stdout or stderr
 * synchronously, so a reader that stalls would freeze the event loop).
 *
 * @module
 */
import { spawn } from "node:child_process";
import { write } from "node:fs";
import process from "node:process";
import { Readable, Writable } from "node:stream";
import { type Child, type ProcessAdapter, spawnError } from "./child.ts";

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

/** A writable over a descriptor that is never closed by it. */
function fdStream(fd: number): WritableStream<Uint8Array> {
  return new WritableStream({
    async write(chunk) {
      let offset = 0;
      while (offset < chunk.length) {
        offset += await writeFd(fd, chunk.subarray(offset));
      }
    },
  });
}

/** The adapter. */
export function nodeProcessAdapter(): ProcessAdapter {
  return {
    spawn(command, args) {
      return new Promise((resolve, reject) => {
        const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
        child.once("error", (error: NodeJS.ErrnoException) => {
          reject(spawnError(command, error.code));
        });
        child.once("spawn", () => {
          // After the spawn, errors are the pipes' (EPIPE on a child that
          // closed its stdin): the relay sees them through the streams.
          child.on("error", () => {});
          child.stdin!.on("error", () => {});
          const exited = new Promise<{
            code: number | null;
            signal: string | null;
          }>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) {
              return done({ code: child.exitCode, signal: child.signalCode });
            }
            child.once("exit", (code, signal) => done({ code, signal }));
          });
          const wrapped: Child = {
            pid: child.pid!,
            stdin: Writable.toWeb(child.stdin!) as WritableStream<Uint8Array>,
            stdout: Readable.toWeb(child.stdout!) as ReadableStream<
              Uint8Array
            >,
            stderr: Readable.toWeb(child.stderr!) as ReadableStream<
              Uint8Array
            >,
            exited,
            kill(signal) {
              try {
                child.kill(signal as NodeJS.Signals);
              } catch {
                // already exited
              }
            },
          };
          resolve(wrapped);
        });
      });
    },
    stdin: () =>
      Readable.toWeb(process.stdin) as unknown as ReadableStream<Uint8Array>,
    stdout: () => fdStream(1),
    stderr: () => fdStream(2),
  };
}
