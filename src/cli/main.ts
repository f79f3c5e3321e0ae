/**
 * The `molecule-heartbeat` command: flags and environment in, library
 * options out, plus what only a process has (exit codes, signals, log sinks,
 * the health port). No heartbeat logic lives here. `cli.ts` and `mod.ts`
 * (run as the main module) both call {@link runAsMain}.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import process from "node:process";
import { LOG_CATEGORY } from "../shared/constants.ts";
import { type EnvReader, processEnv } from "../shared/env.ts";
import { ConfigError } from "../shared/errors.ts";
import { maskSecrets } from "../shared/mask.ts";
import { VERSION } from "../shared/version.ts";
import { createMcpStreamTap } from "../mcp/stream_tap.ts";
import { createMcpTracker, type McpTracker } from "../mcp/tracker.ts";
import {
  type HeartbeatHandle,
  startHeartbeat,
} from "../schedule/start_heartbeat.ts";
import type {
  HeartbeatStatus,
  WorkspaceConfig,
  WorkspaceStatus,
} from "../schedule/types.ts";
import { startingMetrics } from "../schedule/_counters.ts";
import { defaultFileSystem } from "../storage/default_file_system.ts";
import { FileSecretStore } from "../storage/file_secret_store.ts";
import { FileTokenStore } from "../storage/file_token_store.ts";
import { SpawnError } from "./child.ts";
import { configsDirSetting } from "./configs.ts";
import { EXIT } from "./exit_codes.ts";
import { parseFlags, splitCommandLine } from "./flags.ts";
import { followWorkspacesFile, summarizeIds } from "./follow_workspaces.ts";
import type { HealthServer } from "../health/server.ts";
import { helpText } from "./help.ts";
import { configureLogging, printError } from "./logging.ts";
import { processAdapter } from "./process_adapter.ts";
import { runUntilDone } from "./run.ts";
import { runWrapped } from "./run_wrapped.ts";
import {
  earlyLogFormat,
  healthSetting,
  intervalSetting,
  killAfterSetting,
  logSettings,
  maxInFlightSetting,
  orgIdSetting,
  platformUrlIfSet,
  setting,
  staleWindowSetting,
  statePollSetting,
} from "./settings.ts";
import { wedgedAfterSetting } from "./wedged_after.ts";
import {
  noListWithoutUrl,
  workspacesSetting,
  workspacesSource,
} from "./workspaces.ts";
import type { Wrapped } from "./wrap.ts";

export { EXIT } from "./exit_codes.ts";

const log = getLogger([...LOG_CATEGORY, "cli"]);

/** What the command reads from its surroundings; tests pass their own. */
export interface CliContext {
  /** Arguments after the program name. @default {process.argv.slice(2)} */
  args?: string[];
  /** The environment. @default {the process environment} */
  env?: EnvReader;
  /** Where `--help` and `--version` go. @default {process.stdout} */
  stdout?: (text: string) => void;
  /** Ends the run early (instead of SIGINT/SIGTERM), with exit code 0 (143 during `--once`). */
  signal?: AbortSignal;
}

/**
 * Runs the command and resolves with its exit code; never calls
 * `process.exit` itself ({@link runAsMain} does).
 *
 * @example
 * ```ts ignore
 * import { main } from "@molecule/heartbeat/cli";
 * Deno.exit(await main({ args: ["--demo", "--once"] }));
 * ```
 *
 * @param context Arguments, environment and output.
 * @returns The exit code.
 */
export async function main(context: CliContext = {}): Promise<number> {
  const args = context.args ?? process.argv.slice(2);
  const env = context.env ?? processEnv;
  const stdout = context.stdout ??
    ((text: string) => void process.stdout.write(text));
  // Until the flags are read, the format their text asks for: every error
  // line, even one about a flag, comes in the format asked for.
  let format = earlyLogFormat(args, env);
  let flushLogs = (_ms: number) => Promise.resolve();
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const commandLine = splitCommandLine(args);
    const flags = parseFlags(
      commandLine.own,
      commandLine.command !== undefined,
    );
    if (flags.help) {
      stdout(helpText());
      return EXIT.ok;
    }
    if (flags.version) {
      stdout(`molecule-heartbeat ${VERSION}\n`);
      return EXIT.ok;
    }
    const logSet = logSettings(flags, env);
    format = logSet.format;
    const command = commandLine.command;
    if (command && flags.once) {
      throw new ConfigError(
        "--once cannot be combined with a command after --: --once sends one beat and exits, a command runs until it ends",
        "--once",
      );
    }
    const killAfterMs = killAfterSetting(flags);
    const orgId = orgIdSetting(flags, env);
    const statePollEvery = statePollSetting(flags);
    const staleWindowMs = staleWindowSetting(flags, env);
    const maxInFlight = maxInFlightSetting(flags, env);
    const wedgedAfterMs = wedgedAfterSetting(flags, env);
    // Logs go through a bounded queue written off the event loop: a reader
    // of our stderr that stalls or goes away never stops the heartbeat.
    const adapter = await processAdapter();
    const { createLogWriter } = await import("./log_writer.ts");
    const logWriter = createLogWriter(adapter.stderr());
    flushLogs = (ms) => logWriter.flush(ms);
    await configureLogging(
      { ...logSet, verbose: logSet.verbose || flags.demo },
      (line) => logWriter.write(line),
    );

    const warnings: string[] = [];
    const demo = flags.demo;
    const intervalMs = demo && setting(flags.interval) === undefined &&
        setting(env("MOLECULE_HEARTBEAT_INTERVAL")) === undefined
      ? 2_000
      : intervalSetting(flags, env, warnings);
    const health = healthSetting(flags, env);
    const fs = await defaultFileSystem();

    // A watched workspaces file adds and removes workspaces as it changes.
    const fileChanges: {
      listener?: (workspaces: WorkspaceConfig[]) => void;
      watched?: boolean;
    } = {};
    let platformUrl: string;
    let platformShown: string;
    let workspaces: WorkspaceConfig[];
    let configsDir: string;
    if (demo) {
      const { startDemo } = await import("./demo.ts");
      const started = await startDemo(setting(flags.configsDir), intervalMs);
      cleanups.push(...started.cleanups);
      ({ platformUrl, workspaces, configsDir } = started);
      platformShown = platformUrl;
    } else {
      // PLATFORM_URL may be left out when every workspace entry has its
      // own platform_url (then no workspace is served at the default).
      // Checked before the configs dir is looked at.
      const defaultUrl = platformUrlIfSet(flags, env, warnings);
      if (defaultUrl === undefined) {
        const error = noListWithoutUrl(workspacesSource(flags, env), env);
        if (error) throw error;
      }
      configsDir = await configsDirSetting(flags, env, fs, warnings);
      workspaces = await workspacesSetting({
        flags,
        env,
        fs,
        configsDir,
        warnings,
        changes: fileChanges,
        noPlatformUrl: defaultUrl === undefined,
      });
      // Without PLATFORM_URL every entry has a URL of its own (the parser
      // refuses one without, at start and on every re-read of a watched
      // file), so the library's default is never the address of a request.
      platformUrl = defaultUrl ?? workspaces[0].platformUrl!;
      platformShown = defaultUrl ?? summarizeIds([
        ...new Set(workspaces.map((w) => w.platformUrl!)),
      ]);
      if (defaultUrl === undefined && orgId !== undefined) {
        warnings.push(
          "the org id (--org-id, MOLECULE_ORG_ID or MOLECULE_ORGANIZATION_ID) is not sent: it goes only to PLATFORM_URL, and every workspace here has its own platform_url",
        );
      }
    }
    for (const warning of warnings) log.warn(warning);

    // Wrapper mode's tracker, made first: /metrics reads its tool calls.
    const tracker: McpTracker | undefined = command
      ? createMcpTracker({ mask: await tokenMasker(workspaces), wedgedAfterMs })
      : undefined;
    let healthServer: HealthServer | undefined;
    const started: { hb?: HeartbeatHandle } = {};
    // The health port is bound before the child and the registers start: a
    // port in use exits 2 with nothing started. A request needs the
    // heartbeat only when it comes; until it exists (a few ms), the
    // snapshot says no workspace has beaten yet.
    if (health) {
      const { startHealthServer, offLoopbackWarning } = await import(
        "../health/server.ts"
      );
      try {
        healthServer = await startHealthServer({
          status: () =>
            started.hb?.status() ?? startingStatus(workspaces, intervalMs),
          metrics: () =>
            started.hb?.metrics() ?? startingMetrics(workspaces.length),
          ...(tracker ? { mcp: tracker } : {}),
          logLinesDropped: () => logWriter.dropped,
        }, { ...health, staleWindowMs });
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        const { fix, name } = healthBindFix(error);
        throw new ConfigError(
          `cannot serve health on ${health.host}:${health.port} (${reason}): ${fix}`,
          name,
        );
      }
      cleanups.push(() => healthServer!.close());
      log.info(
        "health: {url}/healthz, {url}/readyz, {url}/metrics and {url}/status",
        { url: healthServer.url },
      );
      if (healthServer.exposed) {
        log.warn(
          offLoopbackWarning(healthServer.url, health.token !== undefined),
        );
      }
    }
    // One file per workspace with several, or with a watched workspaces
    // file (it may grow from one entry to several: they must not share one).
    const perWorkspace = workspaces.length > 1 || fileChanges.watched === true;
    const secretStore = new FileSecretStore({
      dir: configsDir,
      perWorkspace,
      fs,
    });
    // Tokens the platform issues, beside the secrets: `.auth_token` (the
    // file a single workspace's token falls back to) or one per workspace.
    const tokenStore = new FileTokenStore({
      dir: configsDir,
      perWorkspace,
      fs,
    });
    // Wrapper mode: the child starts before register and beats, never after.
    let wrapped: Wrapped | undefined;
    if (command && tracker) {
      const { startWrapped } = await import("./wrap.ts");
      try {
        wrapped = await startWrapped({
          adapter,
          command: command[0],
          args: command.slice(1),
          killAfterMs,
          tap: createMcpStreamTap(tracker),
        });
      } catch (error) {
        if (!(error instanceof SpawnError)) throw error;
        printError(error.message, format);
        return error.exitCode;
      }
      log.info("started {command} (pid {pid}, its own process group)", {
        command: command[0],
        pid: wrapped.child.pid,
      });
    }
    const stopSignal = new AbortController();
    const hb = started.hb = startHeartbeat({
      platformUrl,
      workspaces,
      intervalMs,
      secretStore,
      tokenStore,
      env,
      signal: stopSignal.signal,
      orgId,
      statePollEvery,
      maxInFlight,
      checkStateAtStart: flags.once,
      // Each workspace's own failure lines with --verbose; a summary otherwise.
      summarizeLogs: !logSet.verbose,
      ...(tracker ? { stats: () => tracker.stats() } : {}),
      // Register says an MCP server runs beside the agent (issue 17 point 7).
      mcpServerPresent: command !== undefined,
      staleWindowMs,
    });
    cleanups.unshift(() => hb.stop());
    fileChanges.listener = (next) => followWorkspacesFile(hb, next);
    log.info(
      "molecule-heartbeat {version}: {count} workspace(s), every {seconds} s, platform {platformUrl}",
      {
        version: VERSION,
        count: workspaces.length,
        seconds: intervalMs / 1000,
        platformUrl: platformShown,
      },
    );

    const code = wrapped
      ? await runWrapped(hb, wrapped, context.signal)
      : await runUntilDone(hb, {
        once: flags.once,
        demo,
        signal: context.signal,
        ids: workspaces.map((w) => w.id),
      });
    stopSignal.abort();
    return code;
  } catch (error) {
    if (error instanceof ConfigError) {
      printError(error.message, format);
      return EXIT.config;
    }
    throw error;
  } finally {
    // Everything settles well within the 2 s a supervisor allows; never wait longer.
    let timer: ReturnType<typeof setTimeout> | undefined;
    // In order: the heartbeat (and its secret writes) before the dir it writes to.
    const inOrder = async () => {
      for (const cleanup of cleanups) await cleanup().catch(() => {});
    };
    await Promise.race([
      inOrder(),
      new Promise((r) => timer = setTimeout(r, 1500)),
    ]);
    clearTimeout(timer);
    await flushLogs(500);
  }
}

/**
 * Runs the command as the process: its exit code is the process's, and a
 * finished run never waits on stdin or on a timer left behind. What
 * `cli.ts`, `mod.ts` as the main module, the installed command and a
 * compiled binary all run.
 *
 * @param context Arguments, environment and output.
 * @returns Never: the process exits with the command's code.
 */
export async function runAsMain(context: CliContext = {}): Promise<never> {
  const code = await main(context);
  process.exit(code);
}

/**
 * What to fix when the health port cannot be bound: a port taken or
 * reserved is the port's fault; Deno without network permission is the
 * run's; an address that does not resolve or is not this machine's is the
 * host's. Both runtimes set `code` (`EADDRINUSE`, `EACCES`,
 * `EADDRNOTAVAIL`, `ENOTFOUND`); the text is the fallback.
 */
function healthBindFix(error: unknown): { fix: string; name: string } {
  const code = String((error as { code?: unknown } | undefined)?.code ?? "");
  const name = error instanceof Error ? error.name : "";
  const text = error instanceof Error ? error.message : String(error);
  if (name === "NotCapable" || /Requires net access/.test(text)) {
    return {
      fix: "allow network access (deno run -A, or --allow-net)",
      name: "--health-port",
    };
  }
  if (
    code === "EADDRINUSE" || code === "EACCES" ||
    /in use|permission denied/i.test(text)
  ) {
    return { fix: "pick another --health-port", name: "--health-port" };
  }
  return {
    fix:
      "set --health-host (MOLECULE_HEALTH_HOST) to an address of this machine, such as 127.0.0.1 or 0.0.0.0",
    name: "--health-host",
  };
}

/**
 * The health snapshot in the few ms between binding the port and starting
 * the heartbeat: every workspace configured, none registered or beaten yet
 * (what the heartbeat itself reports just after it starts).
 */
function startingStatus(
  workspaces: WorkspaceConfig[],
  intervalMs: number,
): HeartbeatStatus {
  return {
    stopped: false,
    intervalMs,
    uptimeSeconds: 0,
    workspaces: workspaces.map((w) =>
      ({
        workspaceId: w.id,
        registered: false,
        rejected: false,
        deleted: false,
        paused: false,
        sinceLastSuccessMs: undefined,
        lastError: "starting",
      }) as WorkspaceStatus
    ),
  } as HeartbeatStatus;
}

/**
 * Masks every token known at start out of texts sent to the platform (a
 * tool's error text may quote the environment).
 */
async function tokenMasker(
  workspaces: WorkspaceConfig[],
): Promise<(text: string) => string> {
  const tokens = new Set<string>();
  for (const ws of workspaces) {
    const token = typeof ws.token === "string"
      ? ws.token
      : await Promise.resolve(ws.token()).catch(() => "");
    if (token) tokens.add(token);
  }
  return (text) => maskSecrets(text, { extra: tokens });
}
