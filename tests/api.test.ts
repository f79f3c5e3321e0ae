import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/**
 * The public API, by entry point and name: a change here is a change of the
 * semver promise (deno.json "exports" maps each entry to its file).
 */
const PUBLIC_API: Record<string, string[]> = {
  // What a user needs to keep workspaces alive, and beside an MCP server.
  "mod.ts": [
    "BeatFailureReason",
    "ConfigsDir",
    "createMcpStreamTap",
    "createMcpTracker",
    "FileSecretStore",
    "FileSecretStoreOptions",
    "HEARTBEAT_INTERVAL_MS",
    "HeartbeatError",
    "HeartbeatEventMap",
    "HeartbeatHandle",
    "HeartbeatMetrics",
    "HeartbeatOptions",
    "HeartbeatStats",
    "HeartbeatStatus",
    "LOG_CATEGORY",
    "maskSecrets",
    "McpStreamTap",
    "McpStreamTapOptions",
    "McpTracker",
    "McpTrackerOptions",
    "McpWorkStats",
    "MemorySecretStore",
    "ReadyResult",
    "REDACTED",
    "REQUEST_TIMEOUT_MS",
    "resolveConfigsDir",
    "ResolveConfigsDirOptions",
    "SecretKind",
    "SecretStore",
    "STALE_AFTER_MS",
    "startHeartbeat",
    "TokenSource",
    "trackTransport",
    "TransportLike",
    "VERSION",
    "WorkspaceConfig",
    "WorkspacePhase",
    "WorkspaceStatus",
  ],
  // `@molecule/heartbeat/platform`: one request at a time.
  "src/platform/mod.ts": [
    "AgentCard",
    "AgentSkill",
    "buildAgentCard",
    "FetchLike",
    "fetchWorkspaceState",
    "FetchWorkspaceStateOptions",
    "HeartbeatResult",
    "HeartbeatStats",
    "isValidToken",
    "lookupWorkspace",
    "LookupWorkspaceOptions",
    "Outcome",
    "OutcomeKind",
    "register",
    "RegisterOptions",
    "RegisterResult",
    "sendHeartbeat",
    "SendHeartbeatOptions",
    "TokenSource",
    "WorkspaceLookup",
    "WorkspaceLookupKind",
    "WorkspaceState",
    "WorkspaceStateKind",
  ],
  // `@molecule/heartbeat/testing`: the emulator, and the clock to fake.
  "src/testing/mod.ts": [
    "Clock",
    "EmulatedPath",
    "EmulatedWorkspace",
    "Fault",
    "FaultScope",
    "PlatformEmulator",
    "PlatformEmulatorOptions",
    "RequestRecord",
    "startPlatformEmulator",
    "systemClock",
  ],
  // `@molecule/heartbeat/cli`: the command as a function.
  "cli.ts": ["CliContext", "EXIT", "main", "runAsMain"],
};
const ENTRIES = Object.keys(PUBLIC_API);

/** The command's plumbing: no entry point exports any of it. */
const PRIVATE = [
  "ConfigError",
  "createDenoFileSystem",
  "createNodeFileSystem",
  "defaultFileSystem",
  "envFromRecord",
  "EnvReader",
  "FileInfo",
  "FileReadError",
  "FileSystem",
  "fileToken",
  "FileWriteError",
  "HeartbeatBody",
  "buildHeartbeatBody",
  "InvalidTokenError",
  "PlatformAnswer",
  "processEnv",
  "ReadTextOptions",
  "RegisterAuthError",
  "WatchedFile",
  "watchFile",
  "WatchFileOptions",
];

function deno(): string {
  if ("Deno" in globalThis) return process.execPath;
  return join(ROOT, "node_modules/.bin/deno");
}

interface DocNode {
  name: string;
  declarations: { kind: string; jsDoc?: { doc?: string } }[];
}

function docOf(entry: string): DocNode[] {
  const out = execFileSync(deno(), ["doc", "--json", entry], {
    cwd: ROOT,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, NO_COLOR: "1" },
  });
  const json = JSON.parse(out) as {
    nodes: Record<string, { symbols?: DocNode[] }>;
  };
  return Object.values(json.nodes).flatMap((n) => n.symbols ?? []);
}

/** Relative `.ts` imports and re-exports of a file, resolved. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [
    ...text.matchAll(
      /^(?:import|export)\b[^;]*?\bfrom\s*["'](\.{1,2}\/[^"']+\.ts)["']/gms,
    ),
    ...text.matchAll(/\bimport\(\s*["'](\.{1,2}\/[^"']+\.ts)["']\s*\)/g),
    ...text.matchAll(/^import\s*["'](\.{1,2}\/[^"']+\.ts)["']/gm),
  ].map((m) => m[1]);
  return specs.map((s) => resolve(dirname(file), s));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sourceFiles(join(dir, e.name))
      : e.name.endsWith(".ts")
      ? [join(dir, e.name)]
      : []
  );
}

test("each entry point exports exactly its public API, by name; deno.json exports those entry points", () => {
  const config = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8")) as {
    exports: Record<string, string>;
  };
  assert.deepEqual(
    Object.values(config.exports).map((p) => p.replace(/^\.\//, "")).sort(),
    [...ENTRIES].sort(),
    "deno.json's exports changed: update PUBLIC_API here if that is meant",
  );
  for (const entry of ENTRIES) {
    const names = docOf(entry).map((s) => s.name).sort();
    assert.deepEqual(
      names,
      [...PUBLIC_API[entry]].sort(),
      `${entry}'s exports changed: update PUBLIC_API here if that is meant (every name is a semver promise on JSR)`,
    );
    const text = readFileSync(join(ROOT, entry), "utf8");
    assert.ok(!/export \*/.test(text), `${entry} re-exports by name, never *`);
  }
});

test("mod.ts exports at most 40 names; no entry point exports the plumbing", () => {
  assert.ok(
    PUBLIC_API["mod.ts"].length <= 40,
    `mod.ts exports ${PUBLIC_API["mod.ts"].length} names`,
  );
  for (const entry of ENTRIES) {
    for (const name of PRIVATE) {
      assert.ok(
        !PUBLIC_API[entry].includes(name),
        `${entry} exports ${name}, the command's plumbing`,
      );
    }
  }
});

test("every export of every entry point has documentation", () => {
  for (const entry of ENTRIES) {
    for (const symbol of docOf(entry)) {
      if (symbol.declarations.every((d) => d.kind === "import")) continue;
      const documented = symbol.declarations.some((d) =>
        (d.jsDoc?.doc ?? "").trim() !== ""
      );
      assert.ok(documented, `${entry}: ${symbol.name} has no JSDoc`);
    }
  }
});

test("no entry point re-exports from a private (_name.ts) file", () => {
  for (const entry of ENTRIES) {
    const text = readFileSync(join(ROOT, entry), "utf8");
    for (
      const m of text.matchAll(/^export\b[^;]*?\bfrom\s*["']([^"']+)["']/gms)
    ) {
      const base = m[1].split("/").pop()!;
      assert.ok(
        !base.startsWith("_"),
        `${entry} re-exports from the private file ${m[1]}`,
      );
    }
  }
});

test("the sources have no import cycles", () => {
  const files = [
    ...sourceFiles(join(ROOT, "src")),
    join(ROOT, "mod.ts"),
    join(ROOT, "cli.ts"),
  ];
  const graph = new Map(files.map((f) => [f, importsOf(f)]));
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (file: string) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") {
      const cycle = stack.slice(stack.indexOf(file)).concat(file);
      assert.fail(
        `import cycle: ${cycle.map((f) => relative(ROOT, f)).join(" -> ")}`,
      );
    }
    state.set(file, "open");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (graph.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of files) visit(file);
});

test("cli.ts is a thin entry (under 40 lines) over src/cli/main.ts", () => {
  const text = readFileSync(join(ROOT, "cli.ts"), "utf8");
  assert.ok(text.split("\n").length < 40, "cli.ts has grown past 40 lines");
  assert.match(text, /from "\.\/src\/cli\/main\.ts"/);
});

/** The layers, and what each may import (docs/architecture.md draws them). */
const LAYERS: Record<string, string[]> = {
  shared: ["shared"],
  platform: ["shared", "platform"],
  storage: ["shared", "storage"],
  mcp: ["shared", "platform", "mcp"],
  schedule: ["shared", "platform", "storage", "schedule"],
  testing: ["shared", "testing"],
  health: ["shared", "schedule", "mcp", "health"],
  cli: [
    "shared",
    "platform",
    "storage",
    "mcp",
    "schedule",
    "testing",
    "health",
    "cli",
  ],
};

test("imports run one way: each layer of src/ imports only the layers below it", () => {
  const src = join(ROOT, "src");
  for (const file of sourceFiles(src)) {
    const layer = relative(src, file).split("/")[0];
    assert.ok(
      LAYERS[layer],
      `${relative(ROOT, file)}: src/${layer}/ is no layer`,
    );
    for (const target of importsOf(file)) {
      const rel = relative(src, target);
      assert.ok(
        !rel.startsWith(".."),
        `${relative(ROOT, file)} imports ${
          relative(ROOT, target)
        }, outside src/`,
      );
      const to = rel.split("/")[0];
      assert.ok(
        LAYERS[layer].includes(to),
        `${relative(ROOT, file)} (layer ${layer}) imports ${
          relative(ROOT, target)
        } (layer ${to})`,
      );
    }
  }
});

test("tsconfig.build.json (the Node build the benches run) names files that exist", () => {
  const config = JSON.parse(
    readFileSync(join(ROOT, "tsconfig.build.json"), "utf8"),
  ) as { files: string[] };
  for (const file of config.files) {
    assert.ok(
      sourceFiles(ROOT).length > 0 && readFileSync(join(ROOT, file)).length > 0,
      file,
    );
  }
});

test("an event listener's detail is typed by HeartbeatEventMap (docs/library.md says so)", async () => {
  const { startHeartbeat } = await import("../mod.ts");
  type HeartbeatEventMap = import("../mod.ts").HeartbeatEventMap;
  const hb = startHeartbeat({
    platformUrl: "http://127.0.0.1:9",
    workspaces: [{ id: "ws-1", token: "tok-0123456789" }],
    signal: AbortSignal.abort(),
  });
  const seen: string[] = [];
  // Type-checked: `e.detail.workspaceId` is a string, `e.detail.status` a number.
  const onBeat = (e: CustomEvent<HeartbeatEventMap["beat"]>) => {
    const id: string = e.detail.workspaceId;
    const status: number = e.detail.status;
    seen.push(`${id} ${status}`);
  };
  hb.addEventListener("beat", onBeat);
  hb.addEventListener("beat", (e) => seen.push(e.detail.workspaceId));
  hb.dispatchEvent(
    new CustomEvent("beat", {
      detail: { workspaceId: "ws-1", status: 200, latencyMs: 1 },
    }),
  );
  hb.removeEventListener("beat", onBeat);
  hb.dispatchEvent(
    new CustomEvent("beat", {
      detail: { workspaceId: "ws-2", status: 200, latencyMs: 1 },
    }),
  );
  await hb.stopped;
  assert.deepEqual(seen, ["ws-1 200", "ws-1", "ws-2"]);
});
