/**
 * The few file operations the secret store and the configs-dir lookup need,
 * behind an adapter per runtime.
 *
 * @module
 */

/** File operations, one adapter per runtime. */
export interface FileSystem {
  /** Reads a UTF-8 file; `undefined` when it does not exist. */
  readText(path: string): Promise<string | undefined>;
  /** Creates `path` and missing parents with `mode` (no error if it exists). */
  mkdirp(path: string, mode: number): Promise<void>;
  /** Creates a new file (failing if it exists) with `mode`, and writes `data`. */
  writeNew(path: string, data: string, mode: number): Promise<void>;
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

interface DenoFsLike {
  readTextFile(path: string): Promise<string>;
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
    async readText(path) {
      try {
        return await deno.readTextFile(path);
      } catch (e) {
        if (notFound(e)) return undefined;
        throw e;
      }
    },
    mkdirp: (path, mode) => deno.mkdir(path, { recursive: true, mode }),
    writeNew: (path, data, mode) =>
      deno.writeTextFile(path, data, { mode, createNew: true }),
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
