/**
 * The inbound secret and where it is kept.
 *
 * @module
 */

/**
 * Where inbound secrets are kept, one per workspace. `save` is called only
 * with a valid secret that differs from the last one stored.
 *
 * @example A store that prints instead of storing
 * ```ts
 * import type { SecretStore } from "@molecule/heartbeat";
 * const store: SecretStore = {
 *   load: () => Promise.resolve(undefined),
 *   save: (id) => {
 *     console.log(`new secret for ${id}`);
 *     return Promise.resolve();
 *   },
 * };
 * ```
 */
export interface SecretStore {
  /** The stored secret of a workspace, or `undefined` when there is none. */
  load(workspaceId: string): Promise<string | undefined>;
  /** Stores a workspace's secret, replacing the old one. */
  save(workspaceId: string, secret: string): Promise<void>;
}

/** Longest inbound secret accepted, in characters. */
export const MAX_SECRET_LENGTH = 4096;

/**
 * Whether a value from a platform answer is a usable inbound secret: a string
 * of 1 to 4096 characters with no control characters.
 *
 * @example
 * ```ts
 * import { isValidSecret } from "./secret_store.ts";
 * isValidSecret("s3cr3t"); // true
 * isValidSecret("a\nb"); // false
 * isValidSecret(42); // false
 * ```
 *
 * @param value Anything.
 * @returns `true` when it can be stored.
 */
export function isValidSecret(value: unknown): value is string {
  return typeof value === "string" && value.length >= 1 &&
    value.length <= MAX_SECRET_LENGTH &&
    // deno-lint-ignore no-control-regex
    !/[\u0000-\u001f\u007f-\u009f]/.test(value);
}

/**
 * A {@link SecretStore} in memory, for embedding and tests.
 *
 * @example
 * ```ts
 * import { MemorySecretStore } from "@molecule/heartbeat";
 * const store = new MemorySecretStore();
 * await store.save("ws-1", "s3cr3t");
 * console.log(await store.load("ws-1")); // "s3cr3t"
 * ```
 */
export class MemorySecretStore implements SecretStore {
  /** Secrets by workspace id. */
  readonly secrets: Map<string, string> = new Map();
  /** How many times `save` was called. */
  saves = 0;

  /**
   * Reads a workspace's secret.
   *
   * @param workspaceId The workspace.
   * @returns Its secret, if any.
   */
  load(workspaceId: string): Promise<string | undefined> {
    return Promise.resolve(this.secrets.get(workspaceId));
  }

  /**
   * Keeps a workspace's secret.
   *
   * @param workspaceId The workspace.
   * @param secret Its new secret.
   */
  save(workspaceId: string, secret: string): Promise<void> {
    this.saves++;
    this.secrets.set(workspaceId, secret);
    return Promise.resolve();
  }
}
