/**
 * Wrapper mode's run: signals go to the child's process group, a rejected
 * token or a deleted workspace stops it, and the child's end ends the run.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { LOG_CATEGORY } from "../shared/constants.ts";
import type { HeartbeatHandle } from "../schedule/start_heartbeat.ts";
import { EXIT, goneCode } from "./exit_codes.ts";
import { onSignal } from "./host.ts";
import type { Wrapped } from "./wrap.ts";

const log = getLogger([...LOG_CATEGORY, "cli"]);

/**
 * Runs until the wrapped child ends, and resolves with the exit code: the
 * child's, or 3/4/2 when the heartbeat stopped it (token rejected, workspace
 * deleted, workspace id refused as malformed).
 */
export async function runWrapped(
  hb: HeartbeatHandle,
  wrapped: Wrapped,
  signal: AbortSignal | undefined,
): Promise<number> {
  let gone: number | undefined;
  const forward = (name: string) => () => {
    log.info("{signal}: forwarding it to the child's process group", {
      signal: name,
    });
    wrapped.terminate(name);
  };
  const offSignals = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map(
    (name) => onSignal(name, forward(name)),
  );
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
        : code === EXIT.auth
        ? "the token was rejected: stopping the child"
        : "the platform refuses the workspace id as malformed (its ids are UUIDs): stopping the child",
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
    for (const off of offSignals) off();
    signal?.removeEventListener("abort", onAbort);
  }
}
