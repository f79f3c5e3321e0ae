/**
 * The command's configuration: flags and environment variables turned into
 * library options, with an error that names what to fix for every mistake.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { HEARTBEAT_INTERVAL_MS } from "../constants.ts";
import type { EnvReader } from "../env.ts";
import { ConfigError } from "../errors.ts";
import type { FileSystem } from "../file_system.ts";
import type { WorkspaceConfig } from "../start_heartbeat.ts";
import { fileToken, type WatchedFile, watchFile } from "../watched_file.ts";
import { rememberSecret } from "../mask.ts";
import { isValidToken } from "../token.ts";
import {
  isValidWorkspaceId,
  MAX_WORKSPACE_ID_LENGTH,
} from "../workspace_id.ts";

/** Most bytes read from a token file. */
export const MAX_TOKEN_FILE_BYTES = 16 * 1024;
/** Most bytes read from a workspaces file. */
export const MAX_WORKSPACES_FILE_BYTES = 64 * 1024 * 1024;
/** Shortest interval the command accepts, in seconds. */
export const MIN_INTERVAL_SECONDS = 0.05;

/** What a valid token is, for error messages (never the token itself). */
const TOKEN_RULE =
  "a token is 1 to 4096 visible ASCII characters, without spaces or line breaks (a second line or a stray quote is a common cause)";

/**
 * The reason `JSON.parse` failed, without the input it quotes (which may
 * hold a token): the position only.
 */
export function jsonErrorWithoutInput(error: unknown): string {
  const message = error instanceof Error ? error.message : "";
  const at = /position (\d+)/.exec(message) ?? /column (\d+)/.exec(message);
  return at
    ? `a syntax error near character ${at[1]}`
    : "a syntax error (check commas, quotes and brackets)";
}

/** Where the canvas issues tokens; named in every token error. */
export const TOKENS_HINT =
  "Generate a workspace token in the canvas → Tokens tab.";

/** Parsed command-line flags. */
export interface CliFlags {
  platformUrl?: string;
  workspaceId?: string;
  tokenFile?: string;
  workspacesFile?: string;
  configsDir?: string;
  interval?: string;
  logFormat?: string;
  verbose: boolean;
  healthPort?: string;
  healthHost?: string;
  killAfter?: string;
  orgId?: string;
  statePoll?: string;
  maxInFlight?: string;
  once: boolean;
  demo: boolean;
  help: boolean;
  version: boolean;
}

/**
 * Parses the command line; unknown flags and stray arguments are errors.
 *
 * @param args The arguments after the program name.
 * @returns The flags.
 * @throws {ConfigError} For an unknown flag, a missing value, or an argument.
 */
export function parseFlags(args: string[]): CliFlags {
  try {
    const { values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        "platform-url": { type: "string" },
        "workspace-id": { type: "string" },
        "token-file": { type: "string" },
        "workspaces-file": { type: "string" },
        "configs-dir": { type: "string" },
        "interval": { type: "string" },
        "log-format": { type: "string" },
        "verbose": { type: "boolean", short: "v" },
        "health-port": { type: "string" },
        "health-host": { type: "string" },
        "kill-after": { type: "string" },
        "org-id": { type: "string" },
        "state-poll": { type: "string" },
        "max-in-flight": { type: "string" },
        "once": { type: "boolean" },
        "demo": { type: "boolean" },
        "help": { type: "boolean", short: "h" },
        "version": { type: "boolean", short: "V" },
      },
    });
    return {
      platformUrl: values["platform-url"],
      workspaceId: values["workspace-id"],
      tokenFile: values["token-file"],
      workspacesFile: values["workspaces-file"],
      configsDir: values["configs-dir"],
      interval: values.interval,
      logFormat: values["log-format"],
      verbose: values.verbose ?? false,
      healthPort: values["health-port"],
      healthHost: values["health-host"],
      killAfter: values["kill-after"],
      orgId: values["org-id"],
      statePoll: values["state-poll"],
      maxInFlight: values["max-in-flight"],
      once: values.once ?? false,
      demo: values.demo ?? false,
      help: values.help ?? false,
      version: values.version ?? false,
    };
  } catch (error) {
    const message = (error instanceof Error ? error.message : String(error))
      .split("\n").map((line) => line.trim().replace(/\.$/, "")).filter(Boolean)
      .join("; ");
    throw new ConfigError(`${message}. Run with --help for the flags.`);
  }
}

/** The command line split at the first `--`: our flags, and the command to wrap. */
export interface CommandLine {
  /** The arguments before `--` (all of them when there is none). */
  own: string[];
  /** The command and its arguments after `--`; `undefined` when there is no `--`. */
  command: string[] | undefined;
}

/**
 * Splits the arguments at the first `--`: what follows is the command to
 * run as a child (wrapper mode).
 *
 * @throws {ConfigError} When `--` is followed by nothing.
 */
export function splitCommandLine(args: string[]): CommandLine {
  const at = args.indexOf("--");
  if (at === -1) return { own: args, command: undefined };
  const command = args.slice(at + 1);
  if (command.length === 0) {
    throw new ConfigError(
      "-- must be followed by the command to run beside the heartbeat, such as: -- npx -y @modelcontextprotocol/server-everything",
      "--",
    );
  }
  return { own: args.slice(0, at), command };
}

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
 * The soft limit on open files (`RLIMIT_NOFILE`), from `/proc/self/limits`
 * where there is one (Linux); `undefined` elsewhere.
 */
export function openFileLimit(
  read: () => string = () => readFileSync("/proc/self/limits", "utf8"),
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
function flagOrEnv(
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

/**
 * Parses a `MOLECULE_WORKSPACES` JSON array: objects with non-empty string
 * `id` and `token`, ids unique. Every error names the entry's index.
 *
 * @param text The JSON.
 * @param where The variable or file it came from, for messages.
 * @returns Id and token pairs, in order.
 * @throws {ConfigError} For invalid JSON, a non-array, an empty array, or a bad entry.
 */
export function parseWorkspacesJson(
  text: string,
  where: string,
): { id: string; token: string }[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      `${where} is not valid JSON (${
        jsonErrorWithoutInput(error)
      }); expected [{"id": "...", "token": "..."}, ...]`,
      where,
    );
  }
  if (!Array.isArray(value)) {
    throw new ConfigError(
      `${where} must be a JSON array of {"id": "...", "token": "..."} objects`,
      where,
    );
  }
  if (value.length === 0) {
    throw new ConfigError(
      `${where} is an empty array: list at least one {"id": "...", "token": "..."}`,
      where,
    );
  }
  const seen = new Map<string, number>();
  return value.map((entry, index) => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new ConfigError(
        `${where} entry ${index} is not an object; expected {"id": "...", "token": "..."}`,
        where,
      );
    }
    const { id, token } = entry as Record<string, unknown>;
    if (typeof id !== "string" || !id.trim()) {
      throw new ConfigError(
        `${where} entry ${index} has no "id" (a non-empty string)`,
        where,
      );
    }
    if (typeof token !== "string" || !token.trim()) {
      throw new ConfigError(
        `${where} entry ${index} (id ${id.trim()}) has no "token" (a non-empty string). ${TOKENS_HINT}`,
        where,
      );
    }
    const cleanId = id.trim();
    if (!isValidWorkspaceId(cleanId)) {
      throw new ConfigError(
        `${where} entry ${index} has an "id" with control characters or over ${MAX_WORKSPACE_ID_LENGTH} characters`,
        where,
      );
    }
    const cleanToken = token.trim();
    if (!isValidToken(cleanToken)) {
      throw new ConfigError(
        `${where} entry ${index} (id ${cleanId}) has a "token" that cannot be sent: ${TOKEN_RULE}`,
        where,
      );
    }
    rememberSecret(cleanToken);
    const first = seen.get(cleanId);
    if (first !== undefined) {
      throw new ConfigError(
        `${where} entry ${index} repeats id ${cleanId} of entry ${first}`,
        where,
      );
    }
    seen.set(cleanId, index);
    return { id: cleanId, token: cleanToken };
  });
}

/** Everything needed to find the workspaces and their tokens. */
export interface WorkspaceSources {
  flags: CliFlags;
  env: EnvReader;
  fs: FileSystem;
  /** The resolved configs dir, for `.auth_token`. */
  configsDir: string;
  warnings: string[];
  /**
   * With a workspaces file: set `listener` to hear of every new version of
   * it (every entry as a workspace), to add and remove workspaces.
   */
  changes?: { listener?: (workspaces: WorkspaceConfig[]) => void };
}

/** A workspace whose token is looked up in a watched workspaces file. */
function fileEntry(
  id: string,
  token: string,
  file: { path: string; get(): Promise<Map<string, string>> },
): WorkspaceConfig {
  let last = token;
  return {
    id,
    tokenSource: `the workspaces file ${file.path}`,
    tokenReread: true,
    // The file is re-read when it changes; an id that left it keeps its last token.
    token: async () => {
      last = (await file.get()).get(id) ?? last;
      return last;
    },
  };
}

/**
 * The workspaces to serve, in precedence order: `--workspaces-file`,
 * `--workspace-id`, `MOLECULE_WORKSPACES_FILE`, `MOLECULE_WORKSPACES`,
 * `WORKSPACE_ID`. A single workspace's token comes from `--token-file`,
 * `MOLECULE_WORKSPACE_TOKEN` or `<configs dir>/.auth_token`. Tokens in files
 * are re-read when the file changes.
 *
 * @throws {ConfigError} When there is no workspace or no token, or a file is unreadable or malformed.
 */
export async function workspacesSetting(
  src: WorkspaceSources,
): Promise<WorkspaceConfig[]> {
  const { flags, env } = src;
  const flagFile = setting(flags.workspacesFile);
  const flagId = setting(flags.workspaceId);
  if (flagFile !== undefined) {
    return await workspacesFromFile(flagFile, "--workspaces-file", src);
  }
  if (flagId !== undefined) {
    return [{
      id: checkedId(flagId, "--workspace-id"),
      ...await singleToken(flagId, src),
    }];
  }
  const envFile = setting(env("MOLECULE_WORKSPACES_FILE"));
  if (envFile !== undefined) {
    return await workspacesFromFile(envFile, "MOLECULE_WORKSPACES_FILE", src);
  }
  const json = setting(env("MOLECULE_WORKSPACES"));
  if (json !== undefined) {
    return parseWorkspacesJson(json, "MOLECULE_WORKSPACES").map((w) => ({
      ...w,
      tokenSource: "MOLECULE_WORKSPACES",
    }));
  }
  const id = setting(env("WORKSPACE_ID"));
  if (id !== undefined) {
    return [{
      id: checkedId(id, "WORKSPACE_ID"),
      ...await singleToken(id, src),
    }];
  }
  throw new ConfigError(
    "no workspace to serve: set WORKSPACE_ID (or --workspace-id) and MOLECULE_WORKSPACE_TOKEN, " +
      `or MOLECULE_WORKSPACES / --workspaces-file for several. ${TOKENS_HINT}`,
    "WORKSPACE_ID",
  );
}

function checkedId(id: string, where: string): string {
  if (!isValidWorkspaceId(id)) {
    throw new ConfigError(
      `${where} must be a workspace id without control characters, at most ${MAX_WORKSPACE_ID_LENGTH} characters`,
      where,
    );
  }
  return id;
}

/** A workspace's token, and where it came from (for the revoked-token error). */
type TokenWithSource = Pick<
  WorkspaceConfig,
  "token" | "tokenSource" | "tokenReread"
>;

async function singleToken(
  id: string,
  src: WorkspaceSources,
): Promise<TokenWithSource> {
  const tokenFile = setting(src.flags.tokenFile);
  if (tokenFile !== undefined) {
    return {
      token: await tokenFromFile(tokenFile, "--token-file", src),
      tokenSource: `the token file ${tokenFile}`,
      tokenReread: true,
    };
  }
  const fromEnv = setting(src.env("MOLECULE_WORKSPACE_TOKEN"));
  if (fromEnv !== undefined) {
    if (!isValidToken(fromEnv)) {
      throw new ConfigError(
        `MOLECULE_WORKSPACE_TOKEN cannot be sent as it is: ${TOKEN_RULE}. ${TOKENS_HINT}`,
        "MOLECULE_WORKSPACE_TOKEN",
      );
    }
    rememberSecret(fromEnv);
    return { token: fromEnv, tokenSource: "MOLECULE_WORKSPACE_TOKEN" };
  }
  const fallback = `${src.configsDir}/.auth_token`;
  if ((await src.fs.stat(fallback).catch(() => undefined)) === undefined) {
    throw new ConfigError(
      `no token for workspace ${id}: set MOLECULE_WORKSPACE_TOKEN, or put the token in ${fallback}, or pass --token-file. ${TOKENS_HINT}`,
      "MOLECULE_WORKSPACE_TOKEN",
    );
  }
  return {
    token: await tokenFromFile(fallback, fallback, src),
    tokenSource: `the token file ${fallback}`,
    tokenReread: true,
  };
}

async function tokenFromFile(
  path: string,
  where: string,
  src: WorkspaceSources,
) {
  await warnIfShared(path, where, src);
  try {
    return await fileToken(path, {
      fs: src.fs,
      maxBytes: MAX_TOKEN_FILE_BYTES,
    });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(
      `cannot read the token from ${where} (${path}): ${reason}. ${TOKENS_HINT}`,
      where,
    );
  }
}

async function workspacesFromFile(
  path: string,
  where: string,
  src: WorkspaceSources,
): Promise<WorkspaceConfig[]> {
  await warnIfShared(path, where, src);
  let file: WatchedFile<Map<string, string>> | undefined;
  try {
    // Parsed once per change into a map: a token is looked up before every
    // beat, and a scan of the list made a fleet of N cost N² (a profile at
    // 10,000 workspaces put it at a third of the CPU).
    file = await watchFile(
      path,
      (text) =>
        new Map(
          parseWorkspacesJson(text, `${where} (${path})`).map((
            e,
          ) => [e.id, e.token]),
        ),
      {
        fs: src.fs,
        maxBytes: MAX_WORKSPACES_FILE_BYTES,
        onChange: (entries) =>
          src.changes?.listener?.(
            [...entries].map(([id, token]) => fileEntry(id, token, file!)),
          ),
      },
    );
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`cannot read ${where} (${path}): ${reason}`, where);
  }
  const initial = await file.get();
  return [...initial].map(([id, token]) => fileEntry(id, token, file!));
}

async function warnIfShared(
  path: string,
  where: string,
  src: WorkspaceSources,
) {
  const info = await src.fs.stat(path).catch(() => undefined);
  if (info && (info.mode & 0o077) !== 0) {
    src.warnings.push(
      `${where} (${path}) is readable by other users (mode ${
        info.mode.toString(8).padStart(4, "0")
      }): it holds tokens; chmod 600 it`,
    );
  }
}

/** Where to serve health, if anywhere. */
export interface HealthSetting {
  port: number;
  host: string;
}

/**
 * `--health-port`/`MOLECULE_HEALTH_PORT` and `--health-host`/`MOLECULE_HEALTH_HOST` (default 127.0.0.1).
 *
 * @throws {ConfigError} For a port that is not a whole number from 0 to 65535.
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
  return { port: Number(raw), host };
}
