// The imports are spelled as the README shows users, prefix and all.
// deno-lint-ignore-file no-import-prefix no-unversioned-import
// Run by the release check (scripts/release_check.ts) from an empty directory
// with a fresh DENO_DIR, against the package published to the local JSR
// registry (JSR_URL): imports it as a Deno user would, registers and
// heartbeats against the emulator, and stores the inbound secret through the
// file store. The check also runs a copy whose specifiers are the bare names
// `deno add` maps. Exits non-zero on any mismatch.
import {
  FileSecretStore,
  type HeartbeatStatus,
  startHeartbeat,
  VERSION,
} from "jsr:@molecule/heartbeat";
import { startPlatformEmulator } from "jsr:@molecule/heartbeat/testing";

function check(cond: unknown, what: string): asserts cond {
  if (!cond) {
    console.error(`FAIL: ${what}`);
    Deno.exit(1);
  }
}

check(
  VERSION === Deno.env.get("EXPECTED_VERSION"),
  `VERSION is ${VERSION}, want ${Deno.env.get("EXPECTED_VERSION")}`,
);
const platform = await startPlatformEmulator({
  uuidIds: false,
  workspaces: { "ws-1": "jsr-token-123456" },
});
const dir = await Deno.makeTempDir({ prefix: "molecule-jsr-" });
try {
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: "jsr-token-123456" }],
    intervalMs: 100,
    secretStore: new FileSecretStore({ dir }),
  });
  const ready = await hb.ready;
  check(ready.registered.includes("ws-1"), "ws-1 did not register");
  const end = Date.now() + 5_000;
  while (platform.requestsTo("heartbeat").length < 3 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const status: HeartbeatStatus = hb.status();
  await hb.stop();
  const beats = platform.requestsTo("heartbeat").length;
  check(beats >= 3, `${beats} heartbeats reached the emulator, want 3`);
  const file = `${dir}/.platform_inbound_secret`;
  check(
    (await Deno.readTextFile(file)) === "secret-ws-1",
    "secret not stored",
  );
  check(((await Deno.stat(file)).mode! & 0o777) === 0o600, "secret not 0600");
  console.log(
    `jsr:@molecule/heartbeat@${VERSION}: registered, ${beats} beats, ` +
      `secret stored 0600 (${status.workspaces.length} workspace in status)`,
  );
} finally {
  await platform.close();
  await Deno.remove(dir, { recursive: true });
}
