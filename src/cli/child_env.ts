/**
 * Wrapper mode: the environment the wrapped server gets. Ours is not its:
 * the variables that hold our tokens and secrets (or name the files that
 * do) are left out, and so is any other variable whose value holds one,
 * unless `--pass-token` (`MOLECULE_PASS_TOKEN`) hands it the workspace
 * token on purpose. An MCP server passes what it can read on to its client
 * and the model behind it (`@modelcontextprotocol/server-everything` has a
 * tool that returns its whole environment).
 *
 * @module
 */
import type { EnvReader } from "../shared/env.ts";
import { ConfigError } from "../shared/errors.ts";
import { MIN_MASKED_LENGTH } from "../shared/mask.ts";
import { type CliFlags, read } from "./flags.ts";

/** Our variables that hold a token or a secret: never the child's. */
export const SECRET_VARIABLES: readonly string[] = [
  "MOLECULE_WORKSPACE_TOKEN",
  "MOLECULE_WORKSPACES",
  "MOLECULE_HEALTH_TOKEN",
];

/**
 * Our variables that name a file holding tokens: paths, not secrets, but
 * the way to one for a server that can read files (it runs as our user)
 * and tells its environment to a model. Left out too; `--pass-token` keeps
 * `MOLECULE_WORKSPACE_TOKEN_FILE`.
 */
export const TOKEN_PATH_VARIABLES: readonly string[] = [
  "MOLECULE_WORKSPACE_TOKEN_FILE",
  "MOLECULE_WORKSPACES_FILE",
];

/**
 * Whether the wrapped server gets the workspace token: `--pass-token`, or
 * `MOLECULE_PASS_TOKEN` set to `1`, `true`, `yes` or `on` (`0`, `false`,
 * `no`, `off` or blank: not). The variable means nothing without a command
 * after `--`.
 *
 * @example
 * ```ts
 * import { envFromRecord } from "../shared/env.ts";
 * import { passTokenSetting } from "./child_env.ts";
 * import { parseFlags } from "./flags.ts";
 * passTokenSetting(parseFlags([]), envFromRecord({ MOLECULE_PASS_TOKEN: "1" }), true); // true
 * ```
 *
 * @param flags The command line.
 * @param env The environment.
 * @param wrapping Whether a command follows `--`.
 * @returns Whether to pass the token.
 * @throws {ConfigError} For the flag without a command, or a variable that
 *   is not one of those words.
 */
export function passTokenSetting(
  flags: CliFlags,
  env: EnvReader,
  wrapping: boolean,
): boolean {
  if (flags.passToken && !wrapping) {
    throw new ConfigError(
      "--pass-token gives the workspace token to the server wrapped after --: it needs a command after --",
      "--pass-token",
    );
  }
  return wrapping && (read(flags, env, "passToken") ?? false);
}

/**
 * The wrapped server's environment: ours, without {@link SECRET_VARIABLES},
 * {@link TOKEN_PATH_VARIABLES}, and any variable whose value holds one of
 * `secrets` (every token and secret known at start). With `passToken` (the
 * workspace token at start), `MOLECULE_WORKSPACE_TOKEN` is set to it, a
 * variable holding that token (and no other secret) is kept, and so is
 * `MOLECULE_WORKSPACE_TOKEN_FILE`.
 *
 * @example
 * ```ts
 * import { childEnvironment } from "./child_env.ts";
 * const { env } = childEnvironment(
 *   { PATH: "/usr/bin", MOLECULE_WORKSPACE_TOKEN: "tok-0123456789" },
 *   { secrets: ["tok-0123456789"] },
 * );
 * console.log(env); // { PATH: "/usr/bin" }
 * ```
 *
 * @param parent Our environment.
 * @param options The secrets known, and the token to pass, if any.
 * @returns The child's whole environment, and the variables of other names
 *   left out because their value holds a token or secret of ours (names
 *   only, for one warning line).
 */
export function childEnvironment(
  parent: Record<string, string | undefined>,
  options: { secrets: Iterable<string>; passToken?: string },
): { env: Record<string, string>; leftOut: string[] } {
  const pass = options.passToken;
  const secrets = [...options.secrets].filter((value) =>
    value.length >= MIN_MASKED_LENGTH && value !== pass
  );
  const env: Record<string, string> = {};
  const leftOut: string[] = [];
  const withheld = [...SECRET_VARIABLES, ...TOKEN_PATH_VARIABLES];
  for (const [name, value] of Object.entries(parent)) {
    if (value === undefined) continue;
    const kept = pass !== undefined && name === "MOLECULE_WORKSPACE_TOKEN_FILE";
    if (!kept && withheld.includes(name)) continue;
    if (!kept && secrets.some((secret) => value.includes(secret))) {
      leftOut.push(name);
    } else env[name] = value;
  }
  if (pass !== undefined) env.MOLECULE_WORKSPACE_TOKEN = pass;
  return { env, leftOut };
}
