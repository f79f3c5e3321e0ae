/**
 * Issued tokens on disk: `<configs dir>/.auth_token`, or one file per
 * workspace.
 *
 * @module
 */
import { AtomicFiles } from "./_atomic_file.ts";
import type { FileSystem } from "./file_system.ts";
import type { TokenStore } from "./token_store.ts";

/** Most bytes read from a stored token file. */
export const MAX_TOKEN_STORE_FILE_BYTES = 16 * 1024;

/** The token file's name in the configs dir: the one the command falls back to. */
export const TOKEN_FILE_NAME = ".auth_token";

/** Options of {@link FileTokenStore}. */
export interface FileTokenStoreOptions {
  /** The configs dir; created (0700) when missing. */
  dir: string;
  /**
   * One file per workspace, `.auth_token.<id>` (a long or odd id is hashed
   * into the name), for several workspaces in one configs dir, beside their
   * inbound secrets; otherwise `.auth_token`, the file the command reads a
   * single workspace's token from when no variable names one.
   * @default {false}
   */
  perWorkspace?: boolean;
  /** File operations. @default {the adapter for this runtime} */
  fs?: FileSystem;
}

/**
 * Keeps issued tokens in files of mode 0600, written as
 * {@link FileSecretStore} writes secrets (a 0600 temporary file, flushed,
 * renamed over the target, the dir flushed), so no reader ever sees a
 * partial or world-readable token.
 *
 * @example
 * ```ts
 * import { FileTokenStore } from "@molecule/heartbeat";
 * const dir = await Deno.makeTempDir();
 * const store = new FileTokenStore({ dir });
 * await store.save("ws-1", "issued-token-value");
 * console.log(store.pathFor("ws-1")); // `${dir}/.auth_token`
 * console.log(await store.load("ws-1")); // "issued-token-value"
 * ```
 */
export class FileTokenStore implements TokenStore {
  /** The configs dir. */
  readonly dir: string;
  /** Whether each workspace has a file of its own. */
  readonly perWorkspace: boolean;
  #files: AtomicFiles;

  /**
   * Creates the store; nothing is touched on disk until a save.
   *
   * @param options Where, and how.
   */
  constructor(options: FileTokenStoreOptions) {
    this.#files = new AtomicFiles({
      ...options,
      name: TOKEN_FILE_NAME,
      maxBytes: MAX_TOKEN_STORE_FILE_BYTES,
      what: "token",
    });
    this.dir = this.#files.dir;
    this.perWorkspace = this.#files.perWorkspace;
  }

  /**
   * The file a workspace's token is kept in.
   *
   * @param workspaceId The workspace.
   * @returns The path.
   */
  pathFor(workspaceId: string): string {
    return this.#files.pathFor(workspaceId);
  }

  /**
   * Reads a workspace's token file.
   *
   * @param workspaceId The workspace.
   * @returns The stored token, trimmed, or `undefined`.
   */
  load(workspaceId: string): Promise<string | undefined> {
    return this.#files.load(workspaceId);
  }

  /**
   * Writes a workspace's token atomically, with mode 0600.
   *
   * @param workspaceId The workspace.
   * @param token The token; never empty.
   */
  save(workspaceId: string, token: string): Promise<void> {
    return this.#files.save(workspaceId, token);
  }
}
