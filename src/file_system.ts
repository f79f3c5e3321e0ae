/**
 * The few file operations the secret store and the configs-dir lookup need,
 * behind an adapter per runtime.
 *
 * @module
 */

import { HeartbeatError } from "./errors.ts";

/** Options of {@link FileSystem.readText}. */
export interface ReadTextOptions {
  /**
   * Read only a regular file (after symlinks) of at most this many bytes;
   * anything else (a FIFO, a device, a directory, a larger file) throws
   * {@link FileReadError} without reading. @default {no limit}
   */
  maxBytes?: number;
}

/** A file that is not read: not a regular file, or over the size limit. */
export class FileReadError extends HeartbeatError {
  /** The path. */
  readonly path: string;

  /**
   * Creates the error.
   *
   * @param path The file.
   * @param reason Why it is not read.
   */
  constructor(path: string, reason: string) {
    super(`${path} ${reason}`);
    this.name = "FileReadError";
    this.path = path;
  }
}

/** The error for a file over `maxBytes`. */
export function tooLarge(path: string, maxBytes: number): FileReadError {
  return new FileReadError(
    path,
    `is larger than ${maxBytes} bytes: not read (is it the right file?)`,
  );
}

/** The error for a path that is not a regular file. */
export function notRegular(path: string): FileReadError {
  return new FileReadError(
    path,
    "is not a regular file (a pipe, a device or a directory): not read",
  );
}

/** File operations, one adapter per runtime. */
export interface FileSystem {
  /**
   * Reads a UTF-8 file; `undefined` when it does not exist.
   *
   * @throws {FileReadError} With `maxBytes`, for anything but a regular file that small.
   */
  readText(
    path: string,
    options?: ReadTextOptions,
  ): Promise<string | undefined>;
  /** Creates `path` and missing parents with `mode` (no error if it exists). */
  mkdirp(path: string, mode: number): Promise<void>;
  /**
   * Creates a new file (failing if it exists) with `mode`, writes `data` and
   * flushes it to disk (fsync) before resolving.
   */
  writeNew(path: string, data: string, mode: number): Promise<void>;
  /** Flushes a directory's entries to disk (after a rename); best effort. */
  syncDir?(path: string): Promise<void>;
  /** The names in a directory; `[]` when it does not exist. */
  list?(path: string): Promise<string[]>;
  /** Renames `from` over `to`, atomically on one file system. */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file; no error if it is gone. */
  remove(path: string): Promise<void>;
  /** Whether `path` is a directory this process can create files in. */
  isWritableDir(path: string): Promise<boolean>;
  /** Permission bits, modification time and size; `undefined` when missing. */
  stat(path: string): Promise<FileInfo | undefined>;
}

/** What {@link FileSystem.stat} tells of a file. */
export interface FileInfo {
  /** Permission bits (`mode & 0o777`). */
  mode: number;
  /** Last modification, epoch milliseconds. */
  mtimeMs: number;
  /** Size in bytes. */
  size: number;
}

interface DenoFile {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  sync(): Promise<void>;
  close(): void;
}

interface DenoFsLike {
  readTextFile(path: string): Promise<string>;
  open(
    path: string,
    options: {
      read?: boolean;
      write?: boolean;
      createNew?: boolean;
      mode?: number;
    },
  ): Promise<DenoFile>;
  readDir(path: string): AsyncIterable<{ name: string }>;
  mkdir(
    path: string,
    options: { recursive: boolean; mode: number },
  ): Promise<void>;
  writeTextFile(
    path: string,
    data: string,
    options: { mode: number; createNew: boolean },
  ): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  stat(path: string): Promise<
    {
      isDirectory: boolean;
      isFile: boolean;
      mode: number | null;
      mtime: Date | null;
      size: number;
    }
  >;
  errors: { NotFound: new () => Error };
}

function denoFs(): DenoFsLike | undefined {
  return (globalThis as { Deno?: DenoFsLike }).Deno;
}

/**
 * The Deno adapter: `Deno.writeTextFile` with mode 0600 and `Deno.rename`.
 *
 * @example
 * ```ts
 * import { createDenoFileSystem } from "@molecule/heartbeat";
 * const fs = createDenoFileSystem();
 * console.log(await fs.readText("/nonexistent")); // undefined
 * ```
 *
 * @returns The adapter.
 * @throws {Error} When not running on Deno.
 */
export function createDenoFileSystem(): FileSystem {
  const deno = denoFs();
  if (!deno) throw new Error("the Deno file adapter needs the Deno runtime");
  const notFound = (e: unknown) => e instanceof deno.errors.NotFound;
  return {
    async readText(path, options = {}) {
      const max = options.maxBytes;
      try {
        if (max === undefined) return await deno.readTextFile(path);
        // stat before open: opening a FIFO would wait for a writer.
        const info = await deno.stat(path);
        if (!info.isFile) throw notRegular(path);
        if (info.size > max) throw tooLarge(path, max);
        const file = await deno.open(path, { read: true });
        try {
          const buffer = new Uint8Array(max + 1);
          let size = 0;
          while (size <= max) {
            const n = await file.read(buffer.subarray(size));
            if (n === null) break;
            size += n;
          }
          if (size > max) throw tooLarge(path, max);
          return new TextDecoder().decode(buffer.subarray(0, size));
        } finally {
          file.close();
        }
      } catch (e) {
        if (notFound(e)) return undefined;
        throw e;
      }
    },
    mkdirp: (path, mode) => deno.mkdir(path, { recursive: true, mode }),
    async writeNew(path, data, mode) {
      const file = await deno.open(path, {
        write: true,
        createNew: true,
        mode,
      });
      try {
        const bytes = new TextEncoder().encode(data);
        let offset = 0;
        while (offset < bytes.length) {
          offset += await file.write(bytes.subarray(offset));
        }
        await file.sync();
      } finally {
        file.close();
      }
    },
    async syncDir(path) {
      try {
        const dir = await deno.open(path, { read: true });
        try {
          await dir.sync();
        } finally {
          dir.close();
        }
      } catch {
        // best effort: not every file system syncs directories
      }
    },
    async list(path) {
      const names: string[] = [];
      try {
        for await (const entry of deno.readDir(path)) names.push(entry.name);
      } catch (e) {
        if (!notFound(e)) throw e;
      }
      return names;
    },
    rename: (from, to) => deno.rename(from, to),
    async remove(path) {
      try {
        await deno.remove(path);
      } catch (e) {
        if (!notFound(e)) throw e;
      }
    },
    async isWritableDir(path) {
      try {
        if (!(await deno.stat(path)).isDirectory) return false;
        const probe = `${path}/.molecule-write-probe-${crypto.randomUUID()}`;
        await deno.writeTextFile(probe, "", { mode: 0o600, createNew: true });
        await deno.remove(probe);
        return true;
      } catch {
        return false;
      }
    },
    async stat(path) {
      try {
        const info = await deno.stat(path);
        return {
          mode: (info.mode ?? 0) & 0o777,
          mtimeMs: info.mtime?.getTime() ?? 0,
          size: info.size,
        };
      } catch (e) {
        if (notFound(e)) return undefined;
        throw e;
      }
    },
  };
}

/**
 * The file adapter for this runtime: Deno's on Deno, `node:fs` elsewhere
 * (loaded only when needed, so the core imports no Node module).
 *
 * @example
 * ```ts
 * import { defaultFileSystem } from "@molecule/heartbeat";
 * const fs = await defaultFileSystem();
 * ```
 *
 * @returns The adapter.
 */
export async function defaultFileSystem(): Promise<FileSystem> {
  const deno = denoFs();
  if (deno && typeof deno.writeTextFile === "function") {
    return createDenoFileSystem();
  }
  const { createNodeFileSystem } = await import("./file_system_node.ts");
  return createNodeFileSystem();
}
