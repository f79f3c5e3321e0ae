/**
 * The `molecule-heartbeat` command: flags and environment in, library
 * options out, plus what only a process has (exit codes, signals, log sinks,
 * the health port). No heartbeat logic lives here. `cli.ts` and `mod.ts`
 * (run as the main module) both call {@link runAsMain}.
 *
 * @module
 */
import { processEnv } from "../shared/env.ts";
import { ConfigError } from "../shared/errors.ts";
import { maskSecrets } from "../shared/mask.ts";
import { resolveToken } from "../shared/token.ts";
import { VERSION } from "../shared/version.ts";
import {
  type HeartbeatHandle,
  startHeartbeat,
} from "../schedule/start_heartbeat.ts";
import type { HeartbeatStatus, WorkspaceConfig } from "../schedule/types.ts";
import { startingMetrics } from "../schedule/_counters.ts";
import { tidyConfigsDir } from "../storage/configs_dir.ts";
import { defaultFileSystem } from "../storage/default_file_system.ts";
import { FileSecretStore } from "../storage/file_secret_store.ts";
import { denoProcessAdapter, SpawnError } from "./child.ts";
import { passTokenSetting } from "./child_env.ts";
import { EXIT, runUntilDone } from "./run.ts";
import { STALE_AFTER_MS } from "../shared/constants.ts";
import { earlyLogFormat, lookup, parseFlags, read, setting } from "./flags.ts";
import {
  rememberEnvironmentSecrets,
  rememberStoredSecrets,
} from "./known_secrets.ts";
import { configureLogging, log, printError } from "./logging.ts";
import { commandArgs, environment, exitProcess, writeText } from "./host.ts";
import { permissionErrorMessage, requirePermission } from "./permissions.ts";
import {
  followShare,
  shardSetting,
  shareOf,
  summarizeIds,
  waitForShare,
} from "./shard.ts";
import {
  configsDirSetting,
  healthSetting,
  maxInFlightSetting,
  missingPlatformUrl,
  originSetting,
  platformUrlIfSet,
} from "./settings.ts";
import {
  type WorkspacesFileChanges,
  workspacesSetting,
  workspacesSource,
} from "./workspaces.ts";
import type { Wrapped } from "./wrap.ts";

export { EXIT } from "./run.ts";

/** What the command reads from its surroundings; tests pass their own. */
export interface CliContext {
  /** Arguments after the program name. @default {the process's arguments} */
  args?: string[];
  /** Reads one environment variable; `undefined` when unset. @default {the process environment} */
  env?: (name: string) => string | undefined;
  /** Where `--help` and `--version` go. @default {stdout} */
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
  const args = context.args ?? commandArgs();
  const env = context.env ?? processEnv;
  const stdout = context.stdout ?? ((text) => writeText("stdout", text));
  // Until the flags are read, the format their text asks for: every error
  // line, even one about a flag, comes in the format asked for.
  let format = earlyLogFormat(args, env);
  let flushLogs = (_ms: number) => Promise.resolve();
  const cleanups: (() => Promise<void>)[] = [];
  // Before anything is parsed: no error line can echo these.
  const envSecrets = rememberEnvironmentSecrets(env);
  try {
    // What follows the first `--` is the command to run as a child
    // (wrapper mode).
    const at = args.indexOf("--");
    const command = at === -1 ? undefined : args.slice(at + 1);
    if (command?.length === 0) {
      throw new ConfigError(
        "-- must be followed by the command to run beside the heartbeat, such as: -- npx -y @modelcontextprotocol/server-everything",
        "--",
      );
    }
    const flags = parseFlags(at === -1 ? args : args.slice(0, at), !!command);
    if (flags.help) {
      const { helpText } = await import("./help.ts");
      stdout(helpText());
      return EXIT.ok;
    }
    if (flags.version) {
      stdout(`molecule-heartbeat ${VERSION}\n`);
      return EXIT.ok;
    }
    // Deno: every permission the run needs is asked before anything starts
    // (docs/cli.md has the narrow line); the settings come first.
    if (context.env === undefined) {
      requirePermission(
        { name: "env" },
        "to read PLATFORM_URL, WORKSPACE_ID and its other settings from the environment",
      );
    }
    format = read(flags, env, "logFormat") ?? "text";
    const verbose = read(flags, env, "verbose") ?? false;
    if (command && flags.once) {
      throw new ConfigError(
        "--once cannot be combined with a command after --: --once sends one beat and exits, a command runs until it ends",
        "--once",
      );
    }
    // Each undefined when unset: the library applies its own default.
    const killAfterMs = read(flags, env, "killAfter");
    const orgId = read(flags, env, "orgId");
    const statePollEvery = read(flags, env, "statePoll");
    const staleWindowMs = read(flags, env, "staleWindow");
    const maxInFlight = maxInFlightSetting(flags, env);
    const wedgedAfterMs = read(flags, env, "wedgedAfter");
    const origin = originSetting(flags, env);
    const orgRequestShare = read(flags, env, "orgShare");
    const passToken = passTokenSetting(flags, env, command !== undefined);
    // --shard N --total-shards M: only the list's workspaces of shard N.
    const shard = shardSetting(flags, env, command !== undefined);
    // Logs go through a bounded queue written off the event loop: a reader
    // of our stderr that stalls or goes away never stops the heartbeat.
    // Deno never loads Node's adapter (its `node:` modules).
    const adapter = "Deno" in globalThis
      ? denoProcessAdapter()
      : (await import("./child_node.ts")).nodeProcessAdapter();
    const { createLogWriter } = await import("./log_writer.ts");
    const logWriter = createLogWriter(adapter.stderr());
    flushLogs = (ms) => logWriter.flush(ms);
    await configureLogging(
      { format, verbose: verbose || flags.demo },
      (line) => logWriter.write(line),
    );

    const warnings: string[] = [];
    const intervalMs = read(flags, env, "interval") ??
      (flags.demo ? 2_000 : undefined);
    const stale = staleWindowMs ?? STALE_AFTER_MS;
    if (intervalMs !== undefined && intervalMs > stale / 3) {
      warnings.push(
        `${lookup(flags, env, "interval")?.where ?? "--interval"} is ${
          intervalMs / 1000
        } s: the platform marks a workspace offline after ${
          stale / 1000
        } s without a heartbeat (its stale window), so a missed beat or two will show it OFFLINE`,
      );
    }
    const health = healthSetting(flags, env);
    const fs = await defaultFileSystem();

    // A watched workspaces file adds and removes workspaces as it changes.
    const fileChanges: WorkspacesFileChanges = {};
    let platformUrl: string;
    let platformShown: string;
    let workspaces: WorkspaceConfig[];
    let configsDir: string;
    if (flags.demo) {
      const { startDemo } = await import("./demo.ts");
      const started = await startDemo(setting(flags.configsDir), intervalMs!);
      cleanups.push(...started.cleanups);
      ({ platformUrl, workspaces, configsDir } = started);
      platformShown = platformUrl;
    } else {
      // PLATFORM_URL may be left out when every workspace entry has its
      // own platform_url (then no workspace is served at the default).
      // Checked before the configs dir is looked at.
      const defaultUrl = platformUrlIfSet(flags, env, warnings);
      // Only a list's entries can carry their own platform_url; with
      // --workspace-id beside a list, the flag serves that one instead.
      const source = workspacesSource(flags, env);
      const list = source.kind === "file" || source.kind === "json";
      if (defaultUrl === undefined && !list) {
        const listToo = setting(env("MOLECULE_WORKSPACES")) ??
          setting(env("MOLECULE_WORKSPACES_FILE"));
        throw missingPlatformUrl(
          source.kind === "id" && source.where === "--workspace-id" && listToo
            ? " (--workspace-id serves that one workspace instead of the workspaces list)"
            : "",
        );
      }
      configsDir = await configsDirSetting(flags, env, fs, warnings);
      for (const name of ["read", "write"] as const) {
        requirePermission(
          { name, path: configsDir },
          `to keep the inbound secret and issued tokens in the configs dir ${configsDir}`,
        );
      }
      // Before a token is read from it: a token a killed process left in a
      // temporary file is put in place (or removed), stale ones go.
      await tidyConfigsDir(configsDir, { fs });
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
      for (const url of new Set(workspaces.map((w) => w.platformUrl))) {
        // Deno grants network access per host and port, spelled out.
        const { hostname, port, protocol } = new URL(url ?? platformUrl);
        requirePermission(
          {
            name: "net",
            host: `${hostname}:${port || (protocol === "https:" ? 443 : 80)}`,
          },
          `to reach the platform at ${url ?? platformUrl}`,
        );
      }
      if (defaultUrl === undefined && orgId !== undefined) {
        warnings.push(
          "the org id (--org-id, MOLECULE_ORG_ID or MOLECULE_ORGANIZATION_ID) is not sent: it goes only to PLATFORM_URL, and every workspace here has its own platform_url",
        );
      }
    }
    for (const warning of warnings) log.warn(warning);
    const listed = workspaces.length;
    workspaces = shareOf(workspaces, shard);

    if (passToken && (workspaces.length !== 1 || fileChanges.watched)) {
      const where = flags.passToken ? "--pass-token" : "MOLECULE_PASS_TOKEN";
      throw new ConfigError(
        `${where} passes one workspace's token to the server: serve one workspace (WORKSPACE_ID and its token), not a list`,
        where,
      );
    }
    // Every secret known at start is known to masking before the first
    // request: stored inbound secrets and issued tokens of the configs dir
    // (the platform may quote one in an error body); the health token, as
    // the environment's, is known already.
    const storedSecrets = await rememberStoredSecrets(fs, configsDir);

    // Wrapper mode: every workspace's token at start, by id (a token
    // function asked once; a failing one is left out).
    const startTokens = new Map<string, string>();
    for (const { id, token } of command ? workspaces : []) {
      const value = await resolveToken(token).catch(() => "");
      if (value) startTokens.set(id, value);
    }
    // Wrapper mode's tracker, made first: /metrics reads its tool calls.
    // What only one kind of run needs is loaded by that run alone.
    const wrapper = command ? await import("./wrap.ts") : undefined;
    const tracker = wrapper?.createMcpTracker({
      // A tool's error text may quote the environment.
      mask: (text) => maskSecrets(text, { extra: startTokens.values() }),
      wedgedAfterMs,
    });
    const started: { hb?: HeartbeatHandle } = {};
    // The health port is bound before the child and the registers start: a
    // port in use exits 2 with nothing started. A request needs the
    // heartbeat only when it comes; until it exists (a few ms), the
    // snapshot says no workspace has beaten yet.
    if (health) {
      const { startHealthServer, offLoopbackWarning } = await import(
        "../health/server.ts"
      );
      const healthServer = await startHealthServer({
        status: () =>
          started.hb?.status() ?? startingStatus(workspaces, intervalMs),
        metrics: () =>
          started.hb?.metrics() ?? startingMetrics(workspaces.length),
        mcp: tracker,
        logLinesDropped: () => logWriter.dropped,
        shard,
      }, { ...health, staleWindowMs }).catch((error) => {
        throw healthBindError(error, health);
      });
      cleanups.push(() => healthServer.close());
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
    const perWorkspace = workspaces.length > 1 ||
      fileChanges.watched === true || shard !== undefined;
    // The inbound secrets and the tokens the platform issues:
    // `.platform_inbound_secret` and `.auth_token` (the file a single
    // workspace's token falls back to), or one of each per workspace.
    const secretStore = new FileSecretStore({
      dir: configsDir,
      perWorkspace,
      fs,
    });
    // Wrapper mode: the child starts before register and beats, never after.
    let wrapped: Wrapped | undefined;
    if (command && tracker && wrapper) {
      requirePermission(
        { name: "run", command: command[0] },
        `to start ${command[0]}`,
      );
      const { childEnvironment, startWrapped } = wrapper;
      try {
        // The server's environment is ours without our secrets.
        const childEnv = childEnvironment(environment(), {
          secrets: [
            ...startTokens.values(),
            ...envSecrets,
            ...storedSecrets,
          ],
          passToken: passToken ? startTokens.get(workspaces[0].id) : undefined,
        });
        if (childEnv.leftOut.length > 0) {
          log.warn(
            "left {names} out of the server's environment: each holds a token or secret of ours (--pass-token passes the workspace token on purpose)",
            { names: childEnv.leftOut.join(", ") },
          );
        }
        wrapped = await startWrapped({
          adapter,
          command,
          env: childEnv.env,
          killAfterMs,
          tracker,
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
    if (shard && workspaces.length === 0) {
      // An empty share is legitimate (more shards than workspaces): ready
      // with none until a re-partition gives it some, or the run ends.
      const share = await waitForShare(fileChanges, shard, {
        listed,
        once: flags.once,
        signal: context.signal,
      });
      if (share === undefined) return EXIT.ok;
      workspaces = share;
    }
    const hb = started.hb = startHeartbeat({
      platformUrl,
      workspaces,
      intervalMs,
      secretStore,
      env,
      orgId,
      statePollEvery,
      maxInFlight,
      origin,
      orgRequestShare,
      checkStateAtStart: flags.once,
      // --once beats every workspace now (the cap still bounds how many at
      // once), not spread over the interval's phases.
      beatGroupSize: flags.once ? Math.max(1, workspaces.length) : undefined,
      // Each workspace's own failure lines with --verbose; a summary otherwise.
      summarizeLogs: !verbose,
      stats: tracker && (() => tracker.stats()),
      // Register says an MCP server runs beside the agent (issue 17 point 7).
      mcpServerPresent: command !== undefined,
      staleWindowMs,
    });
    cleanups.unshift(() => hb.stop());
    fileChanges.listener = followShare(hb, shard, fileChanges);
    log.info(
      shard
        ? "molecule-heartbeat {version}: shard {shard} of {totalShards} (numbered from 0), {count} of the list's {listed} workspace(s), every {seconds} s, platform {platformUrl}"
        : "molecule-heartbeat {version}: {count} workspace(s), every {seconds} s, platform {platformUrl}",
      {
        version: VERSION,
        count: workspaces.length,
        seconds: hb.status().intervalMs / 1000,
        platformUrl: platformShown,
        ...(shard
          ? { shard: shard.index, totalShards: shard.total, listed }
          : {}),
      },
    );

    // The heartbeat stops first among the cleanups.
    return await runUntilDone(hb, {
      once: flags.once,
      demo: flags.demo,
      signal: context.signal,
      wrapped,
    });
  } catch (error) {
    // Or Deno refused something the checks above could not foresee.
    const message = error instanceof ConfigError
      ? error.message
      : permissionErrorMessage(error);
    if (message === undefined) throw error;
    printError(message, format);
    return EXIT.config;
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
  return exitProcess(code);
}

/**
 * The error when the health port cannot be bound, naming what to fix: a port taken or
 * reserved is the port's fault; Deno without network permission is the
 * run's; an address that does not resolve or is not this machine's is the
 * host's. Both runtimes set `code` (`EADDRINUSE`, `EACCES`,
 * `EADDRNOTAVAIL`, `ENOTFOUND`); the text is the fallback.
 */
function healthBindError(
  error: unknown,
  { host, port }: { host: string; port: number },
): ConfigError {
  const code = String((error as { code?: unknown } | undefined)?.code ?? "");
  const text = error instanceof Error ? error.message : String(error);
  const denied = permissionErrorMessage(error);
  const [fix, name] = denied !== undefined
    ? [denied, "--health-port"]
    : code === "EADDRINUSE" || code === "EACCES" ||
        /in use|permission denied/i.test(text)
    ? ["pick another --health-port", "--health-port"]
    : [
      "set --health-host (MOLECULE_HEALTH_HOST) to an address of this machine, such as 127.0.0.1 or 0.0.0.0",
      "--health-host",
    ];
  return new ConfigError(
    `cannot serve health on ${host}:${port} (${text}): ${fix}`,
    name,
  );
}

/**
 * The health snapshot in the few ms between binding the port and starting
 * the heartbeat: every workspace configured, none registered or beaten yet
 * (what the heartbeat itself reports just after it starts).
 */
function startingStatus(
  workspaces: WorkspaceConfig[],
  intervalMs: number | undefined,
): HeartbeatStatus {
  return {
    stopped: false,
    intervalMs,
    uptimeSeconds: 0,
    workspaces: workspaces.map((w) => ({
      workspaceId: w.id,
      registered: false,
      rejected: false,
      deleted: false,
      paused: false,
      sinceLastSuccessMs: undefined,
      lastError: "starting",
    })),
  } as HeartbeatStatus;
}
