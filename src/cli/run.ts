/**
 * A plain run's end: a signal, every workspace gone, or with `--once` every
 * workspace registered and beat (or failed); `--demo`'s friendly log lines.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import process from "node:process";
import { LOG_CATEGORY } from "../shared/constants.ts";
import type { HeartbeatHandle } from "../schedule/start_heartbeat.ts";
import type { HeartbeatEventMap } from "../schedule/types.ts";
import { EXIT, goneCode } from "./exit_codes.ts";

const log = getLogger([...LOG_CATEGORY, "cli"]);

function detail<K extends keyof HeartbeatEventMap>(
  event: Event,
): HeartbeatEventMap[K] {
  return (event as CustomEvent<HeartbeatEventMap[K]>).detail;
}

/** Waits for what ends the run: a signal, every token rejected, or `--once` done. */
export function runUntilDone(
  hb: HeartbeatHandle,
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
