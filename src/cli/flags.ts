/**
 * The command line: our flags before `--`, the command to wrap after it.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError } from "../shared/errors.ts";

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
  staleWindow?: string;
  maxInFlight?: string;
  wedgedAfter?: string;
  once: boolean;
  demo: boolean;
  help: boolean;
  version: boolean;
}

const OPTIONS = {
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
  "stale-window": { type: "string" },
  "max-in-flight": { type: "string" },
  "wedged-after": { type: "string" },
  "once": { type: "boolean" },
  "demo": { type: "boolean" },
  "help": { type: "boolean", short: "h" },
  "version": { type: "boolean", short: "V" },
} as const;

/**
 * Parses the command line; unknown flags and stray arguments are errors. An
 * argument that is not a flag is almost always a server command missing its
 * `--` (some clients' `mcp add` commands drop it): the error says so and
 * names it.
 *
 * @param args The arguments after the program name (before `--`).
 * @param beforeCommand Whether a `--` and a command follow `args`.
 * @returns The flags.
 * @throws {ConfigError} For an unknown flag, a missing value, or an argument.
 */
export function parseFlags(args: string[], beforeCommand = false): CliFlags {
  const stray = strayArgument(args);
  if (stray !== undefined && beforeCommand) {
    throw new ConfigError(
      `unexpected argument "${stray}" before --: our flags go before --, the server's command and all its arguments after it`,
      "--",
    );
  }
  if (stray !== undefined) {
    // The rest is the server's command line, which may hold its secrets: not echoed.
    throw new ConfigError(
      `unexpected argument "${stray}": did you forget \`--\` before the server's command? Write our flags, then --, then the command: molecule-heartbeat [flags] -- ${stray} [its arguments]`,
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
      staleWindow: values["stale-window"],
      maxInFlight: values["max-in-flight"],
      wedgedAfter: values["wedged-after"],
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

/**
 * The first argument that is neither a flag nor a flag's value, unless an
 * unknown flag comes before it (then that flag is the mistake to report).
 */
function strayArgument(args: string[]): string | undefined {
  const { tokens } = parseArgs({
    args,
    strict: false,
    allowPositionals: true,
    tokens: true,
    options: OPTIONS,
  });
  for (const token of tokens) {
    if (token.kind === "option" && !(token.name in OPTIONS)) return undefined;
    if (token.kind === "positional") {
      // deno-lint-ignore no-control-regex
      const value = token.value.replace(/[\u0000-\u001f\u007f]/g, "?");
      return value.length > 64 ? `${value.slice(0, 64)}…` : value;
    }
  }
  return undefined;
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
