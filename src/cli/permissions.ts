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

/** `Deno.permissions`, off Deno `undefined`. */
const permissions = (globalThis as {
  Deno?: { permissions?: { querySync?(p: Permission): { state: string } } };
}).Deno?.permissions;

/** Deno's answer (`granted`, `prompt` or `denied`); off Deno, none to ask. */
const denoQuery = permissions?.querySync &&
  ((permission: Permission) => permissions.querySync!(permission).state);

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

/**
 * Throws the {@link permissionMessage} as a configuration error when Deno
 * does not grant `permission` already (a prompt cannot be answered by a
 * command an MCP client starts). Off Deno, and on a Deno without the
 * permissions API, it passes.
 *
 * @param permission What the run needs.
 * @param why What for, for the message.
 * @param query Asks for the permission's state (`granted`, `prompt` or
 *   `denied`). @default {Deno's}
 * @throws {ConfigError} When it is not granted.
 */
export function requirePermission(
  permission: Permission,
  why: string,
  query: ((permission: Permission) => string) | undefined = denoQuery,
): void {
  try {
    if (!query || query(permission) === "granted") return;
  } catch {
    return; // a descriptor this Deno does not know: let the run say
  }
  const { name, ...scoped } = permission;
  const flag = `--allow-${name}`;
  // Scoped, such as `--allow-net=host:443`: what the run needs at least.
  const scope = Object.values(scoped)[0];
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
