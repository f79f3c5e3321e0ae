/**
 * Small secret files, written atomically with mode 0600, and the temporary
 * files a crash leaves behind (internal): the write code of
 * `FileSecretStore`.
 *
 * @module
 */
import { logger } from "../shared/_logger.ts";
import { HeartbeatError } from "../shared/errors.ts";
import { isValidToken } from "../shared/token.ts";
import type { FileSystem } from "./file_system.ts";

/** Temporary files of ours older than this are left-overs of a crash. */
const STALE_TEMP_MS = 60_000;

/** A temporary file of {@link writeFileAtomic}: `<target>.<uuid>.tmp`. */
const TEMP_SUFFIX =
  /\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.tmp$/;

/** What a file error's code means, in words (the code itself follows them). */
const FILE_ERRORS: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "no space left on the device",
  EDQUOT: "disk quota exceeded",
  EISDIR: "a directory is in its place",
  ENOTDIR: "a part of its path is not a directory",
  EEXIST: "a file is in the way",
  ENOENT: "its directory is gone",
  EIO: "input/output error",
  EMFILE: "too many open files",
  ENFILE: "too many open files in the system",
  ENAMETOOLONG: "the name is too long",
  ELOOP: "too many symbolic links",
  EBUSY: "the file is busy",
  EXDEV: "not on one file system",
};

/**
 * A secret or token file that could not be written. Its message names the
 * file written (never the temporary file beside it, whose random name
 * changes with every attempt) and the error's code, so that the same
 * failure reads the same every time and is reported once.
 */
export class FileWriteError extends HeartbeatError {
  /** The file that was to be written. */
  readonly path: string;
  /** The error code, such as `EACCES` or `ENOSPC`, when there is one. */
  readonly code: string | undefined;

  /**
   * Creates the error.
   *
   * @param path The target file (or the directory that could not be made).
   * @param cause The error of the file operation.
   * @param temp The temporary file's path, replaced by `path` in a message
   *   that has no code.
   */
  constructor(path: string, cause: unknown, temp?: string) {
    const code = errorCode(cause);
    const words = code ? FILE_ERRORS[code] : undefined;
    const detail = words
      ? `${words} (${code})`
      : code
      ? code
      : (cause instanceof Error ? cause.message : String(cause))
        .replaceAll(temp ?? "\u0000", path);
    super(`cannot write ${path}: ${detail}`, { cause });
    this.name = "FileWriteError";
    this.path = path;
    this.code = code;
  }
}

/** The `code` of a file error (Node's and Deno's both carry one). */
function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code)
    ? code
    : undefined;
}

/**
 * Writes `data` to `target` in `dir` so that no reader ever sees a partial
 * or world-readable file: the dir is created (0700) if missing, a temporary
 * file beside the target is created with mode 0600, written and flushed,
 * renamed over the target, then the dir is flushed (the rename survives a
 * crash). A failure is a {@link FileWriteError} naming `target` (or `dir`)
 * and the error code, never the temporary file.
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
  try {
    await fs.mkdirp(dir, 0o700);
  } catch (error) {
    throw new FileWriteError(target, error);
  }
  const tmp = `${target}.${crypto.randomUUID()}.tmp`;
  try {
    await fs.writeNew(tmp, data, 0o600); // written and fsynced
    await fs.rename(tmp, target);
  } catch (error) {
    await fs.remove(tmp).catch(() => {});
    throw new FileWriteError(target, error, tmp);
  }
  await fs.syncDir(dir); // the rename itself survives a crash
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

/** What was done with a token an interrupted write left in a temporary file. */
export interface OrphanToken {
  /** The temporary file. */
  temp: string;
  /** The file it was to replace. */
  target: string;
  /**
   * `taken`: renamed into place (the target was missing, or older and
   * different); `removed`: the target holds a newer token, or this one.
   */
  action: "taken" | "removed";
}

/**
 * Finds the tokens that an interrupted write left in `<prefix>*.<uuid>.tmp`
 * files (a process killed between writing the temporary file, fsynced, and
 * renaming it: a token the platform issued and nobody else holds), whatever
 * their age, and does not lose them: a temporary file holding a whole
 * token is renamed over its target when the target is missing or older
 * (and holds another token), else removed. Each is one warning line naming
 * both files (never the token). A temporary file without a whole token is
 * left to {@link removeStaleTemporaryFiles}. Failures are ignored.
 *
 * @example
 * ```ts
 * import { recoverTemporaryTokens } from "./_atomic_file.ts";
 * import { defaultFileSystem } from "./default_file_system.ts";
 * const dir = await Deno.makeTempDir();
 * await recoverTemporaryTokens(await defaultFileSystem(), dir, ".auth_token"); // []
 * ```
 *
 * @param fs File operations.
 * @param dir The directory.
 * @param prefix The name of the token files (`.auth_token`).
 * @param maxBytes Most bytes read from a file. @default {16384}
 * @returns What was done, file by file.
 */
export async function recoverTemporaryTokens(
  fs: FileSystem,
  dir: string,
  prefix: string,
  maxBytes = 16 * 1024,
): Promise<OrphanToken[]> {
  let names: string[];
  try {
    names = await fs.list(dir);
  } catch {
    return [];
  }
  const read = async (path: string) =>
    (await fs.readText(path, { maxBytes }).catch(() => undefined))?.trim();
  const done: OrphanToken[] = [];
  for (const name of names.sort()) {
    if (!name.startsWith(prefix) || !TEMP_SUFFIX.test(name)) continue;
    const temp = `${dir}/${name}`;
    const target = temp.replace(TEMP_SUFFIX, "");
    const token = await read(temp);
    if (!token || !isValidToken(token)) continue;
    const tempInfo = await fs.stat(temp).catch(() => undefined);
    if (!tempInfo) continue;
    const targetInfo = await fs.stat(target).catch(() => undefined);
    const same = targetInfo !== undefined && await read(target) === token;
    const take = targetInfo === undefined ||
      (targetInfo.mtimeMs < tempInfo.mtimeMs && !same);
    try {
      if (take) {
        await fs.rename(temp, target);
        await fs.syncDir(dir);
      } else await fs.remove(temp);
    } catch {
      continue;
    }
    done.push({ temp, target, action: take ? "taken" : "removed" });
    if (take) {
      logger.warn(
        "{temp} held a token that an interrupted write never put in place: it is now {target}",
        { temp, target },
      );
    } else {
      logger.warn(
        "removed {temp}, a token an interrupted write left behind: {target} holds {which}",
        { temp, target, which: same ? "the same token" : "a newer one" },
      );
    }
  }
  return done;
}
