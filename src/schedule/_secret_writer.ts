/**
 * Inbound secrets from register and heartbeat answers (internal): validated,
 * remembered for masking, and stored only when they change, one write at a
 * time per workspace (the latest value winning) and at most
 * `SECRET_WRITE_CONCURRENCY` for the fleet. The owner of every workspace's
 * `secret` book.
 *
 * @module
 */
import type { Fleet } from "./_fleet.ts";
import { logger } from "../shared/_logger.ts";
import { maskSecrets, rememberSecret } from "../shared/mask.ts";
import { raceSignal } from "../shared/_race.ts";
import { isValidSecret } from "../storage/secret_store.ts";
import { isFinal } from "./_life.ts";
import type { Runtime } from "./_workspace_runtime.ts";

/**
 * Takes the `platform_inbound_secret` of an answer: ignored when absent,
 * warned about once when malformed, written when it differs from what the
 * store holds.
 */
export function offerSecret(fleet: Fleet, ws: Runtime, value: unknown): void {
  if (value === undefined || value === null || value === "") return;
  const book = ws.secret;
  if (!isValidSecret(value)) {
    if (!book.badWarned) {
      logger.warn(
        "ignoring a platform_inbound_secret for {workspaceId} that is not a string of 1-4096 characters without control characters",
        { workspaceId: ws.id },
      );
      book.badWarned = true;
    }
    return;
  }
  book.badWarned = false;
  rememberSecret(value);
  if (!fleet.options.secretStore || fleet.stopped || isFinal(ws)) return;
  if (value === book.value || value === book.pending) return;
  // A value pending means a write under way (it takes the new value).
  const writing = book.pending !== undefined;
  book.pending = value;
  if (writing) return;
  void fleet.track(fleet.writeLimit(() => writeSecret(fleet, ws)));
}

async function writeSecret(fleet: Fleet, ws: Runtime): Promise<void> {
  const store = fleet.options.secretStore!;
  const book = ws.secret;
  // A store that never answers holds this workspace's writes, not stop().
  const signal = fleet.grace.signal;
  try {
    if (!book.loaded) {
      book.value = await raceSignal(store.load("inbound-secret", ws.id), signal)
        .catch(() => undefined);
      book.loaded = true;
    }
    while (book.pending !== undefined && book.pending !== book.value) {
      if (ws.life.state === "removed") break;
      const value = book.pending;
      try {
        await raceSignal(store.save("inbound-secret", ws.id, value), signal);
      } catch (error) {
        if (signal.aborted) break;
        const reason = maskSecrets(
          error instanceof Error ? error.message : String(error),
        );
        // Once per workspace until the reason changes, not on every beat;
        // a fleet failing together (a full disk): one line and a summary.
        if (book.failure !== reason) {
          book.failure = reason;
          fleet.troubled(
            "secret",
            ws,
            "warn",
            "could not store the inbound secret of {workspaceId}: {reason}; the next answer that carries it retries",
            { workspaceId: ws.id, reason },
          );
        }
        fleet.emit("secret-failed", { workspaceId: ws.id, reason });
        break;
      }
      book.value = value;
      book.stored = true;
      book.failure = undefined;
      logger.info("stored a new inbound secret for {workspaceId}", {
        workspaceId: ws.id,
      });
      fleet.emit("secret-stored", { workspaceId: ws.id });
    }
  } finally {
    book.pending = undefined;
  }
}
