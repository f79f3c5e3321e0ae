/**
 * The Deno file adapter: `Deno.writeTextFile`, `Deno.open`, `Deno.rename`,
 * `Deno.stat`.
 *
 * @module
 */
import {
  type FileSystem,
  fileSystemOf,
  WRITE_PROBE_PREFIX,
} from "./file_system.ts";

/** The part of the Deno namespace the adapter uses. */
export interface DenoFsLike {
  open(path: string, options: { read: true }): Promise<{
    read(p: Uint8Array): Promise<number | null>;
    sync(): Promise<void>;
    close(): void;
  }>;
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
 * console.log(await fs.readText("/nonexistent", { maxBytes: 64 })); // undefined
 * ```
 *
 * @returns The adapter.
 * @throws {Error} When not running on Deno.
 */
export function createDenoFileSystem(): FileSystem {
  const deno = denoFs();
  if (!deno) throw new Error("the Deno file adapter needs the Deno runtime");
  const writeNew = (path: string, data: string, mode: number) =>
    deno.writeTextFile(path, data, { mode, createNew: true });
  return fileSystemOf({
    async stat(path) {
      const info = await deno.stat(path);
      return {
        isFile: info.isFile,
        isDirectory: info.isDirectory,
        mode: info.mode ?? 0,
        mtimeMs: info.mtime?.getTime() ?? 0,
        size: info.size,
      };
    },
    async open(path) {
      const file = await deno.open(path, { read: true });
      return {
        read: async (into) => await file.read(into) ?? 0,
        sync: () => file.sync(),
        close: () => file.close(),
      };
    },
    writeNew,
    mkdirp: (path, mode) => deno.mkdir(path, { recursive: true, mode }),
    async readdir(path) {
      const names: string[] = [];
      for await (const entry of deno.readDir(path)) names.push(entry.name);
      return names;
    },
    rename: (from, to) => deno.rename(from, to),
    remove: (path) => deno.remove(path),
    async checkWritable(path) {
      const probe = `${path}/${WRITE_PROBE_PREFIX}${crypto.randomUUID()}.tmp`;
      await writeNew(probe, "", 0o600);
      await deno.remove(probe);
    },
    notFound: (e) => e instanceof deno.errors.NotFound,
  });
}
