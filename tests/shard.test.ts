import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../src/shared/errors.ts";
import { parseFlags } from "../src/cli/flags.ts";
import { helpText } from "../src/cli/help.ts";
import { workspacesSetting } from "../src/cli/workspaces.ts";
import type { WorkspacesFileChanges } from "../src/cli/workspaces.ts";
import { envFromRecord } from "../src/shared/env.ts";
import { startHeartbeat } from "../src/schedule/start_heartbeat.ts";
import { defaultFileSystem } from "../src/storage/default_file_system.ts";
import { startPlatformEmulator } from "../src/testing/mod.ts";
import { captureLogs, text } from "./helpers/logs.ts";
import { waitFor } from "./helpers/wait.ts";
import {
  fnv1a64,
  followShare,
  jumpHash,
  shardOf,
  shardSetting,
  shareOf,
} from "../src/cli/shard.ts";
import { renderMetrics } from "../src/health/metrics.ts";
import { createStatusCache } from "../src/health/status_body.ts";
import { startingMetrics } from "../src/schedule/_counters.ts";
import type { HeartbeatStatus } from "../src/schedule/types.ts";
import { runScript } from "./helpers/runtime.ts";
import { scratch } from "./helpers/scratch.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));

/**
 * `n` UUID-shaped ids from a seeded generator (mulberry32): the same on
 * every run and runtime, so the figures below are reproducible.
 */
function pseudoUuids(n: number, seed = 27): string[] {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0).toString(16).padStart(8, "0");
  };
  return Array.from({ length: n }, () => {
    const h = next() + next() + next() + next();
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${
      h.slice(17, 20)
    }-${h.slice(20, 32)}`;
  });
}

test("FNV-1a 64: the published vectors, and pinned UUIDs (a change of the hash moves every fleet's shards)", () => {
  // The FNV reference test suite's vectors.
  assert.equal(fnv1a64(""), 0xcbf29ce484222325n);
  assert.equal(fnv1a64("a"), 0xaf63dc4c8601ec8cn);
  assert.equal(fnv1a64("foobar"), 0x85944171f73967e8n);
  // Checked against an independent implementation (Python integers).
  assert.equal(
    fnv1a64("5f0c9a7e-1d2b-4c3a-9e8f-0a1b2c3d4e5f"),
    0x46bd38d813e0ebc7n,
  );
  assert.equal(
    fnv1a64("6f1c0a4e-2b7d-4c1e-9a55-3d2f8e7b9c01"),
    0xa6065849d1638b11n,
  );
  assert.equal(fnv1a64("ws-1"), 0xc4058bf5d50f06e5n);
});

test("jump consistent hash: the vectors of the paper's C++ (as ClickHouse and rust-jumphash test it)", () => {
  const vectors: [bigint, number, number][] = [
    [1n, 1, 0],
    [42n, 57, 43],
    [256n, 1024, 520],
    [3735883980n, 1, 0],
    [3735883980n, 666, 361],
    [16045690984833335023n, 255, 237],
    [0n, 60, 0],
    [1n, 60, 55],
    [2n, 60, 46],
  ];
  for (const [key, buckets, expected] of vectors) {
    assert.equal(jumpHash(key, buckets), expected, `jump(${key}, ${buckets})`);
  }
  assert.throws(() => jumpHash(1n, 0), RangeError);
  assert.throws(() => jumpHash(1n, 1.5), RangeError);
});

test("shardOf: pinned shards of fixed ids for 2, 3, 4 and 10 shards", () => {
  const pinned: [string, number[]][] = [
    ["5f0c9a7e-1d2b-4c3a-9e8f-0a1b2c3d4e5f", [1, 1, 3, 6]],
    ["00000000-0000-4000-8000-000000000000", [0, 0, 3, 3]],
    ["ffffffff-ffff-4fff-bfff-ffffffffffff", [0, 2, 3, 6]],
    ["6f1c0a4e-2b7d-4c1e-9a55-3d2f8e7b9c01", [0, 0, 0, 6]],
    ["ws-1", [0, 2, 2, 9]],
    ["ws-2", [1, 1, 1, 1]],
  ];
  for (const [id, shards] of pinned) {
    assert.deepEqual([2, 3, 4, 10].map((m) => shardOf(id, m)), shards, id);
  }
  // One shard is the whole list.
  assert.equal(shardOf("anything", 1), 0);
});

test("3 → 4 shards moves about a quarter of 10,000 ids, each to the new shard; every shard gets a fair share; fast enough", () => {
  const ids = pseudoUuids(10_000);
  assert.equal(new Set(ids).size, ids.length);
  const started = performance.now();
  const three = ids.map((id) => shardOf(id, 3));
  const four = ids.map((id) => shardOf(id, 4));
  const ms = performance.now() - started;
  assert.ok(ms < 3_000, `20,000 shard lookups took ${Math.round(ms)} ms`);
  let moved = 0;
  for (let i = 0; i < ids.length; i++) {
    if (three[i] === four[i]) continue;
    moved++;
    // Consistent: a workspace that moves goes to the new shard, never
    // from one old shard to another.
    assert.equal(four[i], 3, `${ids[i]} moved from ${three[i]} to ${four[i]}`);
  }
  const fraction = moved / ids.length;
  assert.ok(
    fraction >= 0.2 && fraction <= 0.3,
    `${(fraction * 100).toFixed(1)} % moved`,
  );
  // Fair: each shard within 10 % of its even share (the binomial spread
  // is about 1 %).
  for (const [total, shards] of [[3, three], [4, four]] as const) {
    const even = ids.length / total;
    for (let k = 0; k < total; k++) {
      const count = shards.filter((s) => s === k).length;
      assert.ok(
        Math.abs(count - even) <= even * 0.1,
        `shard ${k} of ${total} has ${count}, even is ${even}`,
      );
    }
  }
});

test("shareOf: the shares of 1 to 7 shards are disjoint, cover the list, keep its order; none or one shard is the whole list", () => {
  const list = pseudoUuids(500, 7).map((id) => ({ id }));
  for (let total = 1; total <= 7; total++) {
    const shares = Array.from(
      { length: total },
      (_, index) => shareOf(list, { index, total }),
    );
    const seen = shares.flat().map((w) => w.id);
    assert.equal(seen.length, list.length, `${total} shards`);
    assert.equal(new Set(seen).size, list.length, `${total} shards`);
    for (const share of shares) {
      const order = share.map((w) => list.indexOf(w));
      assert.deepEqual(order, [...order].sort((a, b) => a - b));
    }
  }
  assert.equal(shareOf(list, undefined), list);
});

/** The flags and variables as the command reads them. */
function read(args: string[], vars: Record<string, string> = {}) {
  const env = (name: string) =>
    ({ MOLECULE_WORKSPACES: "[]", ...vars } as Record<string, string>)[name];
  return shardSetting(parseFlags(args), env, false);
}

/** The ConfigError a setting throws: its message and the name to fix. */
function refusal(fn: () => unknown): { message: string; name?: string } {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return { message: error.message, name: error.setting };
  }
  assert.fail("no ConfigError");
}

test("--shard and --total-shards: both or neither, whole numbers in range, a flag beats its variable; every refusal names what to fix", () => {
  assert.equal(read([]), undefined);
  assert.deepEqual(read(["--shard", "2", "--total-shards", "3"]), {
    index: 2,
    total: 3,
  });
  assert.deepEqual(
    read([], { MOLECULE_SHARD: "0", MOLECULE_TOTAL_SHARDS: "1" }),
    { index: 0, total: 1 },
  );
  assert.deepEqual(
    read(["--shard", "1"], { MOLECULE_SHARD: "0", MOLECULE_TOTAL_SHARDS: "2" }),
    { index: 1, total: 2 },
  );
  // Blank counts as unset.
  assert.equal(
    read([], { MOLECULE_SHARD: " ", MOLECULE_TOTAL_SHARDS: "" }),
    undefined,
  );

  const cases: [string[], Record<string, string>, RegExp, string][] = [
    [
      ["--shard", "1"],
      {},
      /^--shard is set but --total-shards/,
      "--total-shards",
    ],
    [
      ["--total-shards", "3"],
      {},
      /^--total-shards is set but --shard/,
      "--shard",
    ],
    [
      [],
      { MOLECULE_SHARD: "1" },
      /^MOLECULE_SHARD is set but --total-shards/,
      "--total-shards",
    ],
    [
      ["--shard", "3", "--total-shards", "3"],
      {},
      /^--shard must be a whole number from 0 to 2 \(--total-shards is 3\), not "3"/,
      "--shard",
    ],
    [
      ["--shard", "1.0", "--total-shards", "3"],
      {},
      /^--shard must be a whole number/,
      "--shard",
    ],
    [
      ["--shard", "one", "--total-shards", "3"],
      {},
      /^--shard must be/,
      "--shard",
    ],
    [
      [],
      { MOLECULE_SHARD: "-1", MOLECULE_TOTAL_SHARDS: "3" },
      /^MOLECULE_SHARD must be a whole number from 0 to 2 \(MOLECULE_TOTAL_SHARDS is 3\)/,
      "MOLECULE_SHARD",
    ],
    [
      ["--shard", "0", "--total-shards", "0"],
      {},
      /^--total-shards must be a whole number of shards from 1 to 65536, not "0"/,
      "--total-shards",
    ],
    [
      ["--shard", "0", "--total-shards", "2.5"],
      {},
      /^--total-shards must be/,
      "--total-shards",
    ],
    [
      ["--shard", "0"],
      { MOLECULE_TOTAL_SHARDS: "99999" },
      /^MOLECULE_TOTAL_SHARDS must be/,
      "MOLECULE_TOTAL_SHARDS",
    ],
  ];
  for (const [args, vars, message, name] of cases) {
    const r = refusal(() => read(args, vars));
    assert.match(r.message, message, JSON.stringify([args, vars]));
    assert.equal(r.name, name, JSON.stringify([args, vars]));
  }
});

test("sharding needs a list: with WORKSPACE_ID or --workspace-id, --demo, or a command after --, it is refused", () => {
  const flags = parseFlags(["--shard", "0", "--total-shards", "2"]);
  const single = (name: string) => name === "WORKSPACE_ID" ? "ws-1" : undefined;
  let r = refusal(() => shardSetting(flags, single));
  assert.match(
    r.message,
    /WORKSPACE_ID names one workspace, which is not split/,
  );
  assert.equal(r.name, "--shard");
  // --workspace-id serves one workspace even beside a list.
  const both = (name: string) =>
    name === "MOLECULE_WORKSPACES" ? "[]" : undefined;
  r = refusal(() =>
    shardSetting(
      parseFlags([
        "--workspace-id",
        "ws-1",
        "--shard",
        "0",
        "--total-shards",
        "2",
      ]),
      both,
    )
  );
  assert.match(r.message, /--workspace-id names one workspace/);
  r = refusal(() =>
    shardSetting(
      parseFlags(["--demo", "--shard", "0", "--total-shards", "2"]),
      both,
    )
  );
  assert.match(r.message, /--demo serves one workspace/);
  r = refusal(() => shardSetting(flags, both, true));
  assert.match(r.message, /wrapper mode/);
  // A file by flag or variable is a list.
  for (
    const [args, env] of [
      [["--workspaces-file", "/x"], () => undefined],
      [[], (n: string) => n === "MOLECULE_WORKSPACES_FILE" ? "/x" : undefined],
    ] as const
  ) {
    assert.deepEqual(
      shardSetting(
        parseFlags([...args, "--shard", "1", "--total-shards", "2"]),
        env,
      ),
      { index: 1, total: 2 },
    );
  }
});

test("through mod.ts: a shard out of range, one flag alone, or sharding a single workspace is exit 2 with one line naming the flag", async () => {
  const list = JSON.stringify([{
    id: "5f0c9a7e-1d2b-4c3a-9e8f-0a1b2c3d4e5f",
    token: "tok-0123456789",
  }]);
  const base = {
    PLATFORM_URL: "http://127.0.0.1:2",
    MOLECULE_WORKSPACES: list,
  };
  const runs: [string[], Record<string, string>, RegExp][] = [
    [
      ["--shard", "3", "--total-shards", "3"],
      base,
      /--shard must be a whole number from 0 to 2/,
    ],
    [
      ["--shard", "1"],
      base,
      /--shard is set but --total-shards \(MOLECULE_TOTAL_SHARDS\) is not/,
    ],
    [
      [],
      {
        PLATFORM_URL: "http://127.0.0.1:2",
        WORKSPACE_ID: "5f0c9a7e-1d2b-4c3a-9e8f-0a1b2c3d4e5f",
        MOLECULE_WORKSPACE_TOKEN: "tok-0123456789",
        MOLECULE_SHARD: "0",
        MOLECULE_TOTAL_SHARDS: "2",
      },
      /MOLECULE_SHARD and MOLECULE_TOTAL_SHARDS split a workspaces list .*WORKSPACE_ID names one workspace/,
    ],
  ];
  await Promise.all(runs.map(async ([args, env, message]) => {
    const r = await runScript(MOD, { args, env, timeoutMs: 15_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, "");
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^molecule-heartbeat: error: /);
    assert.match(lines[0], message);
  }));
});

test("--help lists --shard, --total-shards and their variables", () => {
  const text = helpText();
  for (
    const word of [
      "--shard N",
      "MOLECULE_SHARD",
      "--total-shards M",
      "MOLECULE_TOTAL_SHARDS",
    ]
  ) assert.ok(text.includes(word), `--help lacks ${word}`);
});

/** Debian's prometheus package: `promtool`, if installed. */
const NO_PROMTOOL = spawnSync("promtool", ["--version"], { stdio: "ignore" })
    .status === 0
  ? false
  : "promtool is not installed (apt-get install -y prometheus; CI installs it)";

function metricsText(shard?: { index: number; total: number }): string {
  return renderMetrics({
    metrics: startingMetrics(0),
    logLinesDropped: 0,
    loopLagSeconds: 0,
    connections: { open: 0, closed: {} },
    process: {},
    runtime: { name: "deno", version: "2.9.6" },
    ...(shard ? { shard } : {}),
  });
}

test("/metrics: molecule_heartbeat_shard_info{shard, total_shards} 1 when sharded, a gauge with its help; absent otherwise", () => {
  const text = metricsText({ index: 2, total: 5 });
  assert.match(
    text,
    /^# HELP molecule_heartbeat_shard_info .+\n# TYPE molecule_heartbeat_shard_info gauge\nmolecule_heartbeat_shard_info\{shard="2",total_shards="5"\} 1\n/m,
  );
  assert.doesNotMatch(metricsText(), /shard_info/);
});

test("/metrics with the shard passes promtool check metrics", {
  skip: NO_PROMTOOL,
}, async () => {
  await using dir = await scratch("molecule-shard-promtool-");
  const file = join(dir.path, "metrics.txt");
  await writeFile(file, metricsText({ index: 0, total: 3 }));
  const check = spawnSync("sh", ["-c", `promtool check metrics < '${file}'`], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
  assert.equal(check.stdout + check.stderr, "", "no lint findings");
});

test("/status: the shard after the fleet's fields when sharded, no shard field otherwise", async () => {
  const snapshot = {
    stopped: false,
    intervalMs: 20_000,
    uptimeSeconds: 1,
    inFlight: 0,
    maxInFlight: 256,
    beatsSkipped: 0,
    retriesDeferred: 0,
    workspaces: [],
  } as unknown as HeartbeatStatus;
  const text = async (options: Parameters<typeof createStatusCache>[1]) => {
    const body = await createStatusCache(() => snapshot, options).body();
    return body.parts.map((p) => new TextDecoder().decode(p)).join("");
  };
  const sharded = JSON.parse(await text({ shard: { index: 1, total: 3 } }));
  assert.deepEqual(sharded.shard, { index: 1, total: 3 });
  assert.deepEqual(sharded.workspaces, []);
  assert.equal(sharded.intervalMs, 20_000);
  assert.equal("shard" in JSON.parse(await text({})), false);
});

test("a watched workspaces file: a refused token replaced in it is served anew and accepted; a changed platform_url moves the workspace there; a key added later is warned about", async () => {
  const [refused, moved] = [
    "5f0c9a7e-1111-4222-8333-444455556601",
    "5f0c9a7e-1111-4222-8333-444455556602",
  ];
  await using dir = await scratch();
  await using first = await startPlatformEmulator({
    workspaces: { [refused]: "tok-right-0001", [moved]: "tok-moved-0002" },
  });
  await using second = await startPlatformEmulator({
    workspaces: { [moved]: "tok-moved-0002" },
  });
  const file = join(dir.path, "workspaces.json");
  const write = (entries: object[]) =>
    writeFile(file, JSON.stringify(entries), { mode: 0o600 });
  await write([
    { id: refused, token: "tok-wrong-0001" },
    { id: moved, token: "tok-moved-0002" },
  ]);
  const changes: WorkspacesFileChanges = {};
  const workspaces = await workspacesSetting({
    flags: parseFlags(["--workspaces-file", file]),
    env: envFromRecord({ PLATFORM_URL: first.url }),
    fs: await defaultFileSystem(),
    configsDir: dir.path,
    warnings: [],
    changes,
  });
  await captureLogs(async (records) => {
    await using hb = startHeartbeat({
      platformUrl: first.url,
      workspaces,
      intervalMs: 200,
    });
    changes.listener = followShare(hb, undefined, changes);
    const status = (id: string) =>
      hb.status().workspaces.find((w) => w.workspaceId === id);
    await waitFor(() => status(refused)?.rejectedFor === "token", 10_000);
    await write([
      { id: refused, token: "tok-right-0001" },
      { id: moved, token: "tok-moved-0002", platform_url: second.url, tpyo: 1 },
    ]);
    await waitFor(
      () =>
        (first.workspace(refused)?.heartbeats ?? 0) > 0 &&
        (second.workspace(moved)?.heartbeats ?? 0) > 0,
      10_000,
      "beats with the new token and at the new URL",
    );
    assert.equal(status(refused)?.rejected, false);
    assert.equal(status(moved)?.platformUrl, second.url);
    const beatsAtFirst = first.workspace(moved)!.heartbeats;
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(first.workspace(moved)!.heartbeats, beatsAtFirst);
    const lines = records.map(text);
    assert.ok(
      lines.some((l) => /serving 2 anew/.test(l)),
      lines.join("\n"),
    );
    // Said once: a later version with the same key says nothing again.
    await write([
      { id: refused, token: "tok-right-0001" },
      { id: moved, token: "tok-moved-0002", platform_url: second.url, tpyo: 2 },
    ]);
    await changes.poll!();
    await new Promise((r) => setTimeout(r, 1_200));
    assert.equal(
      records.map(text).filter((l) =>
        /keys this command does not read: "tpyo"/.test(l)
      ).length,
      1,
      lines.join("\n"),
    );
  });
});
