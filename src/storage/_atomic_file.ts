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
 * Tidies the temporary files of ours in `dir` (`<prefix>*.tmp`, for each
 * prefix) that interrupted writes left. First, tokens are not lost: a
 * `<tokenPrefix>*.<uuid>.tmp` file (a process killed between writing the
 * temporary file, fsynced, and renaming it: a token the platform issued and
 * nobody else holds) holding a whole token, whatever its age, is renamed
 * over its target when the target is missing or older (and holds another
 * token), else removed; each is one warning line naming both files (never
 * the token). Then every other one older than a minute is removed; younger
 * ones are left, as another process writing now may own them. Failures are
 * ignored.
 *
 * @example
 * ```ts
 * import { tidyTemporaryFiles } from "./_atomic_file.ts";
 * import { defaultFileSystem } from "./default_file_system.ts";
 * const dir = await Deno.makeTempDir();
 * const fs = await defaultFileSystem();
 * await tidyTemporaryFiles(fs, dir, [".auth_token"], ".auth_token", 16384); // { orphans: [], stale: 0 }
 * ```
 *
 * @param fs File operations.
 * @param dir The directory.
 * @param prefixes What the names of our files start with.
 * @param tokenPrefix The name of the token files (`.auth_token`).
 * @param maxBytes Most bytes read from a token file.
 * @returns What was done with tokens, file by file, and how many stale
 *   files were removed.
 */
export async function tidyTemporaryFiles(
  fs: FileSystem,
  dir: string,
  prefixes: string[],
  tokenPrefix: string,
  maxBytes: number,
): Promise<{ orphans: OrphanToken[]; stale: number }> {
  const orphans: OrphanToken[] = [];
  let stale = 0;
  const read = async (path: string) =>
    (await fs.readText(path, { maxBytes }).catch(() => undefined))?.trim();
  const names = await fs.list(dir).catch(() => []);
  for (const name of names.sort()) {
    if (!name.endsWith(".tmp") || !prefixes.some((p) => name.startsWith(p))) {
      continue;
    }
    const temp = `${dir}/${name}`;
    const tempInfo = await fs.stat(temp).catch(() => undefined);
    if (!tempInfo) continue;
    const token = name.startsWith(tokenPrefix) && TEMP_SUFFIX.test(name)
      ? await read(temp)
      : undefined;
    if (token && isValidToken(token)) {
      const target = temp.replace(TEMP_SUFFIX, "");
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
      orphans.push({ temp, target, action: take ? "taken" : "removed" });
      logger.warn(
        take
          ? "{temp} held a token that an interrupted write never put in place: it is now {target}"
          : "removed {temp}, a token an interrupted write left behind: {target} holds {which}",
        {
          temp,
          target,
          // (Only the removal says which: JSON lines show every property.)
          which: take ? undefined : same ? "the same token" : "a newer one",
        },
      );
    } else if (Date.now() - tempInfo.mtimeMs >= STALE_TEMP_MS) {
      await fs.remove(temp).then(() => stale++, () => {});
    }
  }
  return { orphans, stale };
}
