/**
 * Sharding, black-box: shard processes of mod.ts over one workspaces file
 * against one platform emulator.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { shardOf } from "../src/cli/shard.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import type { PlatformEmulator } from "../src/testing/types.ts";
import { getJson, startWithHealth } from "./helpers/health.ts";
import type { Running } from "./helpers/runtime.ts";
import { scratch } from "./helpers/scratch.ts";
import { sleep, waitFor } from "./helpers/wait.ts";

const INTERVAL = "0.5";

const tokenOf = (id: string) => `tok-${id.slice(0, 8)}-0123456789`;

/** Writes the workspaces file atomically (a watcher never sees half of it). */
async function writeList(path: string, ids: string[]): Promise<void> {
  const text = JSON.stringify(ids.map((id) => ({ id, token: tokenOf(id) })));
  await writeFile(`${path}.tmp`, text, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

/** UUIDs, `perShard` at least in each of `total` shards' shares. */
function idsCovering(total: number, perShard: number, count: number): string[] {
  for (let attempt = 0; attempt < 100; attempt++) {
    const ids = Array.from({ length: count }, () => crypto.randomUUID());
    const counts = new Array(total).fill(0);
    for (const id of ids) counts[shardOf(id, total)]++;
    if (counts.every((c) => c >= perShard)) return ids;
  }
  throw new Error("no list covers every shard");
}

/** A shard process: mod.ts with --shard and its own configs dir. */
async function startShard(
  index: number,
  total: number,
  file: string,
  platform: PlatformEmulator,
  dir: string,
): Promise<{ run: Running; base: string }> {
  const configs = join(dir, `configs-${index}`);
  await mkdir(configs, { recursive: true, mode: 0o700 });
  return await startWithHealth(
    [
      "--workspaces-file",
      file,
      "--interval",
      INTERVAL,
      "--shard",
      String(index),
      "--total-shards",
      String(total),
    ],
    {
      PLATFORM_URL: platform.url,
      CONFIGS_DIR: configs,
      // The emulator records the agent card of each register: who registered what.
      MOLECULE_AGENT_NAME: `shard-${index}`,
    },
    30_000,
  );
}

/** The ids a process's /status lists, and its shard field. */
async function statusOf(base: string): Promise<{
  ids: string[];
  accepted: Map<string, number>;
  shard: unknown;
}> {
  const { status, body } = await getJson(`${base}/status`);
  assert.equal(status, 200);
  const workspaces = body.workspaces as {
    workspaceId: string;
    beatsAccepted?: number;
  }[];
  return {
    ids: workspaces.map((w) => w.workspaceId).sort(),
    accepted: new Map(
      workspaces.map((w) => [w.workspaceId, w.beatsAccepted ?? 0]),
    ),
    shard: body.shard,
  };
}

const beatsOf = (platform: PlatformEmulator, id: string) =>
  platform.workspace(id)?.heartbeats ?? 0;

/** Who registered a workspace: the agent card names of its registers. */
const registrars = (platform: PlatformEmulator, id: string) =>
  platform.requestsTo("register", id).map((r) =>
    ((r.body as { agent_card?: { name?: string } } | undefined)?.agent_card)
      ?.name
  );

async function stop(run: Running): Promise<number | null> {
  run.kill("SIGTERM");
  return (await run.done).code;
}

test("three shards over one file of 30 workspaces: each beaten by exactly one; a killed shard's workspaces are taken over by none; restarted, it serves its own again", async () => {
  const TOTAL = 3;
  const ids = idsCovering(TOTAL, 5, 30);
  const expected = Array.from(
    { length: TOTAL },
    (_, k) => ids.filter((id) => shardOf(id, TOTAL) === k).sort(),
  );
  await using platform = await startPlatformEmulator({
    workspaces: Object.fromEntries(ids.map((id) => [id, tokenOf(id)])),
  });
  await using dir = await scratch("molecule-shards-");
  const file = join(dir.path, "workspaces.json");
  await writeList(file, ids);

  const shards = await Promise.all(
    expected.map((_, k) => startShard(k, TOTAL, file, platform, dir.path)),
  );
  try {
    // Every workspace of the list beats, whoever serves it.
    await waitFor(
      () => ids.every((id) => beatsOf(platform, id) >= 2),
      15_000,
      "two heartbeats of every workspace",
    );
    const served: string[][] = [];
    for (let k = 0; k < TOTAL; k++) {
      const s = await statusOf(shards[k].base);
      assert.deepEqual(s.shard, { index: k, total: TOTAL });
      assert.deepEqual(s.ids, expected[k], `shard ${k} serves its share`);
      served.push(s.ids);
      // The start line names the shard and its share of the list.
      assert.match(
        shards[k].run.stderr(),
        new RegExp(
          `shard ${k} of ${TOTAL} \\(numbered from 0\\), ${
            expected[k].length
          } of the list's 30 workspace\\(s\\)`,
        ),
      );
      const metrics = await (await fetch(`${shards[k].base}/metrics`)).text();
      assert.ok(
        metrics.includes(
          `molecule_heartbeat_shard_info{shard="${k}",total_shards="${TOTAL}"} 1\n`,
        ),
        `shard ${k}'s /metrics`,
      );
    }
    // Disjoint, and together the whole list.
    const all = served.flat();
    assert.equal(new Set(all).size, all.length, "no workspace in two shards");
    assert.deepEqual([...all].sort(), [...ids].sort());
    // The platform's view: each workspace registered once, by its shard.
    for (const id of ids) {
      assert.deepEqual(registrars(platform, id), [
        `shard-${shardOf(id, TOTAL)}`,
      ]);
    }

    // Shard 1 dies (a crash: SIGKILL).
    shards[1].run.kill("SIGKILL");
    await shards[1].run.done;
    await sleep(300); // a request it sent before dying is applied by now
    const frozen = new Map(
      expected[1].map((id) => [id, beatsOf(platform, id)]),
    );
    const others = [...expected[0], ...expected[2]];
    const before = new Map(others.map((id) => [id, beatsOf(platform, id)]));
    await waitFor(
      () => others.every((id) => beatsOf(platform, id) >= before.get(id)! + 2),
      10_000,
      "two more heartbeats of shards 0 and 2",
    );
    for (const [id, beats] of frozen) {
      assert.equal(
        beatsOf(platform, id),
        beats,
        `${id} of the dead shard 1 was beaten by another shard`,
      );
    }
    for (const k of [0, 2]) {
      assert.deepEqual(
        (await statusOf(shards[k].base)).ids,
        expected[k],
        `shard ${k} kept exactly its share`,
      );
    }

    // Restarted (Kubernetes brings back the same ordinal), it serves its own.
    shards[1] = await startShard(1, TOTAL, file, platform, dir.path);
    await waitFor(
      () =>
        expected[1].every((id) => beatsOf(platform, id) >= frozen.get(id)! + 2),
      15_000,
      "shard 1's workspaces beaten again",
    );
    assert.deepEqual((await statusOf(shards[1].base)).ids, expected[1]);
    for (const id of ids) {
      const k = shardOf(id, TOTAL);
      // Shard 1's registered again by shard 1, the others' never again.
      assert.deepEqual(
        registrars(platform, id),
        k === 1 ? ["shard-1", "shard-1"] : [`shard-${k}`],
      );
    }
    assert.deepEqual(platform.created, [], "no ghost workspace");
  } finally {
    const codes = await Promise.all(shards.map((s) => stop(s.run)));
    assert.deepEqual(codes, [0, 0, 0]);
  }
});

test("a shard that owns none of the list is live and ready with no workspace; a change of the watched file splits it again, giving, taking and giving back its share", async () => {
  const TOTAL = 4;
  // One workspace in shard 0, then a list with two of shard 2 as well.
  const ids = idsCovering(TOTAL, 2, 40);
  const first = [ids.find((id) => shardOf(id, TOTAL) === 0)!];
  const mine = ids.filter((id) => shardOf(id, TOTAL) === 2).slice(0, 2).sort();
  await using platform = await startPlatformEmulator({
    workspaces: Object.fromEntries(ids.map((id) => [id, tokenOf(id)])),
  });
  await using dir = await scratch("molecule-shard-empty-");
  const file = join(dir.path, "workspaces.json");
  await writeList(file, first);
  const { run, base } = await startShard(2, TOTAL, file, platform, dir.path);
  try {
    await waitFor(
      () => /owns none of the list's 1 workspace/.test(run.stderr()),
      10_000,
      "the empty share's log line",
    );
    for (const path of ["/healthz", "/readyz"]) {
      const r = await getJson(`${base}${path}`);
      assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.body)}`);
    }
    assert.equal((await getJson(`${base}/readyz`)).body.served, 0);
    let s = await statusOf(base);
    assert.deepEqual(s.ids, []);
    assert.deepEqual(s.shard, { index: 2, total: TOTAL });
    await sleep(1_000);
    assert.equal(platform.requests.length, 0, "an empty shard sends nothing");

    // The file grows: shard 2 now owns two of it.
    await writeList(file, [...first, ...mine]);
    await waitFor(
      () => mine.every((id) => beatsOf(platform, id) >= 2),
      10_000,
      "its new share beaten",
    );
    s = await statusOf(base);
    assert.deepEqual(s.ids, mine);
    assert.equal(beatsOf(platform, first[0]), 0, "not its workspace");
    assert.equal((await getJson(`${base}/readyz`)).status, 200);

    // Its share leaves the file: it serves none again, and goes on.
    await writeList(file, first);
    await waitFor(
      async () => (await statusOf(base)).ids.length === 0,
      10_000,
      "its share removed",
    );
    const after = new Map(mine.map((id) => [id, beatsOf(platform, id)]));
    await sleep(1_200);
    for (const id of mine) {
      assert.ok(
        beatsOf(platform, id) <= after.get(id)! + 1,
        `${id} still beaten`,
      );
    }
    assert.equal((await getJson(`${base}/healthz`)).status, 200);
    assert.equal((await getJson(`${base}/readyz`)).status, 200);

    // Serving none, it still looks at the file (no token lookup does): its
    // share comes back.
    const gone = new Map(mine.map((id) => [id, beatsOf(platform, id)]));
    await writeList(file, [...mine, ...first]);
    await waitFor(
      () => mine.every((id) => beatsOf(platform, id) >= gone.get(id)! + 2),
      10_000,
      "its share beaten again",
    );
    assert.deepEqual((await statusOf(base)).ids, mine);
  } finally {
    assert.equal(await stop(run), 0);
  }
});

test("a watched workspaces file whose workspaces all beat on tokens the platform issued (no token lookup reads the file then): an entry added is served, one removed is dropped, within seconds", async () => {
  const ids = Array.from({ length: 3 }, () => crypto.randomUUID());
  await using platform = await startPlatformEmulator({
    workspaces: Object.fromEntries(ids.map((id) => [id, tokenOf(id)])),
    issueAuthToken: true,
  });
  await using dir = await scratch("molecule-file-issued-");
  const file = join(dir.path, "workspaces.json");
  await writeList(file, ids.slice(0, 2));
  const { run, base } = await startWithHealth(
    ["--workspaces-file", file, "--interval", INTERVAL],
    { PLATFORM_URL: platform.url, CONFIGS_DIR: dir.path },
    30_000,
  );
  try {
    await waitFor(
      async () =>
        ids.slice(0, 2).every((id) => beatsOf(platform, id) >= 2) &&
        (await readdir(dir.path)).filter((n) => n.startsWith(".auth_token"))
            .length === 2,
      10_000,
      "both beaten, on the tokens the platform issued (saved)",
    );
    await writeList(file, ids.slice(1));
    await waitFor(
      async () => {
        const s = await statusOf(base);
        return beatsOf(platform, ids[2]) >= 1 &&
          s.ids.join() === ids.slice(1).sort().join();
      },
      10_000,
      "the new entry served, the removed one dropped",
    );
  } finally {
    assert.equal(await stop(run), 0);
  }
});
