/**
 * Where the secrets a platform hands over are kept: the inbound secret and
 * the token it issues, one of each per workspace.
 *
 * @module
 */

/**
 * What a {@link SecretStore} holds for a workspace:
 * - `inbound-secret`: the `platform_inbound_secret` the platform presents
 *   when it calls into the workspace;
 * - `auth-token`: the token the platform issued at register (it mints one
 *   whenever the workspace has no live token; from then on only that token
 *   works, so it must survive a restart).
 */
export type SecretKind = "inbound-secret" | "auth-token";

/**
 * Where the secrets of workspaces are kept: one small value per kind and
 * workspace. `save` is called with an inbound secret only when it is valid
 * and differs from the one stored, and with each newly issued token (again,
 * with backoff, until it succeeds); `load` once before the first inbound
 * secret is written, and on every refused token, to try the stored one.
 *
 * @example A store that keeps values in a secrets manager
 * ```ts
 * import type { SecretStore } from "@molecule/heartbeat";
 * const vault = new Map<string, string>();
 * const store: SecretStore = {
 *   load: (kind, id) => Promise.resolve(vault.get(`${kind}/${id}`)),
 *   save: (kind, id, value) => {
 *     vault.set(`${kind}/${id}`, value);
 *     return Promise.resolve();
 *   },
 * };
 * ```
 */
export interface SecretStore {
  /** The stored value of a workspace, or `undefined` when there is none. */
  load(kind: SecretKind, workspaceId: string): Promise<string | undefined>;
  /** Stores a workspace's value, replacing the old one. */
  save(kind: SecretKind, workspaceId: string, value: string): Promise<void>;
  /**
   * Where a workspace's value is kept, for log lines and the
   * `issued-token` event (a place, never the value). @default {not said}
   */
  pathFor?(kind: SecretKind, workspaceId: string): string;
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
 * A {@link SecretStore} in memory, for embedding and tests: values last as
 * long as the process.
 *
 * @example
 * ```ts
 * import { MemorySecretStore } from "@molecule/heartbeat";
 * const store = new MemorySecretStore();
 * await store.save("inbound-secret", "ws-1", "s3cr3t");
 * console.log(await store.load("inbound-secret", "ws-1")); // "s3cr3t"
 * console.log(store.values["auth-token"].size, store.saves["inbound-secret"]); // 0 1
 * ```
 */
export class MemorySecretStore implements SecretStore {
  /** The values, by kind, then by workspace id. */
  readonly values: Readonly<Record<SecretKind, Map<string, string>>> = {
    "inbound-secret": new Map(),
    "auth-token": new Map(),
  };
  /** How many times `save` was called, by kind. */
  readonly saves: Record<SecretKind, number> = {
    "inbound-secret": 0,
    "auth-token": 0,
  };

  /**
   * Reads a workspace's value.
   *
   * @param kind What is asked for.
   * @param workspaceId The workspace.
   * @returns Its value, if any.
   */
  load(kind: SecretKind, workspaceId: string): Promise<string | undefined> {
    return Promise.resolve(this.values[kind].get(workspaceId));
  }

  /**
   * Keeps a workspace's value.
   *
   * @param kind What it is.
   * @param workspaceId The workspace.
   * @param value Its new value.
   */
  save(kind: SecretKind, workspaceId: string, value: string): Promise<void> {
    this.saves[kind]++;
    this.values[kind].set(workspaceId, value);
    return Promise.resolve();
  }
}
