// Tokens that survive crashes and full disks (issue 25): every write is a
// 0600 temporary file, written, fsynced and renamed, on both adapters; a
// failure names the file written and its error code, never the temporary
// file's random name (so one failure is one warning, not one per beat); at
// start, the token a killed process left in a temporary file is taken or
// removed with a line, and stale temporary files of ours are removed.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  mkdir,
  readdir,
  readFile,
  stat,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FileSecretStore } from "../mod.ts";
import type { FileSystem } from "../src/storage/file_system.ts";
import {
  FileWriteError,
  writeFileAtomic,
} from "../src/storage/_atomic_file.ts";
import { tidyConfigsDir } from "../src/storage/configs_dir.ts";
import { createDenoFileSystem } from "../src/storage/file_system_deno.ts";
import { createNodeFileSystem } from "../src/storage/file_system_node.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";
import { runScript, startScript } from "./helpers/runtime.ts";
import { scratch } from "./helpers/scratch.ts";
import { waitFor } from "./helpers/wait.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const adapters: [string, () => FileSystem][] = [[
  "node:fs",
  createNodeFileSystem,
]];
if ("Deno" in globalThis) adapters.push(["Deno", createDenoFileSystem]);

/** A temporary file's name as writeFileAtomic makes it. */
const tempOf = (target: string) => `${target}.${crypto.randomUUID()}.tmp`;

/** Sets a file's modification time `secondsAgo` in the past. */
async function age(path: string, secondsAgo: number) {
  const when = new Date(Date.now() - secondsAgo * 1000);
  await utimes(path, when, when);
}

for (const [name, make] of adapters) {
  test(`${name} adapter: a write is a 0600 temporary file, whole and flushed before it is renamed over the target, then the dir is flushed`, async () => {
    await using dir = await scratch("molecule-durable-");
    const real = make();
    const seen: string[] = [];
    const fs: FileSystem = {
      ...real,
      async writeNew(path, data, mode) {
        await real.writeNew(path, data, mode);
        seen.push(`writeNew ${path.endsWith(".tmp") ? "tmp" : path}`);
      },
      async rename(from, to) {
        // What the rename publishes: mode 0600 and the whole value.
        const info = await stat(from);
        seen.push(
          `rename ${(info.mode & 0o777).toString(8)} ${await readFile(
            from,
            "utf8",
          )} -> ${to.split("/").pop()}`,
        );
        await real.rename(from, to);
      },
      async syncDir(path) {
        seen.push(`syncDir ${path === dir.path}`);
        await real.syncDir?.(path);
      },
    };
    const store = new FileSecretStore({ dir: dir.path, fs });
    await store.save("auth-token", "ws", "issued-token-0123456789");
    assert.deepEqual(seen, [
      "writeNew tmp",
      "rename 600 issued-token-0123456789 -> .auth_token",
      "syncDir true",
    ]);
    assert.deepEqual(await readdir(dir.path), [".auth_token"]);
    assert.equal(
      (await stat(join(dir.path, ".auth_token"))).mode & 0o777,
      0o600,
    );
  });

  test(`${name} adapter: a failed write names the target and the error code, the same every time, never the temporary file`, async () => {
    await using dir = await scratch("molecule-durable-");
    const target = join(dir.path, ".platform_inbound_secret");
    await mkdir(target); // a directory in its place: every rename fails, even as root
    const messages: string[] = [];
    for (let i = 0; i < 3; i++) {
      const error = await writeFileAtomic(make(), dir.path, target, "s3cr3t")
        .then(() => undefined, (e) => e);
      assert.ok(error instanceof FileWriteError, String(error));
      assert.equal(error.code, "EISDIR");
      assert.equal(error.path, target);
      messages.push(error.message);
    }
    assert.equal(
      messages[0],
      `cannot write ${target}: a directory is in its place (EISDIR)`,
    );
    assert.equal(new Set(messages).size, 1, messages.join("\n"));
    assert.deepEqual(await readdir(dir.path), [".platform_inbound_secret"]);

    // A file where the dir should be: the dir cannot be made.
    const blocked = join(dir.path, "file");
    await writeFile(blocked, "in the way");
    const error = await writeFileAtomic(
      make(),
      join(blocked, "configs"),
      join(blocked, "configs", ".auth_token"),
      "t0k3n-value",
    ).then(() => undefined, (e) => e);
    assert.ok(error instanceof FileWriteError);
    assert.match(
      error.message,
      /^cannot write .*\/file\/configs\/\.auth_token: .* \(E[A-Z]+\)$/,
    );
  });

  test(`${name} adapter: at start, a token left in a temporary file is taken when the token file is missing or older, removed when it is newer or the same; stale temporary files go, young ones stay`, async () => {
    await using dir = await scratch("molecule-durable-");
    const fs = make();
    const at = (n: string) => join(dir.path, n);
    // 1. No .auth_token: the orphan is taken (even an old one: it is the token).
    const orphan = tempOf(at(".auth_token"));
    await writeFile(orphan, "issued-after-crash-1\n", { mode: 0o600 });
    await age(orphan, 600);
    // 2. An older token file of a workspace: the newer orphan is taken.
    await writeFile(at(".auth_token.ws-a"), "older-token-a", { mode: 0o600 });
    await age(at(".auth_token.ws-a"), 120);
    const newerA = tempOf(at(".auth_token.ws-a"));
    await writeFile(newerA, "newer-token-a", { mode: 0o600 });
    await age(newerA, 30);
    // 3. A newer token file: the older orphan is removed.
    const olderB = tempOf(at(".auth_token.ws-b"));
    await writeFile(olderB, "older-token-b", { mode: 0o600 });
    await age(olderB, 120);
    await writeFile(at(".auth_token.ws-b"), "newer-token-b", { mode: 0o600 });
    // 4. A young temporary file without a whole token (a writer may be at
    // it) stays; an old one, and an old secret's, go; others are not ours.
    const young = tempOf(at(".auth_token.ws-c"));
    await writeFile(young, "", { mode: 0o600 });
    const oldEmpty = tempOf(at(".auth_token.ws-d"));
    await writeFile(oldEmpty, "", { mode: 0o600 });
    await age(oldEmpty, 120);
    const oldSecret = tempOf(at(".platform_inbound_secret"));
    await writeFile(oldSecret, "half", { mode: 0o600 });
    await age(oldSecret, 120);
    const probe = at(`.molecule-write-probe-${crypto.randomUUID()}.tmp`);
    await writeFile(probe, "");
    await age(probe, 120);
    await writeFile(at("unrelated.tmp"), "x");
    await age(at("unrelated.tmp"), 120);

    const lines = await captureLogs(async (records) => {
      const tidy = await tidyConfigsDir(dir.path, { fs });
      assert.deepEqual(
        tidy.orphans.map((o) => [o.action, o.target.split("/").pop()]).sort(),
        [
          ["removed", ".auth_token.ws-b"],
          ["taken", ".auth_token"],
          ["taken", ".auth_token.ws-a"],
        ],
      );
      assert.equal(tidy.stale, 3);
      return levelsAndTexts(records);
    });
    assert.equal(
      await readFile(at(".auth_token"), "utf8"),
      "issued-after-crash-1\n",
    );
    assert.equal(
      await readFile(at(".auth_token.ws-a"), "utf8"),
      "newer-token-a",
    );
    assert.equal(
      await readFile(at(".auth_token.ws-b"), "utf8"),
      "newer-token-b",
    );
    assert.equal((await stat(at(".auth_token"))).mode & 0o777, 0o600);
    assert.deepEqual(
      (await readdir(dir.path)).sort(),
      [
        ".auth_token",
        ".auth_token.ws-a",
        ".auth_token.ws-b",
        young.split("/").pop(),
        "unrelated.tmp",
      ].sort(),
    );
    // One line for each orphan, naming both files, never the token.
    const said = lines.filter((l) => /interrupted write/.test(l));
    assert.equal(said.length, 4, lines.join("\n"));
    assert.ok(
      said.some((l) =>
        l.startsWith("warning: ") && l.includes(orphan) &&
        l.includes(`it is now ${at(".auth_token")}`)
      ),
      said.join("\n"),
    );
    assert.ok(
      said.some((l) =>
        l.includes(`removed ${olderB}`) && l.includes("holds a newer one")
      ),
      said.join("\n"),
    );
    assert.ok(said.some((l) => /removed 3 temporary file/.test(l)));
    assert.ok(!lines.some((l) => /token-[ab]|after-crash/.test(l)));

    // The same token in place and older: the orphan is only removed.
    await writeFile(at(".auth_token.ws-e"), "same-token-e", { mode: 0o600 });
    await age(at(".auth_token.ws-e"), 60);
    const same = tempOf(at(".auth_token.ws-e"));
    await writeFile(same, "same-token-e", { mode: 0o600 });
    const done = await captureLogs(async () =>
      (await tidyConfigsDir(dir.path, { fs })).orphans
    );
    assert.deepEqual(done.map((o) => o.action), ["removed"]);
    assert.ok(!(await readdir(dir.path)).includes(same.split("/").pop()!));
  });
}

test("the token store takes a token left in a temporary file before its first read (the library, without the command)", async () => {
  await using dir = await scratch("molecule-durable-");
  const orphan = tempOf(join(dir.path, ".auth_token.ws"));
  await writeFile(orphan, "issued-before-the-kill", { mode: 0o600 });
  const store = new FileSecretStore({ dir: dir.path, perWorkspace: true });
  await captureLogs(async () => {
    assert.equal(
      await store.load("auth-token", "ws"),
      "issued-before-the-kill",
    );
  });
  assert.deepEqual(await readdir(dir.path), [".auth_token.ws"]);
  // An inbound secret is never taken from one: it comes again with every beat.
  const secretOrphan = tempOf(join(dir.path, ".platform_inbound_secret"));
  await writeFile(secretOrphan, "a-secret-value", { mode: 0o600 });
  assert.equal(
    await new FileSecretStore({ dir: dir.path }).load("inbound-secret", "ws"),
    undefined,
  );
});

test("command (mod.ts): 50 workspaces whose secret files cannot be written: a warning naming the file and the error, the others summarised, not one per beat", async () => {
  await using dir = await scratch("molecule-durable-");
  const ids = Array.from(
    { length: 50 },
    (_, i) => `3f9c2a4e-8b1d-4c6e-9a7f-${String(i).padStart(12, "0")}`,
  );
  const tokens: Record<string, string> = {};
  for (const id of ids) {
    tokens[id] = `token-of-${id}`;
    // A directory where each secret file goes fails every write, even as
    // root (a read-only dir does not stop root), and every rename failure
    // used to quote a new random temporary name.
    await mkdir(join(dir.path, `.platform_inbound_secret.${id}`));
  }
  await using platform = await startPlatformEmulator({ workspaces: tokens });
  const run = startScript(MOD, {
    env: {
      PLATFORM_URL: platform.url,
      CONFIGS_DIR: dir.path,
      MOLECULE_HEARTBEAT_INTERVAL: "0.25",
      MOLECULE_WORKSPACES: JSON.stringify(
        ids.map((id) => ({ id, token: tokens[id] })),
      ),
    },
    timeoutMs: 30_000,
  });
  try {
    // Every workspace registered (the secret comes with the register's
    // answer) and beaten at least 5 times: its secret refused on each.
    await waitFor(
      () =>
        ids.every((id) =>
          platform.requestsTo("register", id).length >= 1 &&
          platform.requestsTo("heartbeat", id).length >= 5
        ),
      20_000,
      "every workspace registered and beaten 5 times",
    );
  } finally {
    run.kill("SIGTERM");
  }
  const done = await run.done;
  assert.equal(done.code, 0, done.stderr);
  const lines = done.stderr.split("\n").filter((l) =>
    /could not store the inbound secret/.test(l)
  );
  // The first of each second as it is, the rest of that second as one line
  // (and each workspace once per reason: nothing more on later beats).
  assert.ok(
    lines.length >= 1 && lines.length <= 5,
    `${lines.length} lines:\n${done.stderr.slice(0, 3000)}`,
  );
  const id = ids.find((i) => lines[0].includes(`of ${i}:`))!;
  assert.ok(id, lines[0]);
  assert.ok(
    lines[0].includes(
      `cannot write ${
        join(dir.path, `.platform_inbound_secret.${id}`)
      }: a directory is in its place (EISDIR)`,
    ),
    lines[0],
  );
  assert.match(
    done.stderr,
    /more workspace\(s\) had the same trouble \(secret\)/,
  );
  const all = done.stderr.split("\n").filter((l) =>
    /inbound secret|same trouble \(secret\)/.test(l)
  );
  assert.ok(all.length <= 10, `${all.length} lines`);
  assert.doesNotMatch(done.stderr, /\.tmp/);
  assert.ok(
    (await readdir(dir.path)).every((n) => !n.endsWith(".tmp")),
    "no temporary file left",
  );
});

test("command (mod.ts): a token a killed process left in a temporary file is taken at start, said in one line, and used; stale temporary files are removed", async () => {
  await using dir = await scratch("molecule-durable-");
  const id = "3f9c2a4e-8b1d-4c6e-9a7f-1e2d3c4b5a60";
  // The platform minted a token (the old one is dead), the process was
  // killed between writing it to a temporary file and renaming it.
  await using platform = await startPlatformEmulator({
    workspaces: { [id]: "minted-after-the-old-one-0123" },
  });
  await writeFile(join(dir.path, ".auth_token"), "the-old-dead-token-0123", {
    mode: 0o600,
  });
  await age(join(dir.path, ".auth_token"), 300);
  const orphan = tempOf(join(dir.path, ".auth_token"));
  await writeFile(orphan, "minted-after-the-old-one-0123", { mode: 0o600 });
  await age(orphan, 240);
  const stale = tempOf(join(dir.path, ".platform_inbound_secret"));
  await writeFile(stale, "half-a-sec", { mode: 0o600 });
  await age(stale, 600);

  const once = await runScript(MOD, {
    args: ["--once"],
    env: {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: id,
      CONFIGS_DIR: dir.path,
    },
  });
  assert.equal(once.code, 0, once.stderr);
  const said = once.stderr.split("\n").filter((l) => l.includes(orphan));
  assert.equal(said.length, 1, once.stderr);
  assert.match(
    said[0],
    new RegExp(
      `WARN .*never put in place: it is now ${dir.path}/\\.auth_token$`,
    ),
  );
  assert.ok(!once.stderr.includes("minted-after"), "never the token");
  assert.equal(
    await readFile(join(dir.path, ".auth_token"), "utf8"),
    "minted-after-the-old-one-0123",
  );
  assert.ok(
    platform.requestsTo("heartbeat", id).every((r) => r.authorized),
    "the taken token was used",
  );
  const names = await readdir(dir.path);
  assert.ok(names.every((n) => !n.endsWith(".tmp")), names.join());
});
