/**
 * Workspace ids: what is accepted, and a file name for any of them.
 *
 * @module
 */

/** Longest workspace id accepted, in characters. */
export const MAX_WORKSPACE_ID_LENGTH = 512;

/**
 * Whether a workspace id is usable: 1 to {@link MAX_WORKSPACE_ID_LENGTH}
 * characters, no control characters.
 *
 * @example
 * ```ts
 * import { isValidWorkspaceId } from "./workspace_id.ts";
 * isValidWorkspaceId("5f0c-ws"); // true
 * isValidWorkspaceId("a\nb"); // false
 * ```
 *
 * @param id The id.
 * @returns Whether it is usable.
 */
export function isValidWorkspaceId(id: string): boolean {
  return id.length >= 1 && id.length <= MAX_WORKSPACE_ID_LENGTH &&
    // deno-lint-ignore no-control-regex
    !/[\u0000-\u001f\u007f-\u009f]/.test(id);
}

/**
 * A file-name-safe name for a workspace id: the id itself when it is short
 * and plain (`[A-Za-z0-9._-]`, at most 100 characters, not `.` or `..`),
 * else a readable prefix and a 64-bit hash of the whole id, so that every
 * id, however long or odd, has a name no file system refuses.
 *
 * @example
 * ```ts
 * import { workspaceFileName } from "./workspace_id.ts";
 * workspaceFileName("ws-1"); // "ws-1"
 * workspaceFileName("a/b c".repeat(100)).length <= 60; // true
 * ```
 *
 * @param id The workspace id.
 * @returns The name.
 */
export function workspaceFileName(id: string): string {
  if (/^[A-Za-z0-9._-]{1,100}$/.test(id) && id !== "." && id !== "..") {
    return id;
  }
  const readable = id.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 40);
  return `${readable}~${hash64(id)}`;
}

/** FNV-1a over UTF-16 code units, twice with different seeds: 16 hex digits. */
function hash64(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x0100019d) >>> 0;
  }
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Whether a workspace id is a UUID, as the platform's ids are (its
 * column's type): any other id is answered 500 by every register and
 * heartbeat, and 400 `invalid workspace ID` by `GET /workspaces/:id`.
 *
 * @example
 * ```ts
 * import { isUuid } from "./workspace_id.ts";
 * isUuid("3f9c2a4e-8b1d-4c6e-9a7f-1e2d3c4b5a60"); // true
 * isUuid("ws-1"); // false
 * ```
 *
 * @param id The id.
 * @returns Whether it has the shape of a UUID.
 */
export function isUuid(id: string): boolean {
  return UUID.test(id);
}
