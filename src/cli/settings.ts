/**
 * The command's settings from flags and environment variables, each with an
 * error that names what to fix (the workspaces and their tokens are in
 * `workspaces.ts`).
 *
 * @module
 */
import { HEARTBEAT_INTERVAL_MS } from "../shared/constants.ts";
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
 * The tenant id sent as `X-Molecule-Org-Id`, from `--org-id` or
 * `MOLECULE_ORG_ID`.
 *
 * @throws {ConfigError} When it is not a valid header value.
 */
export function orgIdSetting(
  flags: CliFlags,
  env: EnvReader,
): string | undefined {
  const { raw, where } = flagOrEnv(
    flags.orgId,
    "--org-id",
    env,
    "MOLECULE_ORG_ID",
  );
  if (raw !== undefined && !/^[\x21-\x7e]{1,256}$/.test(raw)) {
    throw new ConfigError(
      `${where} must be printable ASCII without spaces, at most 256 characters`,
      where,
    );
  }
  return raw;
}

/**
 * `--state-poll N`: ask the platform for each workspace's state every N
 * beats (0, the default: only after a refused token).
 *
 * @throws {ConfigError} When not a whole number from 0 to 1000000.
 */
export function statePollSetting(flags: CliFlags): number {
  const raw = setting(flags.statePoll);
  if (raw === undefined) return 0;
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
      `${where} is ${seconds} s: the platform marks a workspace offline after about 90 s without a heartbeat, so one missed beat will show it OFFLINE`,
    );
  }
  return seconds * 1000;
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
  const { raw, where } = flagOrEnv(
    flags.platformUrl,
    "--platform-url",
    env,
    "PLATFORM_URL",
  );
  if (raw === undefined) {
    throw new ConfigError(
      "PLATFORM_URL is not set: set it (or --platform-url) to your Molecule platform's base URL, such as https://your-tenant.molecule.example",
      "PLATFORM_URL",
    );
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(
      `${where} must be an absolute http(s) URL, such as https://your-tenant.molecule.example, not "${raw}"`,
      where,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(
      `${where} must be an http or https URL, not ${url.protocol}`,
      where,
    );
  }
  if (url.username || url.password) {
    throw new ConfigError(
      `${where} must not carry a user name or password; the token authenticates`,
      where,
    );
  }
  if (url.search || url.hash) {
    throw new ConfigError(
      `${where} must be a base URL without ?query or #fragment`,
      where,
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
