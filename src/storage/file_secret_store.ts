/**
 * The inbound secret on disk, at `<configs dir>/.platform_inbound_secret`.
 *
 * @module
 */
import { AtomicFiles } from "./_atomic_file.ts";
import type { FileSystem } from "./file_system.ts";
import type { SecretStore } from "./secret_store.ts";

/** Most bytes read from a stored secret file. */
export const MAX_SECRET_FILE_BYTES = 8 * 1024;

/** The secret file's name in the configs dir. */
export const SECRET_FILE_NAME = ".platform_inbound_secret";

/** Options of {@link FileSecretStore}. */
export interface FileSecretStoreOptions {
  /** The configs dir; created (0700) when missing. */
  dir: string;
  /**
   * One file per workspace, `.platform_inbound_secret.<id>` (a long or odd
   * id is hashed into a safe name), for several
   * workspaces in one configs dir; otherwise
   * every workspace shares `.platform_inbound_secret`, as the reference does.
   * @default {false}
   */
  perWorkspace?: boolean;
  /** File operations. @default {the adapter for this runtime} */
  fs?: FileSystem;
}

/**
 * Keeps inbound secrets in files of mode 0600: each write creates a
 * temporary file with mode 0600, writes it and renames it over the target,
 * so no reader ever sees a partial or world-readable file. The directory is
 * created (0700) on every write if missing, so a configs dir that could not
 * be created at start is used once it can be.
 *
 * @example
 * ```ts
 * import { FileSecretStore } from "@molecule/heartbeat";
 * const dir = await Deno.makeTempDir();
 * const store = new FileSecretStore({ dir });
 * await store.save("ws-1", "s3cr3t");
 * console.log(await Deno.readTextFile(`${dir}/.platform_inbound_secret`)); // "s3cr3t"
 * ```
 */
export class FileSecretStore implements SecretStore {
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
  constructor(options: FileSecretStoreOptions) {
    this.#files = new AtomicFiles({
      ...options,
      name: SECRET_FILE_NAME,
      maxBytes: MAX_SECRET_FILE_BYTES,
      what: "secret",
    });
    this.dir = this.#files.dir;
    this.perWorkspace = this.#files.perWorkspace;
  }

  /**
   * The file a workspace's secret is kept in.
   *
   * @param workspaceId The workspace.
   * @returns The path.
   */
  pathFor(workspaceId: string): string {
    return this.#files.pathFor(workspaceId);
  }

  /**
   * Reads a workspace's secret file.
   *
   * @param workspaceId The workspace.
   * @returns The stored secret, trimmed, or `undefined`.
   */
  load(workspaceId: string): Promise<string | undefined> {
    return this.#files.load(workspaceId);
  }

  /**
   * Writes a workspace's secret atomically, with mode 0600.
   *
   * @param workspaceId The workspace.
   * @param secret The secret; never empty.
   */
  save(workspaceId: string, secret: string): Promise<void> {
    return this.#files.save(workspaceId, secret);
  }

  /**
   * Removes temporary files this store left behind (a crash between write
   * and rename): `.platform_inbound_secret*.tmp` older than a minute, so
   * that another process writing now is not disturbed. Runs once, before
   * the first load or save; failures are ignored.
   *
   * @returns How many were removed.
   */
  removeStaleTemporaryFiles(): Promise<number> {
    return this.#files.removeStale();
  }
}
