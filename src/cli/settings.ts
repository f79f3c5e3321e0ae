/**
 * The command's settings from flags and environment variables, each with an
 * error that names what to fix (the workspaces and their tokens are in
 * `workspaces.ts`).
 *
 * @module
 */
import { HEARTBEAT_INTERVAL_MS, STALE_AFTER_MS } from "../shared/constants.ts";
import type { EnvReader } from "../shared/env.ts";
import { ConfigError } from "../shared/errors.ts";
import type { CliFlags } from "./flags.ts";
import { openFileLimit } from "./limits.ts";

/** Shortest interval the command accepts, in seconds. */
export const MIN_INTERVAL_SECONDS = 0.05;

/**
 * The grace period between forwarding a signal to the child and SIGKILL,
 * from `--kill-after` (seconds, default 10).
 *
 * @throws {ConfigError} When not a number from 0 to 3600.
 */
export function killAfterSetting(flags: CliFlags): number {
  const raw = setting(flags.killAfter);
  if (raw === undefined) return 10_000;
  const seconds = /^(\d+\.?\d*|\.\d+)$/.test(raw) ? Number(raw) : NaN;
  if (!(seconds >= 0 && seconds <= 3600)) {
    throw new ConfigError(
      `--kill-after must be a number of seconds from 0 to 3600, not "${raw}"`,
      "--kill-after",
    );
  }
  return seconds * 1000;
}

/**
 * The tenant id sent as `X-Molecule-Org-Id` on `/workspaces/…` requests,
 * from `--org-id`, `MOLECULE_ORG_ID` or `MOLECULE_ORGANIZATION_ID` (the
 * Python runtime's alias): printable ASCII, 1 to 128 characters.
 *
 * @throws {ConfigError} When it is not.
 */
export function orgIdSetting(
  flags: CliFlags,
  env: EnvReader,
): string | undefined {
  let { raw, where } = flagOrEnv(
    flags.orgId,
    "--org-id",
    env,
    "MOLECULE_ORG_ID",
  );
  if (raw === undefined) {
    raw = setting(env("MOLECULE_ORGANIZATION_ID"));
    where = "MOLECULE_ORGANIZATION_ID";
  }
  if (raw !== undefined && !/^[\x20-\x7e]{1,128}$/.test(raw)) {
    throw new ConfigError(
      `${where} must be printable ASCII, 1 to 128 characters (the org's UUID)`,
      where,
    );
  }
  return raw;
}

/** Beats between two state questions by default: every 5 minutes at 20 s. */
export const STATE_POLL_DEFAULT = 15;

/**
 * `--state-poll N`: ask the platform for each workspace's state every N
 * beats (default 15; 0 asks only after a refused token), which is how a
 * deleted workspace is noticed: today's platform answers its heartbeats 200.
 *
 * @throws {ConfigError} When not a whole number from 0 to 1000000.
 */
export function statePollSetting(flags: CliFlags): number {
  const raw = setting(flags.statePoll);
  if (raw === undefined) return STATE_POLL_DEFAULT;
  if (!/^\d{1,7}$/.test(raw) || Number(raw) > 1_000_000) {
    throw new ConfigError(
      `--state-poll must be a whole number of beats (0 for off), not "${raw}"`,
      "--state-poll",
    );
  }
  return Number(raw);
}

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
  const { raw, where } = flagOrEnv(
    flags.maxInFlight,
    "--max-in-flight",
    env,
    "MOLECULE_MAX_IN_FLIGHT",
  );
  if (raw !== undefined) {
    if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 65536) {
      throw new ConfigError(
        `${where} must be a whole number of requests from 1 to 65536, not "${raw}"`,
        where,
      );
    }
    return Number(raw);
  }
  const limit = readLimit();
  if (limit === undefined) return 256;
  return Math.max(16, Math.min(1024, Math.floor((limit - 128) / 2)));
}

/** Trimmed value, or `undefined` when unset or whitespace-only. */
export function setting(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

/** Log output settings, known before anything else so errors use them. */
export interface LogSettings {
  format: "text" | "json";
  verbose: boolean;
}

/**
 * Reads `--log-format`/`MOLECULE_LOG_FORMAT` and `--verbose`/`MOLECULE_MCP_VERBOSE`.
 *
 * @throws {ConfigError} For a format other than text or json.
 */
export function logSettings(flags: CliFlags, env: EnvReader): LogSettings {
  const raw = setting(flags.logFormat) ?? setting(env("MOLECULE_LOG_FORMAT")) ??
    "text";
  const format = raw.toLowerCase();
  if (format !== "text" && format !== "json") {
    const where = setting(flags.logFormat)
      ? "--log-format"
      : "MOLECULE_LOG_FORMAT";
    throw new ConfigError(
      `${where} must be "text" or "json", not "${raw}"`,
      where,
    );
  }
  // The reference: any non-empty value of MOLECULE_MCP_VERBOSE raises logging to info.
  return {
    format,
    verbose: flags.verbose || (env("MOLECULE_MCP_VERBOSE") ?? "") !== "",
  };
}

/**
 * The log format for an error met before the flags are read (a flag that
 * does not parse): `--log-format json` or `--log-format=json` among our own
 * arguments (before `--`), else `MOLECULE_LOG_FORMAT`; `"text"` otherwise.
 * A collector that asked for JSON lines gets one for every error.
 */
export function earlyLogFormat(
  args: string[],
  env: EnvReader,
): "text" | "json" {
  // As logSettings reads it: the flag's last value that is set, else the
  // variable's (a blank value counts as unset).
  let raw = setting(env("MOLECULE_LOG_FORMAT"));
  for (let i = 0; i < args.length && args[i] !== "--"; i++) {
    const value = args[i] === "--log-format"
      ? args[i + 1]
      : args[i].startsWith("--log-format=")
      ? args[i].slice("--log-format=".length)
      : undefined;
    raw = setting(value) ?? raw;
  }
  return raw?.toLowerCase() === "json" ? "json" : "text";
}

/** A flag's value, else its variable's, and the name of the one it came from. */
export function flagOrEnv(
  flag: string | undefined,
  flagName: string,
  env: EnvReader,
  variable: string,
): { raw: string | undefined; where: string } {
  const fromFlag = setting(flag);
  return fromFlag !== undefined
    ? { raw: fromFlag, where: flagName }
    : { raw: setting(env(variable)), where: variable };
}

/**
 * The interval in ms from `--interval`/`MOLECULE_HEARTBEAT_INTERVAL` (seconds,
 * fractions allowed), with a warning above 60 s.
 *
 * @throws {ConfigError} When not a number, ≤ 0 or > 3600.
 */
export function intervalSetting(
  flags: CliFlags,
  env: EnvReader,
  warnings: string[],
): number {
  const { raw, where } = flagOrEnv(
    flags.interval,
    "--interval",
    env,
    "MOLECULE_HEARTBEAT_INTERVAL",
  );
  if (raw === undefined) return HEARTBEAT_INTERVAL_MS;
  const seconds = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw)
    ? Number(raw)
    : NaN;
  if (!Number.isFinite(seconds)) {
    throw new ConfigError(
      `${where} must be a number of seconds (such as 20 or 0.5), not "${raw}"`,
      where,
    );
  }
  if (seconds < MIN_INTERVAL_SECONDS || seconds > 3600) {
    throw new ConfigError(
      `${where} must be from ${MIN_INTERVAL_SECONDS} to 3600 seconds, not ${raw}`,
      where,
    );
  }
  if (seconds > 60) {
    warnings.push(
      `${where} is ${seconds} s: the platform marks a workspace offline after 180 s without a heartbeat (its stale window), so a missed beat or two will show it OFFLINE`,
    );
  }
  return seconds * 1000;
}

/**
 * The platform's stale window in ms, from `--stale-window` or
 * `MOLECULE_STALE_WINDOW` (whole seconds, as `REMOTE_LIVENESS_STALE_AFTER`
 * on the platform; default 180): after a gap longer than it, a workspace
 * registers again, and readiness follows it.
 *
 * @throws {ConfigError} When not a whole number of seconds from 1 to 86400.
 */
export function staleWindowSetting(flags: CliFlags, env: EnvReader): number {
  const { raw, where } = flagOrEnv(
    flags.staleWindow,
    "--stale-window",
    env,
    "MOLECULE_STALE_WINDOW",
  );
  if (raw === undefined) return STALE_AFTER_MS;
  if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 86_400) {
    throw new ConfigError(
      `${where} must be a whole number of seconds from 1 to 86400 (the platform's REMOTE_LIVENESS_STALE_AFTER, 180 by default), not "${raw}"`,
      where,
    );
  }
  return Number(raw) * 1000;
}

/**
 * The platform base URL from `--platform-url`/`PLATFORM_URL`: an absolute
 * http(s) URL, trailing `/` removed; plain http off loopback is a warning.
 *
 * @throws {ConfigError} When missing or not an absolute http(s) URL.
 */
export function platformUrlSetting(
  flags: CliFlags,
  env: EnvReader,
  warnings: string[],
): string {
  const url = platformUrlIfSet(flags, env, warnings);
  if (url === undefined) throw missingPlatformUrl();
  return url;
}

/**
 * The platform base URL as {@link platformUrlSetting} reads it, or
 * `undefined` when neither the flag nor the variable is set (a workspaces
 * list whose every entry has its own `platform_url` needs none).
 *
 * @throws {ConfigError} When set but not an absolute http(s) URL.
 */
export function platformUrlIfSet(
  flags: CliFlags,
  env: EnvReader,
  warnings: string[],
): string | undefined {
  const { raw, where } = flagOrEnv(
    flags.platformUrl,
    "--platform-url",
    env,
    "PLATFORM_URL",
  );
  return raw === undefined
    ? undefined
    : checkedPlatformUrl(raw, where, warnings);
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
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(
      `${where} must be an absolute http(s) URL, such as https://your-tenant.molecule.example, not "${raw}"`,
      name,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(
      `${where} must be an http or https URL, not ${url.protocol}`,
      name,
    );
  }
  if (url.username || url.password) {
    throw new ConfigError(
      `${where} must not carry a user name or password; the token authenticates`,
      name,
    );
  }
  if (url.search || url.hash) {
    throw new ConfigError(
      `${where} must be a base URL without ?query or #fragment`,
      name,
    );
  }
  if (url.protocol === "http:" && !isLoopback(url.hostname)) {
    warnings.push(
      `${where} uses plain http:// to ${url.hostname}: the workspace token travels in clear. Use https:// unless this network is trusted.`,
    );
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, "");
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  return h === "localhost" || h.endsWith(".localhost") ||
    /^127\.\d+\.\d+\.\d+$/.test(h) || h === "::1";
}

/** Where to serve health, if anywhere. */
export interface HealthSetting {
  port: number;
  host: string;
  /** `MOLECULE_HEALTH_TOKEN`: what `/status` needs (and off loopback, the ids in `/readyz`). */
  token?: string;
}

/**
 * `--health-port`/`MOLECULE_HEALTH_PORT`, `--health-host`/`MOLECULE_HEALTH_HOST`
 * (default 127.0.0.1) and `MOLECULE_HEALTH_TOKEN`.
 *
 * @throws {ConfigError} For a port that is not a whole number from 0 to
 * 65535, or a token shorter than 16 characters or not printable ASCII.
 */
export function healthSetting(
  flags: CliFlags,
  env: EnvReader,
): HealthSetting | undefined {
  const { raw, where } = flagOrEnv(
    flags.healthPort,
    "--health-port",
    env,
    "MOLECULE_HEALTH_PORT",
  );
  if (raw === undefined) return undefined;
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) {
    throw new ConfigError(
      `${where} must be a port number from 0 to 65535, not "${raw}"`,
      where,
    );
  }
  const host = setting(flags.healthHost) ??
    setting(env("MOLECULE_HEALTH_HOST")) ?? "127.0.0.1";
  const token = setting(env("MOLECULE_HEALTH_TOKEN"));
  if (token !== undefined) {
    if (!/^[\x21-\x7e]{16,4096}$/.test(token)) {
      throw new ConfigError(
        "MOLECULE_HEALTH_TOKEN must be 16 to 4096 printable ASCII characters without spaces, such as the output of: openssl rand -hex 32",
        "MOLECULE_HEALTH_TOKEN",
      );
    }
  }
  return { port: Number(raw), host, ...(token !== undefined ? { token } : {}) };
}
