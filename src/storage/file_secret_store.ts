/**
 * Secrets on disk: `<configs dir>/.platform_inbound_secret` and
 * `<configs dir>/.auth_token`, or one file of each per workspace.
 *
 * @module
 */
import { workspaceFileName } from "../shared/workspace_id.ts";
import { tidyTemporaryFiles, writeFileAtomic } from "./_atomic_file.ts";
import { defaultFileSystem } from "./default_file_system.ts";
import type { FileSystem } from "./file_system.ts";
import type { SecretKind, SecretStore } from "./secret_store.ts";

/** Most bytes read from a stored inbound secret file. */
export const MAX_SECRET_FILE_BYTES = 8 * 1024;

/** Most bytes read from a stored token file. */
export const MAX_TOKEN_STORE_FILE_BYTES = 16 * 1024;

/** The inbound secret file's name in the configs dir. */
export const SECRET_FILE_NAME = ".platform_inbound_secret";

/** The token file's name in the configs dir: the one the command falls back to. */
export const TOKEN_FILE_NAME = ".auth_token";

/** Options of {@link FileSecretStore}. */
export interface FileSecretStoreOptions {
  /** The configs dir; created (0700) when missing. */
  dir: string;
  /**
   * One file of each kind per workspace, `.platform_inbound_secret.<id>`
   * and `.auth_token.<id>` (a long or odd id is hashed into a safe name),
   * for several workspaces in one configs dir; otherwise every workspace
   * shares `.platform_inbound_secret`, as the reference does, and
   * `.auth_token`, the file the command reads a single workspace's token
   * from when no variable names one.
   * @default {false}
   */
  perWorkspace?: boolean;
  /**
   * File operations (internal: the command's and the tests' adapter).
   * @default {the adapter for this runtime}
   * @ignore
   */
  fs?: FileSystem;
}

/**
 * Keeps secrets in files of mode 0600: each write creates a temporary file
 * with mode 0600, writes and flushes it, renames it over the target and
 * flushes the directory, so no reader ever sees a partial or world-readable
 * file. The directory is created (0700) on every write if missing, so a
 * configs dir that could not be created at start is used once it can be.
 * Before the first read or write, a token that a killed process left in a
 * temporary file is put in place (when the token file is missing or older)
 * or removed, with a warning line either way; then temporary files of ours
 * older than a minute (a crash between write and rename) are removed. Files are written with `Deno.writeTextFile` on
 * Deno, with `node:fs` elsewhere.
 *
 * @example
 * ```ts
 * import { FileSecretStore } from "@molecule/heartbeat";
 * const dir = await Deno.makeTempDir();
 * const store = new FileSecretStore({ dir });
 * await store.save("inbound-secret", "ws-1", "s3cr3t");
 * await store.save("auth-token", "ws-1", "issued-token-value");
 * console.log(await Deno.readTextFile(`${dir}/.platform_inbound_secret`)); // "s3cr3t"
 * console.log(store.pathFor("auth-token", "ws-1")); // `${dir}/.auth_token`
 * ```
 */
export class FileSecretStore implements SecretStore {
  /** The configs dir, without a trailing `/`. */
  readonly dir: string;
  /** Whether each workspace has files of its own. */
  readonly perWorkspace: boolean;
  #fs: Promise<FileSystem>;
  #tidied: Promise<FileSystem> | undefined;

  /**
   * Creates the store; nothing is touched on disk until a load or save.
   *
   * @param options Where, and how.
   */
  constructor(options: FileSecretStoreOptions) {
    this.dir = options.dir.replace(/(.)\/+$/, "$1");
    this.perWorkspace = options.perWorkspace ?? false;
    this.#fs = options.fs ? Promise.resolve(options.fs) : defaultFileSystem();
  }

  /**
   * The file a workspace's value of a kind is kept in.
   *
   * @param kind What it holds.
   * @param workspaceId The workspace.
   * @returns The path.
   */
  pathFor(kind: SecretKind, workspaceId: string): string {
    const { name } = kindOf(kind);
    return this.perWorkspace
      ? `${this.dir}/${name}.${workspaceFileName(workspaceId)}`
      : `${this.dir}/${name}`;
  }

  /**
   * Reads a workspace's file of a kind.
   *
   * @param kind What is asked for.
   * @param workspaceId The workspace.
   * @returns The stored value, trimmed, or `undefined`.
   */
  async load(
    kind: SecretKind,
    workspaceId: string,
  ): Promise<string | undefined> {
    const fs = await this.#tidy();
    const text = await fs.readText(this.pathFor(kind, workspaceId), {
      maxBytes: kindOf(kind).maxBytes,
    });
    return text?.trim() || undefined;
  }

  /**
   * Writes a workspace's value atomically, with mode 0600.
   *
   * @param kind What it is.
   * @param workspaceId The workspace.
   * @param value The value; never empty.
   */
  async save(
    kind: SecretKind,
    workspaceId: string,
    value: string,
  ): Promise<void> {
    if (value === "") {
      throw new TypeError(`an empty ${kindOf(kind).what} is never written`);
    }
    const fs = await this.#tidy();
    await writeFileAtomic(fs, this.dir, this.pathFor(kind, workspaceId), value);
  }

  /**
   * Once before the first read or write: the tokens interrupted writes left
   * in temporary files taken or removed, then stale temporary files of ours
   * removed.
   */
  #tidy(): Promise<FileSystem> {
    return this.#tidied ??= this.#fs.then(async (fs) => {
      await tidyTemporaryFiles(
        fs,
        this.dir,
        [TOKEN_FILE_NAME, SECRET_FILE_NAME],
        TOKEN_FILE_NAME,
        MAX_TOKEN_STORE_FILE_BYTES,
      );
      return fs;
    });
  }
}

/** Each kind's file: its name, the most bytes read, what it holds. */
const KINDS: Record<
  SecretKind,
  { name: string; maxBytes: number; what: string }
> = {
  "inbound-secret": {
    name: SECRET_FILE_NAME,
    maxBytes: MAX_SECRET_FILE_BYTES,
    what: "secret",
  },
  "auth-token": {
    name: TOKEN_FILE_NAME,
    maxBytes: MAX_TOKEN_STORE_FILE_BYTES,
    what: "token",
  },
};

/** A kind's file name and bounds; a kind we do not keep is an error (a JavaScript caller's typo). */
function kindOf(kind: SecretKind) {
  if (!Object.hasOwn(KINDS, kind)) {
    throw new TypeError(`not a kind of secret: ${String(kind)}`);
  }
  return KINDS[kind];
}
