/**
 * The command's exit codes, and a run's end: a signal, every workspace gone, or with `--once` every
 * workspace registered and beat (or failed); `--demo`'s friendly log lines.
 * In wrapper mode the child's end is the run's: signals are forwarded to
 * its group, and a rejected token or a deleted workspace stops it.
 *
 * @module
 */
import type { HeartbeatHandle } from "../schedule/start_heartbeat.ts";
import type {
  HeartbeatEventMap,
  HeartbeatStatus,
  WorkspaceStatus,
} from "../schedule/types.ts";
import { type HandledSignal, onSignal, unrefLater } from "./host.ts";
import { log } from "./logging.ts";
import type { Wrapped } from "./wrap.ts";

/** An event's detail. */
type Detail<K extends keyof HeartbeatEventMap> = CustomEvent<
  HeartbeatEventMap[K]
>;

/** How long `--once` waits for the save of a token the platform issued, in ms. */
const UNSAVED_WAIT_MS = 5_000;

/** The exit code of a signal that ends a `--once` run: 128 + its number. */
const SIGNAL_CODE = { SIGINT: 130, SIGTERM: 143 } as const;

/**
 * How long `--once` waits at most, in ms: the request timeout for what
 * one workspace does at once (its register, its beat and its state
 * question run side by side; a refusal adds one lookup), plus the time the
 * caps need for the whole fleet (rounds of beats and questions under the
 * in-flight cap, rounds of registers under their concurrency), plus a
 * second.
 */
export function onceDeadlineMs(status: HeartbeatStatus): number {
  const n = Math.max(1, status.workspaces.length);
  const timeout = status.timeoutMs ?? 10_000;
  const cap = Math.max(1, status.maxInFlight);
  const registers = Math.max(1, status.registerConcurrency ?? 8);
  const rounds = Math.max(Math.ceil((2 * n) / cap), Math.ceil(n / registers));
  return timeout * (2 + rounds) + 1_000;
}

/**
 * Waits for what ends the run: a signal, every token rejected, or `--once`
 * done. `--once` always ends: within {@link onceDeadlineMs} (exit 1 naming
 * the workspaces that did not finish), and a signal during it exits 130
 * (SIGINT) or 143 (SIGTERM, or the context's signal), never 0. With
 * `wrapped`, the end is the child's: its exit code, or 3/4/2 when the
 * heartbeat stopped it (token rejected, workspace deleted, workspace id
 * refused as malformed).
 */
export function runUntilDone(
  hb: HeartbeatHandle,
  options: {
    once: boolean;
    demo: boolean;
    signal?: AbortSignal;
    /** Wrapper mode's child. */
    wrapped?: Wrapped;
  },
): Promise<number> {
  const { wrapped } = options;
  return new Promise<number>((resolve) => {
    // Each workspace's first beat: "" accepted, else why it failed.
    const firstBeat = new Map<string, string>();
    const beaten = (workspaceId: string, failure: string) => {
      if (firstBeat.has(workspaceId)) return;
      firstBeat.set(workspaceId, failure);
      checkOnce();
    };
    let registersDone = false;
    // What a workspace has not had an answer to yet, for --once.
    const missing = (w: WorkspaceStatus) =>
      [
        registersDone || w.registered ? undefined : "its register",
        firstBeat.has(w.workspaceId) || w.paused ? undefined : "its heartbeat",
        w.lastState === undefined ? "its state" : undefined,
      ].filter(Boolean);
    // Why each first register failed, for --once's last word (a workspace's
    // lastError is whatever failed last, often its beat).
    const registerFailures = new Map<string, string>();
    // Why --once did not accept a workspace; `undefined` when it did.
    const notAccepted = (w: WorkspaceStatus) =>
      w.deleted
        ? "the workspace was deleted on the platform"
        : w.rejected
        ? w.rejectedFor === "id"
          ? "the platform refuses its id as malformed (its ids are UUIDs)"
          : "the platform refused its token"
        : w.paused
        ? "the workspace is paused on the platform"
        : !w.registered
        ? `register failed (${
          registerFailures.get(w.workspaceId) ?? w.lastError ?? "no answer"
        })`
        : firstBeat.get(w.workspaceId) || undefined;
    // Names each workspace not accepted (with several workspaces, a refused
    // or deleted one ends the run in exit 1 too, and its own error line came
    // earlier, among the others'). Returns how many.
    const report = (workspaces: WorkspaceStatus[]) => {
      for (const w of workspaces) {
        log.error(
          "--once: workspace {workspaceId} was not accepted: {reason}",
          { workspaceId: w.workspaceId, reason: notAccepted(w) },
        );
      }
      return workspaces.length;
    };
    const stopOn = (name: HandledSignal) => () => {
      if (done) return;
      if (wrapped) {
        log.info("{signal}: forwarding it to the child's process group", {
          signal: name,
        });
        return wrapped.terminate(name);
      }
      if (options.once) {
        log.error(
          "{signal} during --once: stopping before every workspace finished",
          { signal: name },
        );
        return finish(SIGNAL_CODE[name as "SIGINT"]);
      }
      log.info("{signal}: stopping", { signal: name });
      finish(EXIT.ok);
    };
    const signals: HandledSignal[] = wrapped
      ? ["SIGINT", "SIGTERM", "SIGHUP"]
      : ["SIGINT", "SIGTERM"];
    const offSignals = signals.map((name) => onSignal(name, stopOn(name)));
    const onAbort = () =>
      wrapped
        ? wrapped.terminate("SIGTERM")
        : finish(options.once ? SIGNAL_CODE.SIGTERM : EXIT.ok);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let done = false;
    let deadline: ReturnType<typeof setTimeout> | undefined;
    // Tokens the platform issued and that are not saved yet: the one they
    // replaced no longer works, so --once waits (a while) for their save.
    const unsaved = new Set<string>();
    let saveWait: ReturnType<typeof setTimeout> | undefined;
    function finish(code: number) {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(saveWait);
      // The handlers stay while the run's cleanups finish (within 2 s): a
      // second signal then is ignored, not the runtime's default (killed by
      // it, a Ctrl-C delivered twice exiting 130 instead of 0).
      unrefLater(3_000, () => offSignals.forEach((off) => off()));
      options.signal?.removeEventListener("abort", onAbort);
      resolve(code);
    }
    if (options.signal?.aborted) onAbort();
    if (done) return;
    void wrapped?.done.then((code) => {
      log.info("the child exited (exit code {code})", { code });
      finish(stoppedFor ?? code);
    }, (error) => {
      log.error("the child's end could not be read: {error}", { error });
      finish(stoppedFor ?? EXIT.notAccepted);
    });
    if (options.once) {
      const ms = onceDeadlineMs(hb.status());
      deadline = setTimeout(() => {
        if (done) return;
        const unfinished = hb.status().workspaces.filter((w) =>
          !gone(w) && missing(w).length > 0
        );
        for (const w of unfinished) {
          log.error(
            "--once: workspace {workspaceId} did not finish within {seconds} s: no answer to {missing}",
            {
              workspaceId: w.workspaceId,
              seconds: Math.round(ms / 1000),
              missing: missing(w).join(", "),
            },
          );
        }
        const reported = report(hb.status().workspaces.filter(gone));
        if (unfinished.length === 0 && reported === 0) {
          log.error("--once did not finish within {seconds} s", {
            seconds: Math.round(ms / 1000),
          });
        }
        finish(EXIT.notAccepted);
      }, ms);
    }

    // Beats do not wait on register: --once waits for both.
    void hb.ready.then((ready) => {
      for (const f of ready.failed) {
        registerFailures.set(f.workspaceId, f.reason);
      }
      registersDone = true;
      checkOnce();
    });
    const checkOnce = () => {
      if (!options.once || !registersDone || done) return;
      const status = hb.status().workspaces;
      // --once also asks each workspace's state; wait for that answer too.
      if (status.some((w) => !gone(w) && missing(w).length > 0)) return;
      if (unsaved.size > 0) {
        saveWait ??= setTimeout(() => {
          if (done) return;
          for (const workspaceId of unsaved) {
            log.error(
              "--once: the token the platform issued for {workspaceId} could not be saved within {seconds} s (the warning above says why): it is lost when this run ends, and the token it replaced no longer works; make the configs dir writable, then regenerate the token in the canvas (Tokens tab)",
              { workspaceId, seconds: UNSAVED_WAIT_MS / 1000 },
            );
          }
          finish(EXIT.notAccepted);
        }, UNSAVED_WAIT_MS);
        return;
      }
      if (report(status.filter((w) => notAccepted(w) !== undefined)) === 0) {
        log.info(
          "--once: {count} workspace(s) registered and heartbeat accepted",
          { count: status.length },
        );
        return finish(EXIT.ok);
      }
      finish(EXIT.notAccepted);
    };

    // Wrapper mode: the exit code when the heartbeat stopped the child.
    let stoppedFor: number | undefined;
    const onGone = () => {
      const code = goneCode(hb.status().workspaces);
      if (code !== undefined && wrapped) {
        if (stoppedFor !== undefined) return;
        stoppedFor = code;
        log.error(
          code === EXIT.deleted
            ? "the workspace was deleted on the platform: stopping the child"
            : code === EXIT.auth
            ? "the token was rejected: stopping the child"
            : "the platform refuses the workspace id as malformed (its ids are UUIDs): stopping the child",
        );
        return wrapped.terminate("SIGTERM");
      }
      if (code !== undefined) {
        if (hb.status().workspaces.length > 1) {
          log.error(
            "no workspace is left to serve (tokens rejected, ids refused or workspaces deleted); exiting",
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
      hb.addEventListener("registered", (event) => {
        const d = (event as Detail<"registered">).detail;
        if (d.authToken !== undefined) unsaved.add(d.workspaceId);
      });
      hb.addEventListener("issued-token", (event) => {
        const d = (event as Detail<"issued-token">).detail;
        if (d.storedAt !== undefined) unsaved.delete(d.workspaceId);
        checkOnce();
      });
    }
    // Per-beat events cost a CustomEvent each: listen only when needed.
    if (options.once || options.demo) {
      hb.addEventListener("beat", (event) => {
        const d = (event as Detail<"beat">).detail;
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
        beaten(d.workspaceId, "");
      });
      hb.addEventListener("failure", (event) => {
        const d = (event as Detail<"failure">).detail;
        beaten(d.workspaceId, `heartbeat failed: ${d.reason}`);
      });
    }
    if (options.demo) {
      hb.addEventListener("secret-stored", (event) => {
        log.info(
          "demo: stored the inbound secret of {workspaceId} (mode 0600)",
          {
            workspaceId: (event as Detail<"secret-stored">).detail.workspaceId,
          },
        );
      });
      if (!options.once) log.info("demo: press Ctrl-C to stop");
    }
  });
}

/** Whether the platform refused a workspace or deleted it. */
const gone = (w: WorkspaceStatus) => w.rejected || w.deleted;

/** Exit codes of the command. */
export const EXIT = {
  ok: 0,
  notAccepted: 1,
  config: 2,
  auth: 3,
  deleted: 4,
} as const;

/**
 * When every workspace is gone (rejected, or deleted on the platform), the
 * exit code: 4 when every one was deleted; else 3 when the platform refused
 * the token of any (`rejectedFor` `"token"`, or not said); else 2: the
 * platform refuses the ids as malformed (`rejectedFor` `"id"`), a
 * configuration error. `undefined` while one is still served.
 *
 * @example
 * ```ts ignore
 * import { goneCode } from "./run.ts";
 * hb.addEventListener("rejected", () => {
 *   const code = goneCode(hb.status().workspaces);
 *   if (code !== undefined) exit(code);
 * });
 * ```
 *
 * @param all Every workspace's status (`hb.status().workspaces`).
 * @returns The exit code, or `undefined`.
 */
export function goneCode(
  all: readonly WorkspaceStatus[],
): number | undefined {
  if (!all.every((w) => w.rejected || w.deleted)) return undefined;
  if (all.every((w) => w.deleted)) return EXIT.deleted;
  if (all.some((w) => w.rejected && !w.deleted && w.rejectedFor !== "id")) {
    return EXIT.auth;
  }
  return EXIT.config;
}
