/**
 * The `node:fs` adapter (Node, Bun, and Deno's Node compatibility), which
 * `defaultFileSystem()` loads off Deno (internal).
 *
 * @module
 */
import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import { type FileSystem, notRegular, tooLarge } from "./file_system.ts";

function isNotFound(e: unknown): boolean {
  return (e as { code?: string })?.code === "ENOENT";
}

/**
 * The `node:fs/promises` adapter.
 *
 * @example
 * ```ts
 * import { createNodeFileSystem } from "./file_system_node.ts";
 * const fs = createNodeFileSystem();
 * console.log(await fs.readText("/nonexistent")); // undefined
 * ```
 *
 * @returns The adapter.
 */
export function createNodeFileSystem(): FileSystem {
  return {
    async readText(path, options = {}) {
      const max = options.maxBytes;
      try {
        if (max === undefined) return await fs.readFile(path, "utf8");
        // stat before open: opening a FIFO would wait for a writer.
        const info = await fs.stat(path);
        if (!info.isFile()) throw notRegular(path);
        if (info.size > max) throw tooLarge(path, max);
        const handle = await fs.open(path, "r");
        try {
          const buffer = new Uint8Array(max + 1);
          let size = 0;
          while (size <= max) {
            const { bytesRead } = await handle.read(
              buffer,
              size,
              buffer.length - size,
              null,
            );
            if (bytesRead === 0) break;
            size += bytesRead;
          }
          if (size > max) throw tooLarge(path, max);
          return new TextDecoder().decode(buffer.subarray(0, size));
        } finally {
          await handle.close();
        }
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    },
    async mkdirp(path, mode) {
      await fs.mkdir(path, { recursive: true, mode });
    },
    async writeNew(path, data, mode) {
      const handle = await fs.open(path, "wx", mode);
      try {
        await handle.writeFile(data, "utf8");
        await handle.sync();
      } finally {
        await handle.close();
      }
    },
    async syncDir(path) {
      try {
        const dir = await fs.open(path, "r");
        try {
          await dir.sync();
        } finally {
          await dir.close();
        }
      } catch {
        // best effort: not every file system syncs directories
      }
    },
    async list(path) {
      try {
        return await fs.readdir(path);
      } catch (e) {
        if (isNotFound(e)) return [];
        throw e;
      }
    },
    rename: (from, to) => fs.rename(from, to),
    remove: (path) => fs.rm(path, { force: true }),
    async isWritableDir(path) {
      try {
        if (!(await fs.stat(path)).isDirectory()) return false;
        await fs.access(path, constants.W_OK);
        return true;
      } catch {
        return false;
      }
    },
    async stat(path) {
      try {
        const info = await fs.stat(path);
        return {
          mode: info.mode & 0o777,
          mtimeMs: info.mtimeMs,
          size: info.size,
        };
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    },
  };
}
