/**
 * The `molecule-heartbeat` command: flags and environment in, library
 * options out, plus what only a process has (exit codes, signals, log sinks,
 * the health port). No heartbeat logic lives here.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { resolveConfigsDir } from "./src/configs_dir.ts";
import { LOG_CATEGORY } from "./src/constants.ts";
import { type EnvReader, processEnv } from "./src/env.ts";
import { ConfigError } from "./src/errors.ts";
import { FileSecretStore } from "./src/file_secret_store.ts";
import { defaultFileSystem } from "./src/file_system.ts";
import type { PlatformEmulator } from "./src/platform_emulator.ts";
import {
  type HeartbeatEventMap,
  startHeartbeat,
  type WorkspaceConfig,
} from "./src/start_heartbeat.ts";
import { VERSION } from "./src/version.ts";
import {
  healthSetting,
  intervalSetting,
  killAfterSetting,
  logSettings,
  maxInFlightSetting,
  orgIdSetting,
  parseFlags,
  platformUrlSetting,
  setting,
  splitCommandLine,
  statePollSetting,
  workspacesSetting,
} from "./src/cli/config.ts";
import { createMcpTracker, type McpTracker } from "./src/mcp_tracker.ts";
import { createMcpStreamTap } from "./src/mcp_stream_tap.ts";
import { maskForLog } from "./src/http.ts";
import { SpawnError } from "./src/cli/child.ts";
import type { Wrapped } from "./src/cli/wrap.ts";
import type { HealthServer } from "./src/cli/health_server.ts";
import { helpText } from "./src/cli/help.ts";
import { configureLogging, printError } from "./src/cli/logging.ts";

const log = getLogger([...LOG_CATEGORY, "cli"]);

/** Exit codes of the command. */
export const EXIT = {
  ok: 0,
  notAccepted: 1,
  config: 2,
  auth: 3,
  deleted: 4,
} as const;

/** Ids and token of the workspace `--demo` serves. */
const DEMO_WORKSPACE = "demo-0000-4000-8000-heartbeat";
const DEMO_TOKEN = "demo-token-not-a-secret";

/** What the command reads from its surroundings; tests pass their own. */
export interface CliContext {
  /** Arguments after the program name. @default {process.argv.slice(2)} */
  args?: string[];
  /** The environment. @default {the process environment} */
  env?: EnvReader;
  /** Where `--help` and `--version` go. @default {process.stdout} */
  stdout?: (text: string) => void;
  /** Ends the run early (instead of SIGINT/SIGTERM), with exit code 0. */
  signal?: AbortSignal;
}

/**
 * Runs the command and resolves with its exit code; never calls
 * `process.exit` itself (the entry point does).
 *
 * @example
 * ```ts ignore
 * import { main } from "./cli.ts";
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
  let format: "text" | "json" = "text";
  let flushLogs = (_ms: number) => Promise.resolve();
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const commandLine = splitCommandLine(args);
    const flags = parseFlags(commandLine.own);
    if (flags.help) {
      stdout(helpText());
      return EXIT.ok;
    }
    if (flags.version) {
      stdout(`molecule-heartbeat ${VERSION}\n`);
      return EXIT.ok;
    }
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
    const maxInFlight = maxInFlightSetting(flags, env);
    const logSet = logSettings(flags, env);
    format = logSet.format;
    // Logs go through a bounded queue written off the event loop: a reader
    // of our stderr that stalls or goes away never stops the heartbeat.
    const { processAdapter } = await import("./src/cli/child.ts");
    const adapter = await processAdapter();
    const { createLogWriter } = await import("./src/cli/log_writer.ts");
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
    } = {};
    let platformUrl: string;
    let workspaces: WorkspaceConfig[];
    let configsDir: string;
    let emulator: PlatformEmulator | undefined;
    if (demo) {
      // Loaded only for --demo, like the health server below: node:http is
      // not needed (nor its memory spent) for a plain run.
      const { startPlatformEmulator } = await import(
        "./src/platform_emulator.ts"
      );
      emulator = await startPlatformEmulator({
        workspaces: { [DEMO_WORKSPACE]: DEMO_TOKEN },
      });
      cleanups.push(() => emulator!.close());
      platformUrl = emulator.url;
      workspaces = [{ id: DEMO_WORKSPACE, token: DEMO_TOKEN }];
      configsDir = setting(flags.configsDir) ?? "";
      if (!configsDir) {
        const made = await mkdtemp(join(tmpdir(), "molecule-heartbeat-demo-"));
        configsDir = made;
        // The demo's own scratch dir goes when the demo ends.
        cleanups.push(() => rm(made, { recursive: true, force: true }));
      }
      log.info(
        "demo: a platform emulator is listening on {url} (a stand-in for your Molecule platform)",
        {
          url: platformUrl,
        },
      );
      log.info(
        "demo: serving workspace {workspaceId} every {seconds} s; inbound secret goes to {dir}",
        {
          workspaceId: DEMO_WORKSPACE,
          seconds: intervalMs / 1000,
          dir: configsDir,
        },
      );
    } else {
      platformUrl = platformUrlSetting(flags, env, warnings);
      const configsEnv: EnvReader = setting(flags.configsDir) === undefined
        ? env
        : (name) => name === "CONFIGS_DIR" ? flags.configsDir : env(name);
      const configs = await resolveConfigsDir({ env: configsEnv, fs });
      configsDir = configs.path;
      if (!configs.path.startsWith("/")) {
        warnings.push(
          `HOME is not set and /configs is not writable: the inbound secret goes to ${
            join(process.cwd(), configs.path)
          } (set CONFIGS_DIR to choose)`,
        );
      }
      const dirInfo = await fs.stat(configs.path).catch(() => undefined);
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
      workspaces = await workspacesSetting({
        flags,
        env,
        fs,
        configsDir,
        warnings,
        changes: fileChanges,
      });
    }
    for (const warning of warnings) log.warn(warning);

    let healthServer: HealthServer | undefined;
    const secretStore = new FileSecretStore({
      dir: configsDir,
      perWorkspace: workspaces.length > 1,
      fs,
    });
    // Wrapper mode: the child starts before register and beats, never after.
    let wrapped: Wrapped | undefined;
    let tracker: McpTracker | undefined;
    if (command) {
      tracker = createMcpTracker({ mask: await tokenMasker(workspaces) });
      const { startWrapped } = await import("./src/cli/wrap.ts");
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
      log.info("started {command} (pid {pid})", {
        command: command[0],
        pid: wrapped.child.pid,
      });
    }
    const stopSignal = new AbortController();
    const hb = startHeartbeat({
      platformUrl,
      workspaces,
      intervalMs,
      secretStore,
      env,
      signal: stopSignal.signal,
      orgId,
      statePollEvery,
      maxInFlight,
      checkStateAtStart: flags.once,
      // Each workspace's own failure lines with --verbose; a summary otherwise.
      summarizeLogs: !logSet.verbose,
      ...(tracker ? { stats: () => tracker.stats() } : {}),
    });
    cleanups.unshift(() => hb.stop());
    fileChanges.listener = (next) => followWorkspacesFile(hb, next);
    if (health) {
      try {
        const { startHealthServer } = await import(
          "./src/cli/health_server.ts"
        );
        healthServer = await startHealthServer(() => hb.status(), health);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new ConfigError(
          `cannot serve health on ${health.host}:${health.port} (${reason}): pick another --health-port`,
          "--health-port",
        );
      }
      cleanups.push(() => healthServer!.close());
      log.info("health: {url}/healthz and {url}/status", {
        url: healthServer.url,
      });
    }
    log.info(
      "molecule-heartbeat {version}: {count} workspace(s), every {seconds} s, platform {platformUrl}",
      {
        version: VERSION,
        count: workspaces.length,
        seconds: intervalMs / 1000,
        platformUrl,
      },
    );

    if (wrapped) {
      const code = await runWrapped(hb, wrapped, context.signal);
      stopSignal.abort();
      return code;
    }
    const code = await runUntilDone(hb, {
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

type Handle = ReturnType<typeof startHeartbeat>;

/** Serves the entries a workspaces file now lists, and only those. */
function followWorkspacesFile(hb: Handle, next: WorkspaceConfig[]): void {
  const served = new Set(hb.status().workspaces.map((w) => w.workspaceId));
  const listed = new Set(next.map((w) => w.id));
  const added = next.filter((w) => !served.has(w.id));
  const removed = [...served].filter((id) => !listed.has(id));
  for (const ws of added) hb.addWorkspace(ws);
  for (const id of removed) hb.removeWorkspace(id);
  if (added.length > 0) {
    log.warn("workspaces file: now serving {count} more: {ids}", {
      count: added.length,
      ids: summarizeIds(added.map((w) => w.id)),
    });
  }
  if (removed.length > 0) {
    log.warn("workspaces file: no longer serving {count}: {ids}", {
      count: removed.length,
      ids: summarizeIds(removed),
    });
  }
}

/** A few ids, and how many more: a log line a fleet can afford. */
function summarizeIds(ids: string[]): string {
  const shown = ids.slice(0, 5).join(", ");
  return ids.length > 5 ? `${shown} and ${ids.length - 5} more` : shown;
}

/**
 * When every workspace is gone (token rejected at register, or deleted on
 * the platform), the exit code: 4 when every one was deleted, else 3;
 * `undefined` while one is still served.
 */
function goneCode(hb: Handle): number | undefined {
  const all = hb.status().workspaces;
  if (!all.every((w) => w.rejected || w.deleted)) return undefined;
  return all.every((w) => w.deleted) ? EXIT.deleted : EXIT.auth;
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
  return (text) => {
    for (const token of tokens) text = maskForLog(text, token);
    return text;
  };
}

/**
 * Wrapper mode's run: signals go to the child, a rejected token stops it,
 * and the child's end ends the run with its exit code (3 after a rejected
 * token).
 */
async function runWrapped(
  hb: Handle,
  wrapped: Wrapped,
  signal: AbortSignal | undefined,
): Promise<number> {
  let gone: number | undefined;
  const forward = (name: string) => () => {
    log.info("{signal}: forwarding it to the child", { signal: name });
    wrapped.terminate(name);
  };
  const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map(
    (name) => [name, forward(name)] as const,
  );
  for (const [name, handler] of handlers) process.on(name, handler);
  const onAbort = () => wrapped.terminate("SIGTERM");
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const onGone = () => {
    const code = goneCode(hb);
    if (code === undefined || gone !== undefined) return;
    gone = code;
    log.error(
      code === EXIT.deleted
        ? "the workspace was deleted on the platform: stopping the child"
        : "the token was rejected: stopping the child",
    );
    wrapped.terminate("SIGTERM");
  };
  hb.addEventListener("rejected", onGone);
  hb.addEventListener("deleted", onGone);
  try {
    const code = await wrapped.done;
    log.info("the child exited (exit code {code})", { code });
    return gone ?? code;
  } finally {
    for (const [name, handler] of handlers) process.off(name, handler);
    signal?.removeEventListener("abort", onAbort);
  }
}

function detail<K extends keyof HeartbeatEventMap>(
  event: Event,
): HeartbeatEventMap[K] {
  return (event as CustomEvent<HeartbeatEventMap[K]>).detail;
}

/** Waits for what ends the run: a signal, every token rejected, or `--once` done. */
function runUntilDone(
  hb: Handle,
  options: {
    once: boolean;
    demo: boolean;
    signal?: AbortSignal;
    ids: string[];
  },
): Promise<number> {
  return new Promise<number>((resolve) => {
    const onSignal = (name: string) => () => {
      log.info("{signal}: stopping", { signal: name });
      finish(EXIT.ok);
    };
    const onInt = onSignal("SIGINT");
    const onTerm = onSignal("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    const onAbort = () => finish(EXIT.ok);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let done = false;
    function finish(code: number) {
      if (done) return;
      done = true;
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      options.signal?.removeEventListener("abort", onAbort);
      resolve(code);
    }
    if (options.signal?.aborted) return finish(EXIT.ok);

    const firstBeat = new Map<string, { ok: boolean; reason: string }>();
    // Beats do not wait on register: --once waits for both.
    let registersDone = false;
    void hb.ready.then(() => {
      registersDone = true;
      checkOnce();
    });
    const checkOnce = () => {
      if (!options.once || !registersDone || done) return;
      const status = hb.status().workspaces;
      const live = status.filter((w) => !w.rejected && !w.deleted);
      // --once also asks each workspace's state; wait for that answer too.
      if (
        !live.every((w) =>
          w.lastState !== undefined &&
          (w.paused || firstBeat.has(w.workspaceId))
        )
      ) return;
      const failed = live.filter((w) =>
        w.paused || !firstBeat.get(w.workspaceId)!.ok || !w.registered
      );
      const rejected = status.length - live.length;
      if (failed.length === 0 && rejected === 0) {
        log.info(
          "--once: {count} workspace(s) registered and heartbeat accepted",
          { count: live.length },
        );
        return finish(EXIT.ok);
      }
      for (const w of failed) {
        const beat = firstBeat.get(w.workspaceId);
        log.error(
          "--once: workspace {workspaceId} was not accepted: {reason}",
          {
            workspaceId: w.workspaceId,
            reason: w.paused
              ? "the workspace is paused on the platform"
              : !w.registered
              ? `register failed (${w.lastError ?? "no answer"})`
              : beat?.reason ?? "no answer",
          },
        );
      }
      finish(EXIT.notAccepted);
    };

    const onGone = () => {
      const code = goneCode(hb);
      if (code !== undefined) {
        if (hb.status().workspaces.length > 1) {
          log.error(
            "no workspace is left to serve (tokens rejected or workspaces deleted); exiting",
          );
        }
        return finish(code);
      }
      checkOnce();
    };
    hb.addEventListener("rejected", onGone);
    hb.addEventListener("deleted", onGone);
    if (options.once) {
      hb.addEventListener("paused", () => checkOnce());
      hb.addEventListener("state", () => checkOnce());
    }
    // Per-beat events cost a CustomEvent each: listen only when needed.
    if (options.once || options.demo) {
      hb.addEventListener("beat", (event) => {
        const d = detail<"beat">(event);
        if (options.demo) {
          log.info(
            "demo: heartbeat of {workspaceId} accepted (HTTP {status}, {latencyMs} ms)",
            {
              workspaceId: d.workspaceId,
              status: d.status,
              latencyMs: Math.round(d.latencyMs),
            },
          );
        }
        if (!firstBeat.has(d.workspaceId)) {
          firstBeat.set(d.workspaceId, { ok: true, reason: "" });
          checkOnce();
        }
      });
      hb.addEventListener("failure", (event) => {
        const d = detail<"failure">(event);
        if (!firstBeat.has(d.workspaceId)) {
          firstBeat.set(d.workspaceId, {
            ok: false,
            reason: `heartbeat failed: ${d.reason}`,
          });
          checkOnce();
        }
      });
    }
    if (options.demo) {
      hb.addEventListener("secret-stored", (event) => {
        log.info(
          "demo: stored the inbound secret of {workspaceId} (mode 0600)",
          {
            workspaceId: detail<"secret-stored">(event).workspaceId,
          },
        );
      });
      if (!options.once) log.info("demo: press Ctrl-C to stop");
    }
  });
}

if (import.meta.main) {
  const code = await main();
  process.exit(code);
}
