/**
 * The `node:fs` adapter (Node, Bun, and Deno's Node compatibility).
 *
 * @module
 */
import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import type { FileSystem } from "./file_system.ts";

function isNotFound(e: unknown): boolean {
  return (e as { code?: string })?.code === "ENOENT";
}

/**
 * The `node:fs/promises` adapter.
 *
 * @example
 * ```ts
 * import { createNodeFileSystem } from "@molecule/heartbeat/node";
 * const fs = createNodeFileSystem();
 * console.log(await fs.readText("/nonexistent")); // undefined
 * ```
 *
 * @returns The adapter.
 */
export function createNodeFileSystem(): FileSystem {
  return {
    async readText(path) {
      try {
        return await fs.readFile(path, "utf8");
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    },
    async mkdirp(path, mode) {
      await fs.mkdir(path, { recursive: true, mode });
    },
    writeNew: (path, data, mode) =>
      fs.writeFile(path, data, { mode, flag: "wx" }),
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
