/**
 * Files that are re-read when they change: token files and the workspaces
 * file, so that a rotated token is used without a restart.
 *
 * @module
 */
import { defaultFileSystem } from "./default_file_system.ts";
import type { FileSystem } from "./file_system.ts";
import { logger } from "../shared/_logger.ts";
import { rememberSecret } from "../shared/mask.ts";
import { isValidToken, MAX_TOKEN_LENGTH } from "../shared/token.ts";

/** Options of {@link watchFile}. */
export interface WatchFileOptions<T = unknown> {
  /** File operations. @default {the adapter for this runtime} */
  fs?: FileSystem;
  /**
   * Read only a regular file of at most this many bytes (see
   * {@link FileSystem.readText}). @default {16384}
   */
  maxBytes?: number;
  /** Called with the new content after each successful re-read. */
  onChange?: (value: T) => void;
}

/** A file's parsed content, kept fresh; see {@link watchFile}. */
export interface WatchedFile<T> {
  /** The path. */
  readonly path: string;
  /** The current parsed content. */
  get(): Promise<T>;
}

/**
 * Reads and parses a file now (throwing if it cannot be read or parsed), and
 * afterwards re-reads it when its modification time or size changes, looked
 * at no more than once a second however often `get` is called. A
 * change that cannot be read or parsed (a half-written file) keeps the last
 * good content, with a warning.
 *
 * @example A token that follows its file
 * ```ts
 * import { watchFile } from "./watched_file.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "token-1\n");
 * const token = await watchFile(path, (text) => text.trim());
 * console.log(await token.get()); // "token-1"
 * ```
 *
 * @param path The file.
 * @param parse Turns the text into a value; throws on bad content.
 * @param options File operations, size limit and change listener.
 * @returns The watched file.
 * @throws {Error} When the file cannot be read or parsed at first.
 */
export async function watchFile<T>(
  path: string,
  parse: (text: string) => T,
  options: WatchFileOptions<T> = {},
): Promise<WatchedFile<T>> {
  const fs = options.fs ?? await defaultFileSystem();
  const read = async () => {
    const info = await fs.stat(path);
    const text = await fs.readText(path, {
      maxBytes: options.maxBytes ?? 16 * 1024,
    });
    if (text === undefined) throw new Error(`${path} does not exist`);
    return { value: parse(text), key: `${info?.mtimeMs}:${info?.size}` };
  };
  let current = await read();
  let lastCheck = performance.now();
  let refreshing: Promise<void> | undefined;
  let warnedKey = "";
  const refresh = async () => {
    const info = await fs.stat(path).catch(() => undefined);
    const key = `${info?.mtimeMs}:${info?.size}`;
    if (key === current.key) return;
    try {
      current = await read();
      logger.info("re-read {path}: it changed on disk", { path });
      try {
        options.onChange?.(current.value);
      } catch (error) {
        logger.error("a change listener of {path} threw: {error}", {
          path,
          error,
        });
      }
    } catch (error) {
      if (warnedKey !== key) {
        warnedKey = key;
        logger.warn(
          "{path} changed but cannot be used ({reason}); keeping what it held before",
          {
            path,
            reason: error instanceof Error ? error.message : String(error),
          },
        );
      }
    }
  };
  return {
    path,
    async get() {
      if (performance.now() - lastCheck >= 1000) {
        lastCheck = performance.now();
        refreshing ??= refresh().finally(() => refreshing = undefined);
      }
      if (refreshing) await refreshing;
      return current.value;
    },
  };
}

/**
 * A token read from a file (trimmed) and re-read when the file changes; an
 * empty file is an error at first and ignored afterwards.
 *
 * @example
 * ```ts
 * import { startHeartbeat } from "@molecule/heartbeat";
 * import { fileToken } from "./watched_file.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "token-1\n");
 * const token = await fileToken(path);
 * const hb = startHeartbeat({
 *   platformUrl: "http://127.0.0.1:8080",
 *   workspaces: [{ id: "ws-1", token }],
 * });
 * await hb.stop();
 * ```
 *
 * @param path The token file.
 * @param options File operations, size limit and change listener.
 * @returns A token function for a workspace's `token`.
 * @throws {Error} When the file cannot be read or is empty.
 */
export async function fileToken(
  path: string,
  options: WatchFileOptions<string> = {},
): Promise<() => Promise<string>> {
  const file = await watchFile(path, (text) => {
    const token = text.trim();
    if (!token) throw new Error(`${path} is empty`);
    if (!isValidToken(token)) {
      // Never the token itself: this text is logged.
      throw new Error(
        `${path} does not hold one token of 1 to ${MAX_TOKEN_LENGTH} visible ASCII characters (a second line, a space or a stray quote?)`,
      );
    }
    rememberSecret(token);
    return token;
  }, options);
  return () => file.get();
}
