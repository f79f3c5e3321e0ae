/**
 * Register (internal): the first tries of a fleet, taken in turn by a few
 * workers (at most `registerConcurrency` registers at once), and the retries
 * of a failed one in the background, within the retry budget. A refused
 * token is checked against the workspace's state, so that a deleted
 * workspace is told apart from a bad token. Beats never wait on any of it.
 *
 * @module
 */
import { buildAgentCard } from "../platform/agent_card.ts";
import { processEnv } from "../shared/env.ts";
import { RegisterAuthError } from "../shared/errors.ts";
import type { Fleet } from "./_fleet.ts";
import type { ReadyResult } from "./types.ts";
import { applyState, fetchState } from "./_lifecycle.ts";
import { logger } from "../shared/_logger.ts";
import { rememberSecret } from "../shared/mask.ts";
import { register } from "../platform/register.ts";
import { offerSecret } from "./_secret_writer.ts";
import type { Runtime } from "./_workspace_runtime.ts";

/** What one register came to. */
export type RegisterOutcome =
  | "ok"
  | "rejected"
  | "deleted"
  | "aborted"
  | { reason: string };

/**
 * Registers every workspace of `runtimes` once (a failed one goes on being
 * retried in the background) and sorts the outcomes: the handle's `ready`.
 */
export async function registerAll(
  fleet: Fleet,
  runtimes: readonly Runtime[],
): Promise<ReadyResult> {
  const result: ReadyResult = {
    registered: [],
    rejected: [],
    failed: [],
    deleted: [],
  };
  // A few workers take the workspaces in turn, rather than one waiting
  // promise per workspace: ten thousand of those all alive at once made V8
  // grow its young generation for good.
  const next = runtimes.values();
  const worker = async () => {
    for (const ws of next) {
      const outcome = await registerOne(fleet, ws);
      if (outcome === "ok") result.registered.push(ws.id);
      else if (outcome === "rejected") {
        result.rejected.push({ workspaceId: ws.id, status: ws.lastStatus! });
      } else if (outcome === "deleted") result.deleted.push(ws.id);
      else if (outcome !== "aborted") {
        result.failed.push({ workspaceId: ws.id, reason: outcome.reason });
      }
    }
  };
  const workers = Math.max(
    1,
    Math.min(fleet.registerConcurrency, runtimes.length),
  );
  await Promise.all(Array.from({ length: workers }, worker));
  return result;
}

/** Registers `ws`; on a failure, schedules the retry. */
export async function registerOne(
  fleet: Fleet,
  ws: Runtime,
): Promise<RegisterOutcome> {
  if (fleet.stopped || ws.deleted || ws.removed) return "aborted";
  const signal = fleet.abort.signal;
  let result;
  try {
    result = await fleet.registerLimit(() =>
      fleet.stopped ? Promise.reject(signal.reason) : fleet.counted(register({
        platformUrl: fleet.options.platformUrl,
        workspaceId: ws.id,
        token: ws.config.token,
        agentCard: ws.config.agentCard ??
          buildAgentCard(ws.id, fleet.options.env ?? processEnv),
        timeoutMs: fleet.timeout,
        signal,
        fetch: fleet.options.fetch,
        orgId: fleet.options.orgId,
      }))
    );
  } catch (error) {
    if (error instanceof RegisterAuthError) {
      fleet.counters.registers.refused++;
      // A refused token, or a deleted workspace? The platform can tell.
      const state = await fetchState(fleet, ws);
      if (state) applyState(fleet, ws, state);
      if (ws.deleted) return "deleted";
      if (fleet.stopped) return "aborted";
      reject(fleet, ws, error);
      return "rejected";
    }
    if (signal.aborted) return "aborted";
    return { reason: String(error) };
  }
  ws.lastStatus = result.status ?? ws.lastStatus;
  if (result.kind === "ok") {
    fleet.counters.registers.accepted++;
    fleet.budget.accepted();
    if (result.authToken) rememberSecret(result.authToken);
    ws.registered = true;
    ws.registerFailures = 0;
    logger.info("registered workspace {workspaceId} with the platform", {
      workspaceId: ws.id,
    });
    fleet.emit("registered", {
      workspaceId: ws.id,
      status: result.status!,
      ...(result.authToken ? { authToken: result.authToken } : {}),
    });
    offerSecret(fleet, ws, result.inboundSecret);
    return "ok";
  }
  ws.registerFailures++;
  ws.lastError = result.reason;
  fleet.counters.registers[
    result.kind === "rejected" ? "refused" : "failed"
  ]++;
  const retryInMs = fleet.budget.spend()
    ? Math.min(
      fleet.interval,
      Math.max(
        fleet.backoff(ws.registerFailures),
        result.answer?.retryAfterMs ?? 0,
      ),
    )
    : fleet.interval;
  fleet.troubled(
    "register",
    ws,
    () =>
      logger[result.kind === "redirect" ? "error" : "warn"](
        "register of workspace {workspaceId} failed ({reason}); heartbeats go on, register is retried in {retryInMs} ms",
        { workspaceId: ws.id, reason: result.reason, retryInMs },
      ),
  );
  fleet.emit("register-failed", {
    workspaceId: ws.id,
    kind: result.kind,
    status: result.status,
    reason: result.reason,
    retryInMs,
  });
  fleet.queue.at(fleet.clock.now() + retryInMs, () => {
    void fleet.track(
      registerOne(fleet, ws).catch((error) => {
        logger.error("register retry failed: {error}", { error });
      }),
    );
  });
  return { reason: result.reason };
}

/** A refused token: `ws` is no longer served. */
function reject(fleet: Fleet, ws: Runtime, error: RegisterAuthError): void {
  ws.rejected = true;
  ws.lastStatus = error.status;
  ws.lastError = `register rejected with HTTP ${error.status}`;
  fleet.unschedule(ws);
  logger.error(
    "register rejected with HTTP {status}: the token is invalid for workspace {workspaceId}. " +
      "Regenerate it from the canvas → Tokens tab. This workspace is no longer served.",
    { status: error.status, workspaceId: ws.id },
  );
  fleet.emit("rejected", { workspaceId: ws.id, status: error.status });
}
