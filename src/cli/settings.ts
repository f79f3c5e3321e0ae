/**
 * The command's settings that take more than one flag or variable, or a
 * default of the command's own; each of the others is one `read` of the
 * table in `flags.ts` (the workspaces and their tokens are in
 * `workspaces.ts`). Every error names what to fix.
 *
 * @module
 */
import type { EnvReader } from "../shared/env.ts";
import { ConfigError } from "../shared/errors.ts";
import { type CliFlags, lookup, read, setting } from "./flags.ts";
import { resolveConfigsDir } from "../storage/configs_dir.ts";
import type { FileSystem } from "../storage/file_system.ts";
import { isLoopbackHost } from "../health/exposure.ts";
import { readTextSync, workingDir } from "./host.ts";

/**
 * The cap on requests in flight: `--max-in-flight` or
 * `MOLECULE_MAX_IN_FLIGHT`, else derived from the descriptor limit (half of
 * what is left after 128 for everything else, from 16 to 1024; 256 where the
 * limit is unknown).
 *
 * @throws {ConfigError} When not a whole number from 1 to 65536.
 */
export function maxInFlightSetting(
  flags: CliFlags,
  env: EnvReader,
  readLimit: () => number | undefined = openFileLimit,
): number {
  const set = read(flags, env, "maxInFlight");
  if (set !== undefined) return set;
  const limit = readLimit();
  if (limit === undefined) return 256;
  return Math.max(16, Math.min(1024, Math.floor((limit - 128) / 2)));
}

/**
 * The `Origin` header to send, from `--origin` or `MOLECULE_ORIGIN`:
 * `undefined` when neither is set (each workspace's platform URL's origin,
 * the library's default); `""` for `none`, or for the flag given an empty
 * value (`--origin ""`), to send none; else the origin, normalised
 * (`https://Host:443/` is `https://host`).
 *
 * @throws {ConfigError} When it is not an http(s) origin or `none`.
 */
export function originSetting(
  flags: CliFlags,
  env: EnvReader,
): string | undefined {
  return flags.origin?.trim() === "" ? "" : read(flags, env, "origin");
}

/**
 * The platform base URL from `--platform-url`/`PLATFORM_URL`, as
 * {@link checkedPlatformUrl} takes it, or `undefined` when neither is set (a
 * workspaces list whose every entry has its own `platform_url` needs none).
 *
 * @throws {ConfigError} When set but not an absolute http(s) URL.
 */
export function platformUrlIfSet(
  flags: CliFlags,
  env: EnvReader,
  warnings: string[],
): string | undefined {
  const found = lookup(flags, env, "platformUrl");
  return found && checkedPlatformUrl(found.raw, found.where, warnings);
}

/**
 * The error for a platform URL that is needed and not set.
 *
 * @param hint What else would do, appended to the message. @default {""}
 */
export function missingPlatformUrl(hint = ""): ConfigError {
  return new ConfigError(
    "PLATFORM_URL is not set: set it (or --platform-url) to your Molecule platform's base URL, such as https://your-tenant.molecule.example" +
      hint,
    "PLATFORM_URL",
  );
}

/**
 * A platform base URL checked: absolute http(s), no credentials, query or
 * fragment; trailing `/` removed; plain http off loopback is a warning.
 *
 * @param raw The URL as configured.
 * @param where The variable, flag or entry it came from, for messages.
 * @param warnings Where the plain-http warning goes.
 * @param name The variable or flag to fix. @default {where}
 * @throws {ConfigError} When it is not usable.
 */
export function checkedPlatformUrl(
  raw: string,
  where: string,
  warnings: string[],
  name: string = where,
): string {
  const fail = (what: string) => new ConfigError(`${where} ${what}`, name);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw fail(
      `must be an absolute http(s) URL, such as https://your-tenant.molecule.example, not "${raw}"`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw fail(`must be an http or https URL, not ${url.protocol}`);
  }
  if (url.username || url.password) {
    throw fail(
      "must not carry a user name or password; the token authenticates",
    );
  }
  if (url.search || url.hash) {
    throw fail("must be a base URL without ?query or #fragment");
  }
  if (url.port === "0") {
    throw fail(
      "has port 0, which no server listens on: give the platform's port, or none for the default",
    );
  }
  if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
    warnings.push(
      `${where} uses plain http:// to ${url.hostname}: the workspace token travels in clear. Use https:// unless this network is trusted.`,
    );
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, "");
}

/**
 * Where to serve health, if anywhere: `--health-port`/`MOLECULE_HEALTH_PORT`,
 * `--health-host`/`MOLECULE_HEALTH_HOST` (default 127.0.0.1) and
 * `MOLECULE_HEALTH_TOKEN` (read only with a port: what `/status` needs, and
 * off loopback the ids in `/readyz`).
 *
 * @throws {ConfigError} For a port that is not a whole number from 0 to
 * 65535, or a token shorter than 16 characters or not printable ASCII.
 */
export function healthSetting(
  flags: CliFlags,
  env: EnvReader,
): { port: number; host: string; token?: string } | undefined {
  const port = read(flags, env, "healthPort");
  if (port === undefined) return undefined;
  const token = read(flags, env, "healthToken");
  const host = read(flags, env, "healthHost") ?? "127.0.0.1";
  return token === undefined ? { port, host } : { port, host, token };
}

/**
 * The soft limit on open files (`RLIMIT_NOFILE`), from `/proc/self/limits`
 * where there is one (Linux); `undefined` elsewhere.
 */
export function openFileLimit(
  read: () => string = () => readTextSync("/proc/self/limits"),
): number | undefined {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(read());
    if (!match) return undefined;
    return match[1] === "unlimited" ? Infinity : Number(match[1]);
  } catch {
    return undefined;
  }
}

/**
 * Resolves the configs dir; a dir that is relative (no HOME), writable by
 * others, or cannot be created is a warning, never an error: heartbeats go
 * on, and the inbound secret is stored once it can be.
 */
export async function configsDirSetting(
  flags: CliFlags,
  env: EnvReader,
  fs: FileSystem,
  warnings: string[],
): Promise<string> {
  const configsEnv: EnvReader = setting(flags.configsDir) === undefined
    ? env
    : (name) => name === "CONFIGS_DIR" ? flags.configsDir : env(name);
  const configs = await resolveConfigsDir({ env: configsEnv, fs });
  if (!configs.path.startsWith("/")) {
    warnings.push(
      `HOME is not set and /configs is not writable: the inbound secret goes to ${
        workingDir().replace(/\/$/, "")
      }/${configs.path} (set CONFIGS_DIR to choose)`,
    );
  }
  const dirInfo = configs.problem
    ? undefined
    : await fs.stat(configs.path).catch(() => undefined);
  if (dirInfo && (dirInfo.mode & 0o022) !== 0) {
    warnings.push(
      `the configs dir ${configs.path} is writable by other users (mode ${
        dirInfo.mode.toString(8).padStart(4, "0")
      }): they could replace the inbound secret; chmod 700 it`,
    );
  }
  if (configs.problem) {
    warnings.push(
      `the configs dir ${configs.path} cannot be created or written (${configs.problem}); ` +
        "heartbeats go on, and the inbound secret is stored once it can be",
    );
  }
  return configs.path;
}
