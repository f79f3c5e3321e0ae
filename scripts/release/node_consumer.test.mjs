// Run by the release check (scripts/release_check.ts) inside a scratch project
// where `npx jsr add @molecule/heartbeat` installed the package from a local
// npm registry, on Node 20, 22 and 24: imports it as a Node user would,
// registers and heartbeats against the emulator, and stores a secret through
// the file store (which writes with node:fs off Deno).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileSecretStore, startHeartbeat, VERSION } from "@molecule/heartbeat";
import { startPlatformEmulator } from "@molecule/heartbeat/testing";

test(`the package installed from JSR's npm layer works on Node ${process.version}`, async () => {
  assert.equal(VERSION, process.env.EXPECTED_VERSION);
  const platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": "npm-token-123456" },
  });
  const dir = await mkdtemp(join(tmpdir(), "molecule-npm-"));
  try {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: "ws-1", token: "npm-token-123456" }],
      intervalMs: 100,
      secretStore: new FileSecretStore({ dir }),
    });
    const ready = await hb.ready;
    assert.deepEqual(ready.registered, ["ws-1"]);
    const end = Date.now() + 5000;
    while (platform.requestsTo("heartbeat").length < 3 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await hb.stop();
    assert.ok(platform.requestsTo("heartbeat").length >= 3);
    const file = join(dir, ".platform_inbound_secret");
    assert.equal(await readFile(file, "utf8"), "secret-ws-1");
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  } finally {
    await platform.close();
    await rm(dir, { recursive: true, force: true });
  }
});
