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
