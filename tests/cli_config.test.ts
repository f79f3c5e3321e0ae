import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../src/shared/errors.ts";
import { envFromRecord } from "../src/shared/env.ts";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseFlags, read } from "../src/cli/flags.ts";
import { configsDirSetting, platformUrlIfSet } from "../src/cli/settings.ts";
import {
  parseWorkspacesJson,
  workspacesSetting,
} from "../src/cli/workspaces.ts";
import { defaultFileSystem } from "../src/storage/default_file_system.ts";
import { runScript } from "./helpers/runtime.ts";
import { scratch } from "./helpers/scratch.ts";

test("plain http off loopback is accepted with a warning; loopback and https are quiet", () => {
  const flags = parseFlags([]);
  const warn = (url: string) => {
    const warnings: string[] = [];
    const base = platformUrlIfSet(
      flags,
      envFromRecord({ PLATFORM_URL: url }),
      warnings,
    );
    return { base, warnings };
  };
  const plain = warn("http://molecule.example.com/");
  assert.equal(plain.base, "http://molecule.example.com");
  assert.match(
    plain.warnings[0],
    /PLATFORM_URL uses plain http:\/\/ to molecule\.example\.com: the workspace token travels in clear/,
  );
  for (
    const quiet of [
      "https://molecule.example.com",
      "http://127.0.0.1:8080",
      "http://localhost:1",
      "http://[::1]:9",
    ]
  ) {
    assert.deepEqual(warn(quiet).warnings, [], quiet);
  }
  assert.equal(
    warn("https://m.example/tenant/a//").base,
    "https://m.example/tenant/a",
  );
});

test("a platform URL with credentials, a query or a fragment is a configuration error", () => {
  const flags = parseFlags([]);
  for (
    const url of [
      "https://user:pw@m.example",
      "https://m.example/?x=1",
      "https://m.example/#top",
      "https://m.example:0",
    ]
  ) {
    assert.throws(
      () => platformUrlIfSet(flags, envFromRecord({ PLATFORM_URL: url }), []),
      (e: unknown) => e instanceof ConfigError && e.setting === "PLATFORM_URL",
      url,
    );
  }
});

test("a configs dir that is a file is one warning that it cannot be created, not a warning about its mode", async () => {
  const warnings: string[] = [];
  const dir = await configsDirSetting(
    parseFlags(["--configs-dir", "/dev/null"]),
    envFromRecord({}),
    await defaultFileSystem(),
    warnings,
  );
  assert.equal(dir, "/dev/null");
  assert.equal(warnings.length, 1, warnings.join("\n"));
  assert.match(
    warnings[0],
    /configs dir \/dev\/null cannot be created or written/,
  );
});

// Issue 17, point 6: the configuration the platform's Python runtime has.

async function workspaces(
  env: Record<string, string>,
  args: string[] = [],
  configsDir = "/nonexistent-configs",
) {
  const warnings: string[] = [];
  const list = await workspacesSetting({
    flags: parseFlags(args),
    env: envFromRecord(env),
    fs: await defaultFileSystem(),
    configsDir,
    warnings,
  });
  const tokens = await Promise.all(
    list.map((w) => typeof w.token === "string" ? w.token : w.token()),
  );
  return { list, tokens, warnings };
}

function configError(setting: string, pattern: RegExp) {
  return (e: unknown) =>
    e instanceof ConfigError && e.setting === setting &&
    pattern.test(e.message);
}

test("MOLECULE_WORKSPACE_TOKEN_FILE: after MOLECULE_WORKSPACE_TOKEN, before .auth_token; a bad file is an error naming the variable", async () => {
  await using dir = await scratch();
  const file = join(dir.path, "token");
  await writeFile(file, "tok-from-file-0123\n", { mode: 0o600 });
  await writeFile(join(dir.path, ".auth_token"), "tok-from-auth-token\n", {
    mode: 0o600,
  });
  const base = { WORKSPACE_ID: "ws-1" };
  const fromFile = await workspaces(
    { ...base, MOLECULE_WORKSPACE_TOKEN_FILE: file },
    [],
    dir.path,
  );
  assert.deepEqual(fromFile.tokens, ["tok-from-file-0123"]);
  assert.match(fromFile.list[0].tokenSource!, /MOLECULE_WORKSPACE_TOKEN_FILE/);
  const variableFirst = await workspaces(
    {
      ...base,
      MOLECULE_WORKSPACE_TOKEN: "tok-from-variable",
      MOLECULE_WORKSPACE_TOKEN_FILE: file,
    },
    [],
    dir.path,
  );
  assert.deepEqual(variableFirst.tokens, ["tok-from-variable"]);
  const fallback = await workspaces(base, [], dir.path);
  assert.deepEqual(fallback.tokens, ["tok-from-auth-token"]);

  await writeFile(join(dir.path, "empty"), "  \n");
  await writeFile(join(dir.path, "spaced"), "tok one\n");
  for (
    const [name, why] of [
      ["missing", /does not exist/],
      ["empty", /is empty/],
      ["spaced", /does not hold one token/],
    ] as const
  ) {
    await assert.rejects(
      workspaces(
        { ...base, MOLECULE_WORKSPACE_TOKEN_FILE: join(dir.path, name) },
        [],
        dir.path,
      ),
      configError("MOLECULE_WORKSPACE_TOKEN_FILE", why),
      `${name}: no fall-back to .auth_token`,
    );
  }
});

test("MOLECULE_WORKSPACES entries may carry their own platform_url; a bad one is an error naming the entry", async () => {
  const { list, warnings } = await workspaces({
    MOLECULE_WORKSPACES: JSON.stringify([
      {
        id: "ws-a",
        token: "tok-a-0123",
        platform_url: "https://eu.molecule.example/",
      },
      { id: "ws-b", token: "tok-b-0123", platform_url: "  " },
      { id: "ws-c", token: "tok-c-0123", platform_url: "http://other.example" },
      { id: "ws-d", token: "tok-d-0123" },
    ]),
  });
  assert.deepEqual(list.map((w) => w.platformUrl), [
    "https://eu.molecule.example",
    undefined,
    "http://other.example",
    undefined,
  ]);
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0],
    /entry 2 \(id ws-c\) "platform_url" uses plain http/,
  );
  for (
    const [url, why] of [
      [42, /entry 0 \(id ws-a\) has a "platform_url" that is not a string/],
      [
        "ftp://x.example",
        /entry 0 \(id ws-a\) "platform_url" must be an http or https URL/,
      ],
      [
        "not a url",
        /entry 0 \(id ws-a\) "platform_url" must be an absolute http\(s\) URL/,
      ],
    ] as const
  ) {
    await assert.rejects(
      workspaces({
        MOLECULE_WORKSPACES: JSON.stringify([
          { id: "ws-a", token: "tok-a-0123", platform_url: url },
        ]),
      }),
      configError("MOLECULE_WORKSPACES", why),
    );
  }
});

test("a workspaces file's entries carry their platform_url too", async () => {
  await using dir = await scratch();
  const file = join(dir.path, "workspaces.json");
  await writeFile(
    file,
    JSON.stringify([
      {
        id: "ws-a",
        token: "tok-a-0123",
        platform_url: "https://eu.molecule.example",
      },
      { id: "ws-b", token: "tok-b-0123" },
    ]),
    { mode: 0o600 },
  );
  const { list, tokens } = await workspaces({}, ["--workspaces-file", file]);
  assert.deepEqual(list.map((w) => [w.id, w.platformUrl]), [
    ["ws-a", "https://eu.molecule.example"],
    ["ws-b", undefined],
  ]);
  assert.deepEqual(tokens, ["tok-a-0123", "tok-b-0123"]);
});

test("workspace ids outside ^[a-z0-9][a-z0-9-]{0,127}$ are refused, naming the variable or entry", async () => {
  for (const id of ["WS-1", "ws_1", "-ws", "ws 1", "w".repeat(129)]) {
    await assert.rejects(
      workspaces({ WORKSPACE_ID: id, MOLECULE_WORKSPACE_TOKEN: "tok-0123456" }),
      configError("WORKSPACE_ID", /is no workspace id/),
      JSON.stringify(id),
    );
  }
  await assert.rejects(
    workspaces({ MOLECULE_WORKSPACE_TOKEN: "tok-0123456" }, [
      "--workspace-id",
      "Bad.Id",
    ]),
    configError("--workspace-id", /is no workspace id/),
  );
  await assert.rejects(
    workspaces({
      MOLECULE_WORKSPACES: JSON.stringify([
        { id: "ws-1", token: "tok-1-0123" },
        { id: "WS-2", token: "tok-2-0123" },
      ]),
    }),
    configError(
      "MOLECULE_WORKSPACES",
      /entry 1 has an "id" that is no workspace id/,
    ),
  );
  const ok = await workspaces({
    WORKSPACE_ID: "5f0c9a7e-1b2c-4d3e-8f90-0123456789ab",
    MOLECULE_WORKSPACE_TOKEN: "tok-0123456",
  });
  assert.equal(ok.list[0].id, "5f0c9a7e-1b2c-4d3e-8f90-0123456789ab");
});

test("MOLECULE_ORGANIZATION_ID is an alias of MOLECULE_ORG_ID (which wins); 1 to 128 printable characters", () => {
  const flags = parseFlags([]);
  const org = (env: Record<string, string>) =>
    read(flags, envFromRecord(env), "orgId");
  assert.equal(org({ MOLECULE_ORGANIZATION_ID: "org-a" }), "org-a");
  assert.equal(
    org({ MOLECULE_ORG_ID: "org-b", MOLECULE_ORGANIZATION_ID: "org-a" }),
    "org-b",
  );
  assert.equal(
    read(
      parseFlags(["--org-id", "org-c"]),
      envFromRecord({ MOLECULE_ORG_ID: "org-b" }),
      "orgId",
    ),
    "org-c",
  );
  assert.equal(org({}), undefined);
  assert.throws(
    () => org({ MOLECULE_ORGANIZATION_ID: "o".repeat(129) }),
    configError("MOLECULE_ORGANIZATION_ID", /1 to 128/),
  );
  assert.throws(
    () => org({ MOLECULE_ORG_ID: "org\u0001" }),
    configError("MOLECULE_ORG_ID", /printable ASCII/),
  );
});

test("--stale-window / MOLECULE_STALE_WINDOW: whole seconds; unset, it and --state-poll are the library's defaults", () => {
  const window = (args: string[], env: Record<string, string> = {}) =>
    read(parseFlags(args), envFromRecord(env), "staleWindow");
  assert.equal(window([]), undefined);
  assert.equal(window([], { MOLECULE_STALE_WINDOW: "60" }), 60_000);
  assert.equal(
    window(["--stale-window", "90"], { MOLECULE_STALE_WINDOW: "60" }),
    90_000,
  );
  for (const bad of ["0", "1.5", "-3", "soon", "86401"]) {
    assert.throws(
      () => window([`--stale-window=${bad}`]),
      configError("--stale-window", /whole number of seconds/),
      bad,
    );
  }
  const poll = (args: string[]) =>
    read(parseFlags(args), envFromRecord({}), "statePoll");
  assert.equal(poll([]), undefined);
  assert.equal(poll(["--state-poll", "0"]), 0);
});

test("command: a bad MOLECULE_WORKSPACE_TOKEN_FILE or workspace id exits 2 naming it, from mod.ts, without a stack trace", async () => {
  const mod = fileURLToPath(new URL("../mod.ts", import.meta.url));
  const base = { PLATFORM_URL: "http://127.0.0.1:1" };
  const missing = await runScript(mod, {
    env: {
      ...base,
      WORKSPACE_ID: "ws-1",
      MOLECULE_WORKSPACE_TOKEN_FILE: "/nonexistent/token",
    },
  });
  assert.equal(missing.code, 2);
  assert.match(
    missing.stderr,
    /MOLECULE_WORKSPACE_TOKEN_FILE \(\/nonexistent\/token\)/,
  );
  assert.doesNotMatch(missing.stderr, /^\s+at /m);
  const badId = await runScript(mod, {
    env: {
      ...base,
      WORKSPACE_ID: "My_Workspace",
      MOLECULE_WORKSPACE_TOKEN: "tok-0123456",
    },
  });
  assert.equal(badId.code, 2);
  assert.match(
    badId.stderr,
    /WORKSPACE_ID is no workspace id \(My_Workspace\)/,
  );
  assert.doesNotMatch(badId.stderr, /^\s+at /m);
});

test("a workspaces entry's key nothing reads (a typo of platform_url) is one warning naming it and its entry; the list is used", () => {
  const id = "3f9c2a4e-8b1d-4c6e-9a7f-1e2d3c4b5a60";
  const warnings: string[] = [];
  const list = parseWorkspacesJson(
    JSON.stringify([
      { id, token: "tok-0123456789" },
      {
        id: id.replace("3f", "4f"),
        token: "tok-0123456789",
        platfrom_url: "x",
      },
      {
        id: id.replace("3f", "5f"),
        token: "tok-0123456789",
        platfrom_url: "y",
      },
    ]),
    "MOLECULE_WORKSPACES",
    warnings,
  );
  assert.equal(list.length, 3);
  assert.deepEqual(warnings, [
    'MOLECULE_WORKSPACES has keys this command does not read: "platfrom_url" (entry 1); an entry reads "id", "token" and "platform_url" (a typo?)',
  ]);
  const quiet: string[] = [];
  parseWorkspacesJson(
    JSON.stringify([{ id, token: "t-0123456789", platform_url: "" }]),
    "MOLECULE_WORKSPACES",
    quiet,
  );
  assert.deepEqual(quiet, []);
});
