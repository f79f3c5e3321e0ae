/**
 * Inbound secrets from register and heartbeat answers (internal): validated,
 * remembered for masking, and stored only when they change, one write at a
 * time per workspace (the latest value winning) and at most
 * `SECRET_WRITE_CONCURRENCY` for the fleet.
 *
 * @module
 */
import type { Fleet } from "./_fleet.ts";
import { logger } from "../shared/_logger.ts";
import { maskSecrets, rememberSecret } from "../shared/mask.ts";
import { isValidSecret } from "../storage/secret_store.ts";
import type { Runtime } from "./_workspace_runtime.ts";

/**
 * Takes the `platform_inbound_secret` of an answer: ignored when absent,
 * warned about once when malformed, written when it differs from what the
 * store holds.
 */
export function offerSecret(fleet: Fleet, ws: Runtime, value: unknown): void {
  if (value === undefined || value === null || value === "") return;
  if (!isValidSecret(value)) {
    if (!ws.badSecretWarned) {
      logger.warn(
        "ignoring a platform_inbound_secret for {workspaceId} that is not a string of 1-4096 characters without control characters",
        { workspaceId: ws.id },
      );
      ws.badSecretWarned = true;
    }
    return;
  }
  ws.badSecretWarned = false;
  rememberSecret(value);
  if (!fleet.options.secretStore) return;
  if (value === ws.secret || value === ws.secretPending) return;
  ws.secretPending = value;
  if (ws.secretWriting) return; // the write under way takes the new value
  ws.secretWriting = true;
  void fleet.track(fleet.secretWriteLimit(() => writeSecret(fleet, ws)));
}

async function writeSecret(fleet: Fleet, ws: Runtime): Promise<void> {
  const store = fleet.options.secretStore!;
  try {
    if (!ws.secretLoaded) {
      ws.secret = await store.load(ws.id).catch(() => undefined);
      ws.secretLoaded = true;
    }
    while (ws.secretPending !== undefined && ws.secretPending !== ws.secret) {
      const value = ws.secretPending;
      try {
        await store.save(ws.id, value);
      } catch (error) {
        const reason = maskSecrets(
          error instanceof Error ? error.message : String(error),
        );
        // Once per workspace until the reason changes, not on every beat.
        if (ws.secretFailure !== reason) {
          ws.secretFailure = reason;
          logger.warn(
            "could not store the inbound secret of {workspaceId}: {reason}; the next answer that carries it retries",
            { workspaceId: ws.id, reason },
          );
        }
        fleet.emit("secret-failed", { workspaceId: ws.id, reason });
        break;
      }
      ws.secret = value;
      ws.secretStored = true;
      ws.secretFailure = undefined;
      logger.info("stored a new inbound secret for {workspaceId}", {
        workspaceId: ws.id,
      });
      fleet.emit("secret-stored", { workspaceId: ws.id });
    }
  } finally {
    ws.secretPending = undefined;
    ws.secretWriting = false;
  }
}
