/**
 * The few file operations the secret store and the configs-dir lookup need,
 * behind an adapter per runtime.
 *
 * @module
 */

import { HeartbeatError } from "../shared/errors.ts";

/** Options of {@link FileSystem.readText}. */
export interface ReadTextOptions {
  /**
   * Read only a regular file (after symlinks) of at most this many bytes;
   * anything else (a FIFO, a device, a directory, a larger file) throws
   * {@link FileReadError} without reading.
   */
  maxBytes: number;
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

/**
 * The start of the name of the empty file an adapter's `isWritableDir` may
 * create and remove at once (`<prefix><uuid>.tmp`): one that a crash left
 * is removed as any stale temporary file of ours.
 */
export const WRITE_PROBE_PREFIX = ".molecule-write-probe-";

/** File operations, one adapter per runtime. */
export interface FileSystem {
  /**
   * Reads a UTF-8 file; `undefined` when it does not exist.
   *
   * @throws {FileReadError} For anything but a regular file of at most `maxBytes`.
   */
  readText(
    path: string,
    options: ReadTextOptions,
  ): Promise<string | undefined>;
  /** Creates `path` and missing parents with `mode` (no error if it exists). */
  mkdirp(path: string, mode: number): Promise<void>;
  /**
   * Creates a new file (failing if it exists) with `mode`, writes `data` and
   * flushes it to disk (fsync) before resolving.
   */
  writeNew(path: string, data: string, mode: number): Promise<void>;
  /** Flushes a directory's entries to disk (after a rename); best effort. */
  syncDir(path: string): Promise<void>;
  /** The names in a directory; `[]` when it does not exist. */
  list(path: string): Promise<string[]>;
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

/**
 * What a runtime's adapter is made of: its own file calls, each of which
 * may throw its runtime's not-found error (`notFound` tells it).
 */
export interface FileCalls extends Pick<FileSystem, "mkdirp" | "rename"> {
  /** What the file is (after symlinks; `mode` with every bit). */
  stat(
    path: string,
  ): Promise<FileInfo & { isFile: boolean; isDirectory: boolean }>;
  /** Opens a file or directory for reading (and fsync). */
  open(path: string): Promise<{
    /** Reads into `into` from its start; the bytes read, 0 at the end. */
    read(into: Uint8Array): Promise<number>;
    sync(): Promise<void>;
    close(): unknown;
  }>;
  /** Creates a new file (failing if it exists) with `mode`, holding `data`. */
  writeNew(path: string, data: string, mode: number): Promise<void>;
  readdir(path: string): Promise<string[]>;
  remove(path: string): Promise<void>;
  /** Throws unless this process can create files in the directory. */
  checkWritable(path: string): Promise<void>;
  /** Whether an error says that the path does not exist. */
  notFound(error: unknown): boolean;
}

/**
 * A {@link FileSystem} over a runtime's own calls: what every adapter
 * shares (the bounded read, fsync, not-found as `undefined` or `[]`).
 *
 * @example
 * ```ts
 * import { fileSystemOf } from "./file_system.ts";
 * const missing = () => Promise.reject(Object.assign(new Error(), { code: "ENOENT" }));
 * const fs = fileSystemOf({
 *   stat: missing, open: missing, writeNew: missing,
 *   mkdirp: missing, readdir: missing, rename: missing, remove: missing,
 *   checkWritable: missing,
 *   notFound: (e) => (e as { code?: string }).code === "ENOENT",
 * });
 * console.log(await fs.list("/nonexistent")); // []
 * ```
 *
 * @param calls The runtime's calls.
 * @returns The adapter.
 */
export function fileSystemOf(calls: FileCalls): FileSystem {
  const unlessMissing = async <T>(work: () => Promise<T>) => {
    try {
      return await work();
    } catch (e) {
      if (calls.notFound(e)) return undefined;
      throw e;
    }
  };
  const sync = async (path: string) => {
    const file = await calls.open(path);
    try {
      await file.sync();
    } finally {
      await file.close();
    }
  };
  return {
    readText: (path, { maxBytes }) =>
      unlessMissing(async () => {
        const tooLarge = () =>
          new FileReadError(
            path,
            `is larger than ${maxBytes} bytes: not read (is it the right file?)`,
          );
        // stat before open: opening a FIFO would wait for a writer.
        const info = await calls.stat(path);
        if (!info.isFile) {
          throw new FileReadError(
            path,
            "is not a regular file (a pipe, a device or a directory): not read",
          );
        }
        if (info.size > maxBytes) throw tooLarge();
        const file = await calls.open(path);
        try {
          const buffer = new Uint8Array(maxBytes + 1);
          let size = 0;
          while (size <= maxBytes) {
            const n = await file.read(buffer.subarray(size));
            if (n === 0) break;
            size += n;
          }
          if (size > maxBytes) throw tooLarge();
          return new TextDecoder().decode(buffer.subarray(0, size));
        } finally {
          await file.close();
        }
      }),
    mkdirp: calls.mkdirp,
    async writeNew(path, data, mode) {
      await calls.writeNew(path, data, mode);
      await sync(path);
    },
    // best effort: not every file system syncs directories
    syncDir: (path) => sync(path).catch(() => {}),
    list: async (path) => await unlessMissing(() => calls.readdir(path)) ?? [],
    rename: calls.rename,
    remove: async (path) => void await unlessMissing(() => calls.remove(path)),
    async isWritableDir(path) {
      try {
        if (!(await calls.stat(path)).isDirectory) return false;
        await calls.checkWritable(path);
        return true;
      } catch {
        return false;
      }
    },
    stat: (path) =>
      unlessMissing(async () => {
        const { mode, mtimeMs, size } = await calls.stat(path);
        return { mode: mode & 0o777, mtimeMs, size };
      }),
  };
}
