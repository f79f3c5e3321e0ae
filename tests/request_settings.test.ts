// What the requests carry, from the command line (issue 24): --origin /
// MOLECULE_ORIGIN (the Origin header; "none" sends none), --org-share /
// MOLECULE_ORG_SHARE (the share of the org's rate window that requests
// with X-Molecule-Org-Id may use), and where a workspace's id came from.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../src/shared/errors.ts";
import { envFromRecord } from "../src/shared/env.ts";
import { parseFlags, read } from "../src/cli/flags.ts";
import { helpText } from "../src/cli/help.ts";
import { originSetting } from "../src/cli/settings.ts";
import { workspacesSetting } from "../src/cli/workspaces.ts";
import { defaultFileSystem } from "../src/storage/default_file_system.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { runScript } from "./helpers/runtime.ts";
import { scratch } from "./helpers/scratch.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const WS = "3f9c2a4e-8b1d-4c6e-9a7f-1e2d3c4b5a60";
const TOKEN = "origin-token-0123456789";

const configError = (setting: string, message: RegExp) => (e: unknown) =>
  e instanceof ConfigError && e.setting === setting && message.test(e.message);

test("--origin / MOLECULE_ORIGIN: an http(s) origin, normalised; none (or an empty flag) sends none; unset is the platform URL's origin", () => {
  const origin = (args: string[], env: Record<string, string> = {}) =>
    originSetting(parseFlags(args), envFromRecord(env));
  assert.equal(origin([]), undefined);
  assert.equal(
    origin(["--origin", "https://Canvas.Example:443/"]),
    "https://canvas.example",
  );
  assert.equal(
    origin([], { MOLECULE_ORIGIN: "http://10.0.0.5:8080" }),
    "http://10.0.0.5:8080",
  );
  assert.equal(
    origin(["--origin", "https://a.example"], {
      MOLECULE_ORIGIN: "https://b.example",
    }),
    "https://a.example",
  );
  assert.equal(origin(["--origin", "none"]), "");
  assert.equal(origin(["--origin", ""]), "");
  assert.equal(origin([], { MOLECULE_ORIGIN: "NONE" }), "");
  assert.equal(origin([], { MOLECULE_ORIGIN: "  " }), undefined);
  for (
    const bad of [
      "canvas.example",
      "ftp://canvas.example",
      "https://canvas.example/app",
      "https://canvas.example/?x=1",
      "https://canvas.example#top",
      "https://user:pw@canvas.example",
    ]
  ) {
    assert.throws(
      () => origin([], { MOLECULE_ORIGIN: bad }),
      configError("MOLECULE_ORIGIN", /must be an origin, http\(s\):\/\/host/),
      bad,
    );
  }
  assert.throws(
    () => origin(["--origin=https://x.example/p"]),
    configError("--origin", /"none" to send no Origin header/),
  );
});

test("--org-share / MOLECULE_ORG_SHARE: a fraction above 0 and at most 1; unset is the library's 0.1", () => {
  const share = (args: string[], env: Record<string, string> = {}) =>
    read(parseFlags(args), envFromRecord(env), "orgShare");
  assert.equal(share([]), undefined);
  assert.equal(share(["--org-share", "0.25"]), 0.25);
  assert.equal(share([], { MOLECULE_ORG_SHARE: "1" }), 1);
  assert.equal(share([], { MOLECULE_ORG_SHARE: ".05" }), 0.05);
  assert.equal(
    share(["--org-share", "0.5"], { MOLECULE_ORG_SHARE: "0.2" }),
    0.5,
  );
  for (const bad of ["0", "0.0", "1.01", "-0.1", "10%", "half", "1e-1"]) {
    assert.throws(
      () => share([`--org-share=${bad}`]),
      configError("--org-share", /a fraction above 0 and at most 1/),
      bad,
    );
  }
  assert.throws(
    () => share([], { MOLECULE_ORG_SHARE: "2" }),
    configError("MOLECULE_ORG_SHARE", /not "2"/),
  );
});

test("--help names --origin, --org-share and --pass-token with their variables and defaults", () => {
  const help = helpText();
  for (
    const word of [
      "--origin ORIGIN",
      "MOLECULE_ORIGIN",
      "--org-share FRACTION",
      "MOLECULE_ORG_SHARE",
      "default 0.1",
      "--pass-token",
      "MOLECULE_PASS_TOKEN",
    ]
  ) assert.ok(help.includes(word), `--help does not mention ${word}`);
});

test("each workspace says where its id came from: WORKSPACE_ID, --workspace-id, an entry of MOLECULE_WORKSPACES or of the workspaces file", async () => {
  await using dir = await scratch("molecule-request-");
  const fs = await defaultFileSystem();
  const sources = async (args: string[], env: Record<string, string>) =>
    (await workspacesSetting({
      flags: parseFlags(args),
      env: envFromRecord(env),
      fs,
      configsDir: dir.path,
      warnings: [],
    })).map((w) => w.idSource);
  assert.deepEqual(
    await sources([], { WORKSPACE_ID: WS, MOLECULE_WORKSPACE_TOKEN: TOKEN }),
    ["WORKSPACE_ID"],
  );
  assert.deepEqual(
    await sources(["--workspace-id", WS], { MOLECULE_WORKSPACE_TOKEN: TOKEN }),
    ["--workspace-id"],
  );
  const list = JSON.stringify([
    { id: WS, token: TOKEN },
    { id: "7b2e9d1c-4a3f-4e8b-9c0d-5f6a7b8c9d0e", token: TOKEN },
  ]);
  assert.deepEqual(await sources([], { MOLECULE_WORKSPACES: list }), [
    "entry 0 of MOLECULE_WORKSPACES",
    "entry 1 of MOLECULE_WORKSPACES",
  ]);
  const file = `${dir.path}/workspaces.json`;
  await (await import("node:fs/promises")).writeFile(file, list, {
    mode: 0o600,
  });
  assert.deepEqual(await sources(["--workspaces-file", file], {}), [
    `entry 0 of the workspaces file ${file}`,
    `entry 1 of the workspaces file ${file}`,
  ]);
});

test("command (mod.ts): --origin is the Origin sent (a proxy's CORS_ORIGINS entry), none sends none, and without it the platform URL's origin", async () => {
  await using dir = await scratch("molecule-request-");
  await using platform = await startPlatformEmulator({
    workspaces: { [WS]: TOKEN },
    corsOrigins: ["https://canvas.example"],
  });
  const origins = async (args: string[], env: Record<string, string> = {}) => {
    const before = platform.requests.length;
    const r = await runScript(MOD, {
      args: ["--once", ...args],
      env: {
        PLATFORM_URL: platform.url,
        WORKSPACE_ID: WS,
        MOLECULE_WORKSPACE_TOKEN: TOKEN,
        CONFIGS_DIR: dir.path,
        ...env,
      },
    });
    assert.equal(r.code, 0, r.stderr);
    const sent = platform.requests.slice(before).map((q) => q.origin);
    assert.ok(sent.length >= 2, "register and a beat at least");
    return [...new Set(sent)];
  };
  assert.deepEqual(await origins(["--origin", "https://canvas.example"]), [
    "https://canvas.example",
  ]);
  assert.deepEqual(await origins([], { MOLECULE_ORIGIN: "none" }), [
    undefined,
  ]);
  assert.deepEqual(await origins([]), [new URL(platform.url).origin]);
});

test("command (mod.ts): --org-share bounds how often the requests carrying the org header go out", async () => {
  await using dir = await scratch("molecule-request-");
  const ids = Array.from(
    { length: 10 },
    (_, i) => `3f9c2a4e-8b1d-4c6e-9a7f-${String(i).padStart(12, "0")}`,
  );
  const tokens = Object.fromEntries(ids.map((id) => [id, `${TOKEN}-${id}`]));
  const orgRequests = async (share: string[]) => {
    await using platform = await startPlatformEmulator({ workspaces: tokens });
    await runScript(MOD, {
      args: ["--org-id", "org-1", "--state-poll", "1", ...share],
      env: {
        PLATFORM_URL: platform.url,
        CONFIGS_DIR: dir.path,
        MOLECULE_HEARTBEAT_INTERVAL: "0.1",
        MOLECULE_WORKSPACES: JSON.stringify(
          ids.map((id) => ({ id, token: tokens[id] })),
        ),
      },
      timeoutMs: 4_000, // killed then: a fixed window to count in
    });
    return platform.requests.filter((r) => r.orgId === "org-1").length;
  };
  // 600 a minute for the org: a tenth is one every second or so, all of it
  // ten a second.
  const whole = await orgRequests(["--org-share", "1"]);
  const tenth = await orgRequests([]);
  assert.ok(
    whole >= 3 * tenth && whole >= 10,
    `--org-share 1: ${whole} org requests; the default 0.1: ${tenth}`,
  );
});
