/**
 * A plain run's end: a signal, every workspace gone, or with `--once` every
 * workspace registered and beat (or failed); `--demo`'s friendly log lines.
 *
 * @module
 */
import type { HeartbeatHandle } from "../schedule/start_heartbeat.ts";
import type {
  HeartbeatEventMap,
  HeartbeatStatus,
  WorkspaceStatus,
} from "../schedule/types.ts";
import { EXIT, goneCode } from "./exit_codes.ts";
import { onSignal } from "./host.ts";
import { log } from "./logging.ts";

function detail<K extends keyof HeartbeatEventMap>(
  event: Event,
): HeartbeatEventMap[K] {
  return (event as CustomEvent<HeartbeatEventMap[K]>).detail;
}

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
 * (SIGINT) or 143 (SIGTERM, or the context's signal), never 0.
 */
export function runUntilDone(
  hb: HeartbeatHandle,
  options: {
    once: boolean;
    demo: boolean;
    signal?: AbortSignal;
    /** The ids served (not read: a caller may pass them). */
    ids?: string[];
  },
): Promise<number> {
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
    const stopOn = (name: "SIGINT" | "SIGTERM") => () => {
      if (options.once) {
        log.error(
          "{signal} during --once: stopping before every workspace finished",
          { signal: name },
        );
        return finish(SIGNAL_CODE[name]);
      }
      log.info("{signal}: stopping", { signal: name });
      finish(EXIT.ok);
    };
    const offInt = onSignal("SIGINT", stopOn("SIGINT"));
    const offTerm = onSignal("SIGTERM", stopOn("SIGTERM"));
    const onAbort = () => finish(options.once ? SIGNAL_CODE.SIGTERM : EXIT.ok);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let done = false;
    let deadline: ReturnType<typeof setTimeout> | undefined;
    function finish(code: number) {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      offInt();
      offTerm();
      options.signal?.removeEventListener("abort", onAbort);
      resolve(code);
    }
    if (options.signal?.aborted) return onAbort();
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
      if (report(status.filter((w) => notAccepted(w) !== undefined)) === 0) {
        log.info(
          "--once: {count} workspace(s) registered and heartbeat accepted",
          { count: status.length },
        );
        return finish(EXIT.ok);
      }
      finish(EXIT.notAccepted);
    };

    const onGone = () => {
      const code = goneCode(hb.status().workspaces);
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
        beaten(d.workspaceId, "");
      });
      hb.addEventListener("failure", (event) => {
        const d = detail<"failure">(event);
        beaten(d.workspaceId, `heartbeat failed: ${d.reason}`);
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

/** Whether the platform refused a workspace or deleted it. */
const gone = (w: WorkspaceStatus) => w.rejected || w.deleted;
