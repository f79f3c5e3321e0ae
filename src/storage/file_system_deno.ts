/**
 * The Deno file adapter: `Deno.open`, `Deno.rename`, `Deno.stat`.
 *
 * @module
 */
import {
  type FileSystem,
  notRegular,
  tooLarge,
  WRITE_PROBE_PREFIX,
} from "./file_system.ts";

interface DenoFile {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  sync(): Promise<void>;
  close(): void;
}

/** The part of the Deno namespace the adapter uses. */
export interface DenoFsLike {
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

/** The Deno namespace, when running on Deno. */
export function denoFs(): DenoFsLike | undefined {
  return (globalThis as { Deno?: DenoFsLike }).Deno;
}

/**
 * The Deno adapter: `Deno.writeTextFile` with mode 0600 and `Deno.rename`.
 *
 * @example
 * ```ts
 * import { createDenoFileSystem } from "./file_system_deno.ts";
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
        const probe = `${path}/${WRITE_PROBE_PREFIX}${crypto.randomUUID()}.tmp`;
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
