// Type-checked by the release check with `tsc --noEmit` (strict, NodeNext)
// in the project where `npx jsr add @molecule/heartbeat` installed the
// package: the declarations JSR's npm layer ships must resolve, and a
// mistake in them must fail here before it fails a user.
import {
  FileSecretStore,
  type HeartbeatOptions,
  type HeartbeatStatus,
  startHeartbeat,
  VERSION,
} from "@molecule/heartbeat";
import { startPlatformEmulator } from "@molecule/heartbeat/testing";
import { register } from "@molecule/heartbeat/platform";

export async function typed(): Promise<HeartbeatStatus> {
  const platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": "token-123456" },
  });
  const options: HeartbeatOptions = {
    platformUrl: platform.url,
    workspaces: [{ id: "ws-1", token: "token-123456" }],
    intervalMs: 20_000,
    secretStore: new FileSecretStore({ dir: "/tmp" }),
  };
  const hb = startHeartbeat(options);
  const ready = await hb.ready;
  const first: string | undefined = ready.registered[0];
  const version: string = VERSION;
  void first, version;
  const status = hb.status();
  const refused = await register({
    platformUrl: platform.url,
    workspaceId: "ws-1",
    token: "wrong-token-0000",
  });
  const auth: boolean = refused.kind === "auth";
  void auth;
  await hb.stop();
  await platform.close();
  return status;
}
