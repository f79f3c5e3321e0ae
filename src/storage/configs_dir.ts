/**
 * Where the configs dir is: `CONFIGS_DIR`, `/configs`, or
 * `$HOME/.molecule-workspace`.
 *
 * @module
 */
import { type EnvReader, processEnv } from "../shared/env.ts";
import { defaultFileSystem } from "./default_file_system.ts";
import type { FileSystem } from "./file_system.ts";

/** Options of {@link resolveConfigsDir}. */
export interface ResolveConfigsDirOptions {
  /** Where `CONFIGS_DIR` and `HOME` are read. @default {the process environment} */
  env?: EnvReader;
  /** File operations. @default {the adapter for this runtime} */
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
 * import { envFromRecord, resolveConfigsDir } from "@molecule/heartbeat";
 * const dir = await resolveConfigsDir({
 *   env: envFromRecord({ CONFIGS_DIR: await Deno.makeTempDir() }),
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
  let path: string;
  if (explicit) path = explicit;
  else if (await fs.isWritableDir(options.containerDir ?? "/configs")) {
    return { path: options.containerDir ?? "/configs" };
  } else {
    const home = (env("HOME") ?? env("USERPROFILE") ?? "").trim();
    path = home
      ? `${home.replace(/\/+$/, "")}/.molecule-workspace`
      : ".molecule-workspace";
  }
  try {
    await fs.mkdirp(path, 0o700);
    if (!(await fs.isWritableDir(path))) {
      return { path, problem: "the directory is not writable" };
    }
    return { path };
  } catch (error) {
    return {
      path,
      problem: error instanceof Error ? error.message : String(error),
    };
  }
}
