/**
 * The `node:fs` adapter (Node, Bun, and Deno's Node compatibility), which
 * `defaultFileSystem()` loads off Deno (internal).
 *
 * @module
 */
import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import { type FileSystem, fileSystemOf } from "./file_system.ts";

/**
 * The `node:fs/promises` adapter.
 *
 * @example
 * ```ts
 * import { createNodeFileSystem } from "./file_system_node.ts";
 * const fs = createNodeFileSystem();
 * console.log(await fs.readText("/nonexistent", { maxBytes: 64 })); // undefined
 * ```
 *
 * @returns The adapter.
 */
export function createNodeFileSystem(): FileSystem {
  return fileSystemOf({
    async stat(path) {
      const info = await fs.stat(path);
      return {
        isFile: info.isFile(),
        isDirectory: info.isDirectory(),
        mode: info.mode,
        mtimeMs: info.mtimeMs,
        size: info.size,
      };
    },
    async open(path) {
      const handle = await fs.open(path, "r");
      return {
        read: async (into) =>
          (await handle.read(into, 0, into.length, null)).bytesRead,
        sync: () => handle.sync(),
        close: () => handle.close(),
      };
    },
    writeNew: (path, data, mode) =>
      fs.writeFile(path, data, { encoding: "utf8", mode, flag: "wx" }),
    mkdirp: async (path, mode) =>
      void await fs.mkdir(path, { recursive: true, mode }),
    readdir: (path) => fs.readdir(path),
    rename: (from, to) => fs.rename(from, to),
    remove: (path) => fs.rm(path, { force: true }),
    checkWritable: (path) => fs.access(path, constants.W_OK),
    notFound: (e) => (e as { code?: string })?.code === "ENOENT",
  });
}
