import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ENTRIES = [
  "mod.ts",
  "src/testing/mod.ts",
  "src/storage/file_system_node.ts",
  "cli.ts",
];

/** The public API, by name: a change here is a change of the semver promise. */
const PUBLIC_API = [
  "AgentCard",
  "AgentSkill",
  "BeatFailureReason",
  "buildAgentCard",
  "buildHeartbeatBody",
  "Clock",
  "ConfigError",
  "ConfigsDir",
  "createDenoFileSystem",
  "createMcpStreamTap",
  "createMcpTracker",
  "defaultFileSystem",
  "envFromRecord",
  "EnvReader",
  "FetchLike",
  "fetchWorkspaceState",
  "FetchWorkspaceStateOptions",
  "FileInfo",
  "FileReadError",
  "FileSecretStore",
  "FileSecretStoreOptions",
  "FileSystem",
  "fileToken",
  "HEARTBEAT_INTERVAL_MS",
  "HeartbeatBody",
  "HeartbeatError",
  "HeartbeatEventMap",
  "HeartbeatHandle",
  "HeartbeatMetrics",
  "HeartbeatOptions",
  "HeartbeatResult",
  "HeartbeatStats",
  "HeartbeatStatus",
  "InvalidTokenError",
  "isValidToken",
  "LOG_CATEGORY",
  "maskSecrets",
  "McpStreamTap",
  "McpStreamTapOptions",
  "McpTracker",
  "McpTrackerOptions",
  "McpWorkStats",
  "MemorySecretStore",
  "Outcome",
  "OutcomeKind",
  "PlatformAnswer",
  "processEnv",
  "ReadTextOptions",
  "ReadyResult",
  "REDACTED",
  "register",
  "RegisterAuthError",
  "RegisterOptions",
  "RegisterResult",
  "REQUEST_TIMEOUT_MS",
  "resolveConfigsDir",
  "ResolveConfigsDirOptions",
  "SecretStore",
  "sendHeartbeat",
  "SendHeartbeatOptions",
  "STALE_AFTER_MS",
  "startHeartbeat",
  "systemClock",
  "TokenSource",
  "trackTransport",
  "TransportLike",
  "VERSION",
  "WatchedFile",
  "watchFile",
  "WatchFileOptions",
  "WorkspaceConfig",
  "WorkspaceState",
  "WorkspaceStateKind",
  "WorkspaceStatus",
  // issue 17 and 20
  "FileTokenStore",
  "FileTokenStoreOptions",
  "lookupWorkspace",
  "LookupWorkspaceOptions",
  "MemoryTokenStore",
  "TokenStore",
  "WorkspaceLifeState",
  "WorkspaceLookup",
  "WorkspaceLookupKind",
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

test("mod.ts exports exactly the public API, by name", () => {
  const names = docOf("mod.ts").map((s) => s.name).sort();
  assert.deepEqual(
    names,
    [...PUBLIC_API].sort(),
    "mod.ts's exports changed: update PUBLIC_API here if that is meant (every name is a semver promise on JSR)",
  );
  const text = readFileSync(join(ROOT, "mod.ts"), "utf8");
  assert.ok(!/export \*/.test(text), "mod.ts re-exports by name, never *");
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
