/**
 * Where the tokens the platform issues are kept.
 *
 * @module
 */

/**
 * Where the tokens a platform issues are kept, one per workspace. The
 * platform mints a new token in a register answer whenever the workspace
 * has no live token; from then on only that token works, so it must
 * survive a restart. `save` is called with each newly issued token; `load`
 * when a configured token is refused, to try the stored one.
 *
 * @example A store that keeps tokens in a secrets manager
 * ```ts
 * import type { TokenStore } from "@molecule/heartbeat";
 * const vault = new Map<string, string>();
 * const store: TokenStore = {
 *   load: (id) => Promise.resolve(vault.get(id)),
 *   save: (id, token) => {
 *     vault.set(id, token);
 *     return Promise.resolve();
 *   },
 * };
 * ```
 */
export interface TokenStore {
  /** The stored token of a workspace, or `undefined` when there is none. */
  load(workspaceId: string): Promise<string | undefined>;
  /** Stores a workspace's newly issued token, replacing the old one. */
  save(workspaceId: string, token: string): Promise<void>;
  /**
   * Where a workspace's token is kept, for log lines and the
   * `issued-token` event (a place, never the token). @default {not said}
   */
  pathFor?(workspaceId: string): string;
}

/**
 * A {@link TokenStore} in memory, for embedding and tests: issued tokens
 * last as long as the process.
 *
 * @example
 * ```ts
 * import { MemoryTokenStore } from "@molecule/heartbeat";
 * const store = new MemoryTokenStore();
 * await store.save("ws-1", "issued-token-value");
 * console.log(await store.load("ws-1")); // "issued-token-value"
 * ```
 */
export class MemoryTokenStore implements TokenStore {
  /** Tokens by workspace id. */
  readonly tokens: Map<string, string> = new Map();
  /** How many times `save` was called. */
  saves = 0;

  /**
   * Reads a workspace's token.
   *
   * @param workspaceId The workspace.
   * @returns Its token, if any.
   */
  load(workspaceId: string): Promise<string | undefined> {
    return Promise.resolve(this.tokens.get(workspaceId));
  }

  /**
   * Keeps a workspace's token.
   *
   * @param workspaceId The workspace.
   * @param token Its new token.
   */
  save(workspaceId: string, token: string): Promise<void> {
    this.saves++;
    this.tokens.set(workspaceId, token);
    return Promise.resolve();
  }
}
