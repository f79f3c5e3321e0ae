/**
 * Deno's permissions, as the command needs them: what a run needs is asked
 * before anything starts, and a permission missing anyway (Deno's
 * `NotCapable`, wherever it surfaces) becomes one line naming the flag to
 * add, exit 2, never a stack trace. On other runtimes every check passes.
 *
 * The narrow `deno run` line for each kind of run is in docs/cli.md.
 *
 * @module
 */
import { ConfigError } from "../shared/errors.ts";

/** A permission to ask Deno about (`Deno.PermissionDescriptor`). */
export type Permission =
  | { name: "env" }
  | { name: "net"; host: string }
  | { name: "read"; path: string }
  | { name: "write"; path: string }
  | { name: "run"; command: string };

interface DenoPermissions {
  permissions?: {
    querySync?(descriptor: Permission): { state: string };
  };
}

/**
 * The one line for a permission the run lacks: the flag to add, what for,
 * and the way out.
 *
 * @param flag Such as `--allow-env`.
 * @param why What it is needed for, such as `to read PLATFORM_URL`.
 * @param scoped The scoped form of the flag, when there is one.
 */
export function permissionMessage(
  flag: string,
  why: string,
  scoped?: string,
): string {
  return `this run needs ${flag} (${why}): add ${
    scoped ? `${flag} (or ${scoped})` : flag
  } to the deno run line, or run with -A`;
}

/** Deno's answer for a permission: `granted`, `prompt` or `denied`. */
export type PermissionQuery = (permission: Permission) => string;

/** `Deno.permissions.querySync`, or `undefined` off Deno. */
function denoQuery(): PermissionQuery | undefined {
  const permissions = (globalThis as { Deno?: DenoPermissions }).Deno
    ?.permissions;
  const querySync = permissions?.querySync;
  if (!querySync) return undefined;
  return (permission) => querySync.call(permissions, permission).state;
}

/**
 * Throws the {@link permissionMessage} as a configuration error when Deno
 * does not grant `permission` already (a prompt cannot be answered by a
 * command an MCP client starts). Off Deno, and on a Deno without the
 * permissions API, it passes.
 *
 * @param permission What the run needs.
 * @param why What for, for the message.
 * @param query Asks for the permission's state. @default {Deno's}
 * @throws {ConfigError} When it is not granted.
 */
export function requirePermission(
  permission: Permission,
  why: string,
  query: PermissionQuery | undefined = denoQuery(),
): void {
  if (!query) return;
  let state: string;
  try {
    state = query(permission);
  } catch {
    return; // a descriptor this Deno does not know: let the run say
  }
  if (state === "granted") return;
  const flag = `--allow-${permission.name}`;
  // Scoped, such as `--allow-net=host:443`: what the run needs at least.
  const scope = "host" in permission
    ? permission.host
    : "path" in permission
    ? permission.path
    : "command" in permission
    ? permission.command
    : undefined;
  throw new ConfigError(
    permissionMessage(flag, why, scope && `${flag}=${scope}`),
    flag,
  );
}

/**
 * The {@link permissionMessage} for Deno's refusal of an operation (a
 * `NotCapable` error: `Requires env access to "TMPDIR", run again with the
 * --allow-env flag`), or `undefined` for any other error.
 *
 * @param error What was thrown.
 */
export function permissionErrorMessage(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const text = error.message;
  const match = /Requires (\w+) access(?: to "([^"]*)")?.*?(--allow-[a-z-]+)/
    .exec(text);
  if (error.name !== "NotCapable" && !match) return undefined;
  if (!match) {
    return `this run lacks a Deno permission (${text}): add the flag it names to the deno run line, or run with -A`;
  }
  const [, kind, resource, flag] = match;
  // A scoped flag for a host or a command; a path Deno names may be one
  // file of a dir the run needs all of.
  const scoped = resource && (kind === "net" || kind === "run")
    ? `${flag}=${resource}`
    : undefined;
  return permissionMessage(
    flag,
    resource ? `${kind} access to "${resource}"` : `${kind} access`,
    scoped,
  );
}
