/**
 * Small secret files, written atomically with mode 0600, and the temporary
 * files a crash leaves behind (internal): the write code of
 * `FileSecretStore` and `FileTokenStore`.
 *
 * @module
 */
import { workspaceFileName } from "../shared/workspace_id.ts";
import { defaultFileSystem } from "./default_file_system.ts";
import type { FileSystem } from "./file_system.ts";

/** Temporary files of ours older than this are left-overs of a crash. */
const STALE_TEMP_MS = 60_000;

/**
 * Writes `data` to `target` in `dir` so that no reader ever sees a partial
 * or world-readable file: the dir is created (0700) if missing, a temporary
 * file beside the target is created with mode 0600, written and flushed,
 * renamed over the target, then the dir is flushed (the rename survives a
 * crash).
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./_atomic_file.ts";
 * import { defaultFileSystem } from "./default_file_system.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(await defaultFileSystem(), dir, `${dir}/.auth_token`, "tok");
 * ```
 *
 * @param fs File operations.
 * @param dir The directory (created 0700 if missing).
 * @param target The file to replace.
 * @param data What it will hold.
 */
export async function writeFileAtomic(
  fs: FileSystem,
  dir: string,
  target: string,
  data: string,
): Promise<void> {
  await fs.mkdirp(dir, 0o700);
  const tmp = `${target}.${crypto.randomUUID()}.tmp`;
  try {
    await fs.writeNew(tmp, data, 0o600); // written and fsynced
    await fs.rename(tmp, target);
  } catch (error) {
    await fs.remove(tmp).catch(() => {});
    throw error;
  }
  await fs.syncDir?.(dir); // the rename itself survives a crash
}

/**
 * Removes `<prefix>*.tmp` files in `dir` older than a minute (left behind by
 * a crash between write and rename), so that another process writing now
 * is not disturbed. Failures are ignored.
 *
 * @example
 * ```ts
 * import { removeStaleTemporaryFiles } from "./_atomic_file.ts";
 * import { defaultFileSystem } from "./default_file_system.ts";
 * const dir = await Deno.makeTempDir();
 * await removeStaleTemporaryFiles(await defaultFileSystem(), dir, ".auth_token"); // 0
 * ```
 *
 * @param fs File operations.
 * @param dir The directory.
 * @param prefix The name our files start with.
 * @returns How many were removed.
 */
export async function removeStaleTemporaryFiles(
  fs: FileSystem,
  dir: string,
  prefix: string,
): Promise<number> {
  if (!fs.list) return 0;
  let removed = 0;
  try {
    for (const name of await fs.list(dir)) {
      if (!name.startsWith(prefix) || !name.endsWith(".tmp")) continue;
      const path = `${dir}/${name}`;
      const info = await fs.stat(path).catch(() => undefined);
      if (!info || Date.now() - info.mtimeMs < STALE_TEMP_MS) continue;
      await fs.remove(path).then(() => removed++, () => {});
    }
  } catch {
    // a dir that cannot be listed holds nothing to tidy
  }
  return removed;
}

/** Options of {@link AtomicFiles}. */
export interface AtomicFilesOptions {
  /** The dir the files live in; created (0700) when missing. */
  dir: string;
  /** The file's name (every workspace's, or the prefix of each one's). */
  name: string;
  /** `<name>.<id>` for each workspace, or `<name>` for all. @default {false} */
  perWorkspace?: boolean;
  /** Most bytes a file may hold to be read. */
  maxBytes: number;
  /** What a file holds, for the empty-value error ("secret", "token"). */
  what: string;
  /** File operations. @default {the adapter for this runtime} */
  fs?: FileSystem;
}

/**
 * A small file per workspace (or one for all) in a dir: read bounded and
 * trimmed, written with {@link writeFileAtomic}, stale temporary files of
 * ours removed once before the first read or write. What `FileSecretStore`
 * and `FileTokenStore` are made of.
 */
export class AtomicFiles {
  /** The dir, without a trailing `/`. */
  readonly dir: string;
  /** Whether each workspace has a file of its own. */
  readonly perWorkspace: boolean;
  #name: string;
  #maxBytes: number;
  #what: string;
  #fs: Promise<FileSystem>;
  #tidied: Promise<void> | undefined;

  /** @param options Where, which name, how much. */
  constructor(options: AtomicFilesOptions) {
    this.dir = options.dir.replace(/(.)\/+$/, "$1");
    this.perWorkspace = options.perWorkspace ?? false;
    this.#name = options.name;
    this.#maxBytes = options.maxBytes;
    this.#what = options.what;
    this.#fs = options.fs ? Promise.resolve(options.fs) : defaultFileSystem();
  }

  /** The file a workspace's value is kept in. */
  pathFor(workspaceId: string): string {
    const name = this.perWorkspace
      ? `${this.#name}.${workspaceFileName(workspaceId)}`
      : this.#name;
    return `${this.dir}/${name}`;
  }

  /** A workspace's value, trimmed; `undefined` when there is none. */
  async load(workspaceId: string): Promise<string | undefined> {
    await this.#tidy();
    const text = await (await this.#fs).readText(this.pathFor(workspaceId), {
      maxBytes: this.#maxBytes,
    });
    const value = text?.trim();
    return value ? value : undefined;
  }

  /** Writes a workspace's value atomically, with mode 0600. */
  async save(workspaceId: string, value: string): Promise<void> {
    if (value === "") {
      throw new TypeError(`an empty ${this.#what} is never written`);
    }
    const fs = await this.#fs;
    await this.#tidy();
    await writeFileAtomic(fs, this.dir, this.pathFor(workspaceId), value);
  }

  /** Removes stale temporary files of ours; see {@link removeStaleTemporaryFiles}. */
  async removeStale(): Promise<number> {
    return await removeStaleTemporaryFiles(
      await this.#fs,
      this.dir,
      this.#name,
    );
  }

  #tidy(): Promise<void> {
    return this.#tidied ??= this.removeStale().then(() => {});
  }
}
