/**
 * `--demo`: a platform emulator in-process, one workspace, a scratch configs
 * dir removed at the end.
 *
 * @module
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { log } from "./logging.ts";

/** Ids and token of the workspace `--demo` serves. */
export const DEMO_WORKSPACE = "de300000-0000-4000-8000-0000000000de";
const DEMO_TOKEN = "demo-token-not-a-secret";

/**
 * Starts the emulator (loaded only for `--demo`: a plain run spends no
 * memory on `node:http`) and a scratch configs dir unless one is given.
 * Resolves with what a demo run serves, and what to undo at its end
 * (`cleanups`, run in order).
 */
export async function startDemo(
  configsDir: string | undefined,
  intervalMs: number,
) {
  const { startPlatformEmulator } = await import("../testing/emulator.ts");
  const emulator = await startPlatformEmulator({
    workspaces: { [DEMO_WORKSPACE]: DEMO_TOKEN },
  });
  const cleanups: (() => Promise<void>)[] = [() => emulator.close()];
  const dir = configsDir ??
    await mkdtemp(join(tmpdir(), "molecule-heartbeat-demo-"));
  // The demo's own scratch dir goes when the demo ends.
  if (!configsDir) {
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
  }
  log.info(
    "demo: a platform emulator is listening on {url} (a stand-in for your Molecule platform)",
    { url: emulator.url },
  );
  log.info(
    "demo: serving workspace {workspaceId} every {seconds} s; inbound secret goes to {dir}",
    { workspaceId: DEMO_WORKSPACE, seconds: intervalMs / 1000, dir },
  );
  return {
    platformUrl: emulator.url,
    workspaces: [{ id: DEMO_WORKSPACE, token: DEMO_TOKEN }],
    configsDir: dir,
    cleanups,
  };
}
