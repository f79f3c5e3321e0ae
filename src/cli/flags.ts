/**
 * Every flag and variable of the command, once: {@link FLAGS} drives the
 * command line's parser, the typed reading of each setting ({@link read}),
 * `--help`, and the test that `docs/cli.md` documents each. Our flags come
 * before `--`, the command to wrap after it.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { EnvReader } from "../shared/env.ts";
import { HEARTBEAT_INTERVAL_MS, STALE_AFTER_MS } from "../shared/constants.ts";
import { ConfigError } from "../shared/errors.ts";

/** One flag or variable (or both: a flag beats its variable). */
export interface Entry {
  /** As `--help` shows it: `--name VALUE` takes a value, `--name` is a switch. */
  readonly flag?: string;
  /** The one-letter alias of a switch. */
  readonly short?: string;
  /** The variable, or the variables in precedence order. */
  readonly env?: string | readonly string[];
  /** What it does, and its default, for `--help`. */
  readonly help: string;
  /** What a valid value is: `<flag or variable> must be <rule>, not "<value>"`. */
  readonly rule?: string;
  /** The value from its trimmed text; `undefined` when it breaks the rule. */
  readonly parse?: (raw: string, where: string, warnings: string[]) => unknown;
  /** Never quoted in its error. */
  readonly secret?: boolean;
}

const DECIMAL = /^(\d+\.?\d*|\.\d+)$/;
const WHOLE = /^\d+$/;
/** The interval takes a sign and an exponent too. */
const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * A parser of a number from `min` to `max` whose text matches `pattern`;
 * with `seconds`, a number of seconds, to whole milliseconds.
 */
function numberIn(
  min: number,
  max: number,
  pattern = DECIMAL,
  seconds = false,
) {
  return (raw: string): number | undefined => {
    const n = pattern.test(raw) ? Number(raw) : NaN;
    if (!(n >= min && n <= max)) return undefined;
    return seconds ? Math.round(n * 1000) : n;
  };
}

/** An `Origin`: `none` is `""` (send none); else `http(s)://host[:port]`, normalised. */
function parseOrigin(raw: string): string | undefined {
  if (raw.toLowerCase() === "none") return "";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  const isOrigin = (url.protocol === "http:" || url.protocol === "https:") &&
    url.username === "" && url.password === "" && url.pathname === "/" &&
    !/[?#]/.test(raw) && !/^[a-z]+:\/\/[^/]*\/./i.test(raw);
  return isOrigin ? url.origin : undefined;
}

/** Every flag and variable: its name(s), what it does, and how its value is read. */
export const FLAGS = {
  platformUrl: {
    flag: "--platform-url URL",
    env: "PLATFORM_URL",
    help:
      'the platform\'s base URL (required, unless every workspaces entry has its own "platform_url")',
  },
  workspaceId: {
    flag: "--workspace-id ID",
    env: "WORKSPACE_ID",
    help: "the workspace to serve (a lower-case UUID)",
  },
  token: {
    env: "MOLECULE_WORKSPACE_TOKEN",
    help:
      "its token (no flag: every user of the machine can read a command line)",
  },
  tokenFile: {
    flag: "--token-file PATH",
    env: "MOLECULE_WORKSPACE_TOKEN_FILE",
    help:
      "read the token from PATH (the flag first, the variable after MOLECULE_WORKSPACE_TOKEN; default <configs dir>/.auth_token)",
  },
  workspacesFile: {
    flag: "--workspaces-file PATH",
    env: "MOLECULE_WORKSPACES_FILE",
    help:
      'several workspaces: a JSON array [{"id": "...", "token": "..."}, ...] (an entry may add "platform_url"), re-read when it changes',
  },
  workspaces: {
    env: "MOLECULE_WORKSPACES",
    help: "the same JSON array, inline; wins over WORKSPACE_ID",
  },
  shard: {
    flag: "--shard N",
    env: "MOLECULE_SHARD",
    help:
      "serve only shard N (0 to M-1) of the workspaces list: the ids that hash to it (jump consistent hash); a changed workspaces file is split again",
  },
  totalShards: {
    flag: "--total-shards M",
    env: "MOLECULE_TOTAL_SHARDS",
    help:
      "how many processes share the list (set both or neither; not with WORKSPACE_ID, --demo or --)",
    rule: "a whole number of shards from 1 to 65536",
    parse: numberIn(1, 65_536, WHOLE),
  },
  configsDir: {
    flag: "--configs-dir DIR",
    env: "CONFIGS_DIR",
    help:
      "where .platform_inbound_secret and .auth_token live, and a token the platform issues is stored (default /configs if writable, else ~/.molecule-workspace)",
  },
  interval: {
    flag: "--interval SECONDS",
    env: "MOLECULE_HEARTBEAT_INTERVAL",
    help: `seconds between beats (default ${
      HEARTBEAT_INTERVAL_MS / 1000
    }; fractions allowed; 0.05 to 3600)`,
    rule: "a number of seconds from 0.05 to 3600 (such as 20 or 0.5)",
    // (Over a third of the stale window is warned about where both are read.)
    parse: numberIn(0.05, 3600, FLOAT, true),
  },
  staleWindow: {
    flag: "--stale-window SECONDS",
    env: "MOLECULE_STALE_WINDOW",
    help: `the platform's stale window (default ${
      STALE_AFTER_MS / 1000
    }): readiness follows it (no register after a gap: an accepted beat brings a workspace back)`,
    rule:
      "a whole number of seconds from 1 to 86400 (the platform's REMOTE_LIVENESS_STALE_AFTER, 180 by default)",
    parse: numberIn(1, 86_400, WHOLE, true),
  },
  statePoll: {
    flag: "--state-poll N",
    help:
      "ask the platform for each workspace's state every N beats, to notice a pause or a deletion (default 15; 0: only after a refused token)",
    rule: "a whole number of beats (0 for off)",
    parse: numberIn(0, 1_000_000, WHOLE),
  },
  orgId: {
    flag: "--org-id ID",
    env: ["MOLECULE_ORG_ID", "MOLECULE_ORGANIZATION_ID"],
    help:
      "send X-Molecule-Org-Id: ID on /workspaces/... requests (multi-tenant platforms; never on /registry/*)",
    rule: "printable ASCII, 1 to 128 characters (the org's UUID)",
    parse: (raw: string) => /^[\x20-\x7e]{1,128}$/.test(raw) ? raw : undefined,
  },
  orgShare: {
    flag: "--org-share FRACTION",
    env: "MOLECULE_ORG_SHARE",
    help:
      "the share of the org's rate window (600 a minute, shared with the org's people in the canvas) that requests with X-Molecule-Org-Id may use, all workspaces together (default 0.1; above 0, at most 1)",
    rule:
      "a fraction above 0 and at most 1 (such as 0.1, the default: a tenth of the org's rate window, which the org's people share with us)",
    parse: numberIn(Number.MIN_VALUE, 1),
  },
  origin: {
    flag: "--origin ORIGIN",
    env: "MOLECULE_ORIGIN",
    help:
      'the Origin header sent (default: the platform URL\'s origin; "none" sends none). Behind a proxy that rewrites Host, the platform refuses that origin (403, empty body): set the origin the platform sees, or none',
    rule:
      'an origin, http(s)://host[:port] without a path (such as https://your-tenant.molecule.example), or "none" to send no Origin header',
    parse: parseOrigin,
  },
  maxInFlight: {
    flag: "--max-in-flight N",
    env: "MOLECULE_MAX_IN_FLIGHT",
    help:
      "requests in flight at most (default: from the open-files limit, 16 to 1024), plus up to 8 registers; a beat that finds it full waits for a free slot",
    rule: "a whole number of requests from 1 to 65536",
    parse: numberIn(1, 65_536, WHOLE),
  },
  logFormat: {
    flag: "--log-format FORMAT",
    env: "MOLECULE_LOG_FORMAT",
    help: "text (default) or json (one object a line); logs go to stderr only",
    rule: '"text" or "json"',
    parse: (raw: string) =>
      (["text", "json"] as const).find((format) =>
        format === raw.toLowerCase()
      ),
  },
  verbose: {
    flag: "--verbose",
    short: "v",
    env: "MOLECULE_MCP_VERBOSE",
    help: "info-level logs (default: warnings and errors)",
    parse: () => true,
  },
  healthPort: {
    flag: "--health-port PORT",
    env: "MOLECULE_HEALTH_PORT",
    help:
      "serve GET /healthz (liveness), /readyz (readiness), /metrics (Prometheus) and /status",
    rule: "a port number from 0 to 65535",
    parse: numberIn(0, 65_535, WHOLE),
  },
  healthHost: {
    flag: "--health-host HOST",
    env: "MOLECULE_HEALTH_HOST",
    help:
      "the health address (default 127.0.0.1; off loopback, /status needs MOLECULE_HEALTH_TOKEN as a bearer)",
  },
  healthToken: {
    env: "MOLECULE_HEALTH_TOKEN",
    help: "the bearer token /status takes off loopback",
    rule:
      "16 to 4096 printable ASCII characters without spaces, such as the output of: openssl rand -hex 32",
    parse: (raw: string) =>
      /^[\x21-\x7e]{16,4096}$/.test(raw) ? raw : undefined,
    secret: true,
  },
  killAfter: {
    flag: "--kill-after SECONDS",
    help:
      "with -- COMMAND: time from a signal to the child's group to SIGKILL for it (default 10)",
    rule: "a number of seconds from 0 to 3600",
    parse: numberIn(0, 3600, DECIMAL, true),
  },
  wedgedAfter: {
    flag: "--wedged-after SECONDS",
    env: "MOLECULE_WEDGED_AFTER",
    help:
      'with -- COMMAND: a tool call unanswered this long (or a server silent this long with calls pending) makes beats say runtime_state "wedged" (default 300; 0 turns it off)',
    rule: "a number of seconds from 0 (off) to 86400",
    parse: numberIn(0, 86_400, DECIMAL, true),
  },
  passToken: {
    flag: "--pass-token",
    env: "MOLECULE_PASS_TOKEN",
    help:
      "with -- COMMAND: give the server the workspace token (the variable: 1, true, yes or on). Off by default: the server, and through it the MCP client and its model, can read its environment",
    rule: "1, true, yes or on (or 0, false, no, off)",
    parse: (raw: string) =>
      /^(1|true|yes|on)$/i.test(raw) ||
      (/^(0|false|no|off)$/i.test(raw) ? false : undefined),
  },
  once: {
    flag: "--once",
    help: "register and send one beat per workspace, then exit (not with --)",
  },
  demo: {
    flag: "--demo",
    help: "run against a platform emulator started in-process (no setup)",
  },
  help: { flag: "--help", short: "h", help: "this text" },
  version: { flag: "--version", short: "V", help: "the version" },
  agentName: {
    env: "MOLECULE_AGENT_NAME",
    help:
      "the agent card's name (default molecule-mcp-<first 8 characters of the id>)",
  },
  agentDescription: {
    env: "MOLECULE_AGENT_DESCRIPTION",
    help: "the agent card's description",
  },
  agentSkills: {
    env: "MOLECULE_AGENT_SKILLS",
    help: "the agent card's skills, comma-separated",
  },
} as const satisfies Record<string, Entry>;

type Flags = typeof FLAGS;

/** A setting's name in {@link FLAGS}. */
export type SettingName = keyof Flags;

/** The command line as parsed: a flag's text, or whether a switch is on. */
export type CliFlags = {
  -readonly [K in SettingName as Flags[K] extends { flag: string } ? K : never]:
    Flags[K] extends { flag: `${string} ${string}` } ? string | undefined
      : boolean;
};

/** A setting's type: what its parser returns, else its text. */
export type SettingValue<K extends SettingName> = Flags[K] extends
  { parse: (...args: never[]) => infer T } ? Exclude<T, undefined> : string;

/** `parseArgs`' options, by flag name (`interval`), and each one's setting. */
const OPTIONS: Record<string, { type: "string" | "boolean"; short?: string }> =
  {};
const NAMES: Record<string, string> = {};
for (const [key, entry] of Object.entries(FLAGS) as [string, Entry][]) {
  if (entry.flag === undefined) continue;
  const [name, value] = entry.flag.slice(2).split(" ");
  OPTIONS[name] = value ? { type: "string" } : { type: "boolean" };
  if (entry.short) OPTIONS[name].short = entry.short;
  NAMES[name] = key;
}

/** Trimmed value, or `undefined` when unset or whitespace-only. */
export function setting(value: string | undefined): string | undefined {
  return value?.trim() || undefined;
}

/**
 * Where a setting is set, and its trimmed text: the flag, else the first
 * of its variables that is set (a blank value counts as unset).
 *
 * @returns The text and the flag or variable it came from; `undefined` when unset.
 */
export function lookup(
  flags: CliFlags,
  env: EnvReader,
  name: SettingName,
): { raw: string; where: string } | undefined {
  const entry: Entry = FLAGS[name];
  const given = (flags as Record<string, unknown>)[name];
  const raw = typeof given === "string" ? setting(given) : undefined;
  if (raw !== undefined) return { raw, where: entry.flag!.split(" ")[0] };
  for (const variable of [entry.env ?? []].flat()) {
    const value = setting(env(variable));
    if (value !== undefined) return { raw: value, where: variable };
  }
  return undefined;
}

/**
 * A setting's value, as {@link FLAGS} says to read it: a switch that is on
 * is `true`; else the flag's or the variable's text, parsed.
 *
 * @example
 * ```ts
 * import { envFromRecord } from "../shared/env.ts";
 * import { parseFlags, read } from "./flags.ts";
 * const env = envFromRecord({ MOLECULE_HEARTBEAT_INTERVAL: "30" });
 * read(parseFlags(["--interval", "0.5"]), env, "interval"); // 500
 * read(parseFlags([]), env, "interval"); // 30000
 * read(parseFlags([]), envFromRecord({}), "interval"); // undefined: the library's default
 * ```
 *
 * @param flags The command line.
 * @param env The environment.
 * @param name The setting.
 * @param warnings Where a value that works but looks wrong is warned about.
 * @returns The value; `undefined` when neither the flag nor a variable is set.
 * @throws {ConfigError} Naming the flag or variable, when the value breaks its rule.
 */
export function read<K extends SettingName>(
  flags: CliFlags,
  env: EnvReader,
  name: K,
  warnings: string[] = [],
): SettingValue<K> | undefined {
  const entry: Entry = FLAGS[name];
  if ((flags as Record<string, unknown>)[name] === true) {
    return true as SettingValue<K>;
  }
  const found = lookup(flags, env, name);
  if (found === undefined || entry.parse === undefined) {
    return found?.raw as SettingValue<K> | undefined;
  }
  const value = entry.parse(found.raw, found.where, warnings);
  if (value !== undefined) return value as SettingValue<K>;
  throw new ConfigError(
    `${found.where} must be ${entry.rule}${
      entry.secret ? "" : `, not ${JSON.stringify(found.raw)}`
    }`,
    found.where,
  );
}

/**
 * Parses the command line; unknown flags and stray arguments are errors. An
 * argument that is not a flag is almost always a server command missing its
 * `--` (some clients' `mcp add` commands drop it): the error says so and
 * names it.
 *
 * @param args The arguments after the program name, up to `--`.
 * @param beforeCommand Whether a `--` and a command follow `args`.
 * @returns The flags.
 * @throws {ConfigError} For an unknown flag, a missing value, or an argument.
 */
export function parseFlags(args: string[], beforeCommand = false): CliFlags {
  // `--token VALUE` is refused with the two ways that exist, never echoing
  // the value: a command line is readable by every user of the machine
  // (`ps`, `/proc/PID/cmdline`) and is often logged by the client that
  // starts us. Other flags' values cannot be a token: only this one is
  // checked (before anything else reads the arguments).
  if (args.some((arg) => arg === "--token" || arg.startsWith("--token="))) {
    throw new ConfigError(
      "--token is not accepted: a command line can be read by every user of this machine (ps) and is often logged. " +
        "Give the token in the variable MOLECULE_WORKSPACE_TOKEN, or put it in a file only you can read and pass --token-file PATH (or MOLECULE_WORKSPACE_TOKEN_FILE=PATH)",
      "--token",
    );
  }
  const stray = strayArgument(args);
  if (stray !== undefined) {
    // The rest is the server's command line, which may hold its secrets: not echoed.
    throw new ConfigError(
      beforeCommand
        ? `unexpected argument "${stray}" before --: our flags go before --, the server's command and all its arguments after it`
        : `unexpected argument "${stray}": did you forget \`--\` before the server's command? Write our flags, then --, then the command: molecule-heartbeat [flags] -- ${stray} [its arguments]`,
      "--",
    );
  }
  try {
    const { values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: OPTIONS,
    });
    const flags: Record<string, unknown> = {};
    for (const [name, key] of Object.entries(NAMES)) {
      flags[key] = values[name] ??
        (OPTIONS[name].type === "boolean" ? false : undefined);
    }
    return flags as CliFlags;
  } catch (error) {
    const message = (error instanceof Error ? error.message : String(error))
      .split("\n").map((line) => line.trim().replace(/\.$/, "")).filter(Boolean)
      .join("; ");
    throw new ConfigError(`${message}. Run with --help for the flags.`);
  }
}

/**
 * The first argument that is neither a flag nor a flag's value, unless an
 * unknown flag comes before it (then that flag is the mistake to report).
 */
function strayArgument(args: string[]): string | undefined {
  for (const token of looseTokens(args)) {
    if (token.kind === "option" && !(token.name in OPTIONS)) return undefined;
    if (token.kind === "positional") {
      // deno-lint-ignore no-control-regex
      const value = token.value.replace(/[\u0000-\u001f\u007f]/g, "?");
      return value.length > 64 ? `${value.slice(0, 64)}…` : value;
    }
  }
  return undefined;
}

/** The arguments as read leniently: unknown flags and stray arguments too. */
function looseTokens(args: string[]) {
  return parseArgs({
    args,
    strict: false,
    allowPositionals: true,
    tokens: true,
    options: OPTIONS,
  }).tokens;
}

/**
 * The log format for an error met before the flags are read (a flag that
 * does not parse): the last `--log-format` among our own arguments (before
 * `--`) that is set, else `MOLECULE_LOG_FORMAT`; `"text"` otherwise. A
 * collector that asked for JSON lines gets one for every error.
 */
export function earlyLogFormat(
  args: string[],
  env: EnvReader,
): "text" | "json" {
  let raw = setting(env("MOLECULE_LOG_FORMAT"));
  for (const token of looseTokens(args)) {
    if (token.kind === "option-terminator") break;
    if (token.kind === "option" && token.name === "log-format") {
      raw = setting(token.value) ?? raw;
    }
  }
  return FLAGS.logFormat.parse(raw ?? "") ?? "text";
}
