/**
 * Where the configs dir is: `CONFIGS_DIR`, `/configs`, or
 * `$HOME/.molecule-workspace`; and its tidying at start.
 *
 * @module
 */
import { logger } from "../shared/_logger.ts";
import { processEnv } from "../shared/env.ts";
import { type OrphanToken, tidyTemporaryFiles } from "./_atomic_file.ts";
import { defaultFileSystem } from "./default_file_system.ts";
import {
  MAX_TOKEN_STORE_FILE_BYTES,
  SECRET_FILE_NAME,
  TOKEN_FILE_NAME,
} from "./file_secret_store.ts";
import { type FileSystem, WRITE_PROBE_PREFIX } from "./file_system.ts";

/** Options of {@link resolveConfigsDir}. */
export interface ResolveConfigsDirOptions {
  /**
   * Reads one environment variable (`CONFIGS_DIR`, `HOME`); `undefined`
   * when unset. @default {the process environment}
   */
  env?: (name: string) => string | undefined;
  /**
   * File operations (internal: the command's and the tests' adapter).
   * @default {the adapter for this runtime}
   * @ignore
   */
  fs?: FileSystem;
  /** The in-container configs dir. @default {"/configs"} */
  containerDir?: string;
}

/** Where the configs dir is, and whether it could be made ready. */
export interface ConfigsDir {
  /** The path. */
  path: string;
  /** Why it could not be created, when it could not; the caller warns. */
  problem?: string;
}

/**
 * Resolves the configs dir as the reference does: `CONFIGS_DIR` if set
 * (created if missing); else `/configs` if it exists and is writable; else
 * `$HOME/.molecule-workspace`, created with mode 0700. A directory that
 * cannot be created is returned with a `problem`, not thrown: heartbeats
 * matter more than the secret.
 *
 * @example
 * ```ts
 * import { resolveConfigsDir } from "@molecule/heartbeat";
 * const configs = await Deno.makeTempDir();
 * const dir = await resolveConfigsDir({
 *   env: (name) => name === "CONFIGS_DIR" ? configs : undefined,
 * });
 * console.log(dir.path);
 * ```
 *
 * @param options Environment and file operations.
 * @returns The configs dir.
 */
export async function resolveConfigsDir(
  options: ResolveConfigsDirOptions = {},
): Promise<ConfigsDir> {
  const env = options.env ?? processEnv;
  const fs = options.fs ?? await defaultFileSystem();
  const explicit = (env("CONFIGS_DIR") ?? "").trim();
  const container = options.containerDir ?? "/configs";
  if (!explicit && await fs.isWritableDir(container)) {
    return { path: container };
  }
  const home = explicit ? "" : (env("HOME") ?? env("USERPROFILE") ?? "").trim();
  const path = explicit ||
    (home
      ? `${home.replace(/\/+$/, "")}/.molecule-workspace`
      : ".molecule-workspace");
  try {
    await fs.mkdirp(path, 0o700);
    return await fs.isWritableDir(path)
      ? { path }
      : { path, problem: "the directory is not writable" };
  } catch (error) {
    return {
      path,
      problem: error instanceof Error ? error.message : String(error),
    };
  }
}

/**
 * Tidies a configs dir at start: first the tokens that a killed process
 * left in temporary files are put in place or removed (one warning line
 * each, see {@link tidyTemporaryFiles}), then every temporary file of
 * ours older than a minute (`.auth_token*.tmp`,
 * `.platform_inbound_secret*.tmp`, `.molecule-write-probe-*.tmp`) is
 * removed, with one info line saying how many. Younger ones are left: a
 * second process may be writing them. Failures are ignored.
 *
 * @example
 * ```ts
 * import { tidyConfigsDir } from "./configs_dir.ts";
 * const dir = await Deno.makeTempDir();
 * console.log(await tidyConfigsDir(dir)); // { orphans: [], stale: 0 }
 * ```
 *
 * @param dir The configs dir.
 * @param options File operations.
 * @returns What was done: the tokens interrupted writes left in temporary
 *   files, taken or removed, and how many stale temporary files were removed.
 */
export async function tidyConfigsDir(
  dir: string,
  options: { fs?: FileSystem } = {},
): Promise<{ orphans: OrphanToken[]; stale: number }> {
  const fs = options.fs ?? await defaultFileSystem();
  const clean = dir.replace(/(.)\/+$/, "$1");
  const { orphans, stale } = await tidyTemporaryFiles(
    fs,
    clean,
    [TOKEN_FILE_NAME, SECRET_FILE_NAME, WRITE_PROBE_PREFIX],
    TOKEN_FILE_NAME,
    MAX_TOKEN_STORE_FILE_BYTES,
  );
  if (stale > 0) {
    logger.info(
      "removed {count} temporary file(s) of ours older than a minute from {dir} (left by an interrupted write)",
      { count: stale, dir: clean },
    );
  }
  return { orphans, stale };
}
