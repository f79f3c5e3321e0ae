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
        "stale-window": { type: "string" },
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
      staleWindow: values["stale-window"],
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
