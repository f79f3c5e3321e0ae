import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileSecretStore, resolveConfigsDir, startHeartbeat } from "../mod.ts";
import { envFromRecord } from "../src/shared/env.ts";
import type { FileSystem } from "../src/storage/file_system.ts";
import { createDenoFileSystem } from "../src/storage/file_system_deno.ts";
import { createNodeFileSystem } from "../src/storage/file_system_node.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { captureLogs } from "./helpers/logs.ts";
import { waitFor } from "./helpers/wait.ts";

const isDeno = "Deno" in globalThis;
const isRoot = (globalThis as { process?: { getuid?: () => number } }).process
  ?.getuid?.() === 0;
const adapters: [string, () => FileSystem][] = [[
  "node:fs",
  createNodeFileSystem,
]];
if (isDeno) adapters.push(["Deno", createDenoFileSystem]);

async function tempDir(): Promise<string> {
  return await mkdtemp(join(tmpdir(), "molecule-hb-"));
}

for (const [name, make] of adapters) {
  test(`${name} adapter: the secret and token files are 0600 in a 0700 dir created on demand, with no temporary file left`, async () => {
    const root = await tempDir();
    try {
      const dir = join(root, "nested", "configs");
      const store = new FileSecretStore({ dir, fs: make() });
      assert.equal(await store.load("inbound-secret", "ws-1"), undefined);
      await store.save("inbound-secret", "ws-1", "first-secret");
      await store.save("inbound-secret", "ws-1", "second-secret");
      const file = join(dir, ".platform_inbound_secret");
      assert.equal(await readFile(file, "utf8"), "second-secret");
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      assert.deepEqual(await readdir(dir), [".platform_inbound_secret"]);
      assert.equal(await store.load("inbound-secret", "ws-1"), "second-secret");
      // The issued token: a file of its own beside it, written the same way.
      assert.equal(await store.load("auth-token", "ws-1"), undefined);
      await store.save("auth-token", "ws-1", "issued-token-value");
      const token = join(dir, ".auth_token");
      assert.equal(store.pathFor("auth-token", "ws-1"), token);
      assert.equal(await readFile(token, "utf8"), "issued-token-value");
      assert.equal((await stat(token)).mode & 0o777, 0o600);
      assert.deepEqual((await readdir(dir)).sort(), [
        ".auth_token",
        ".platform_inbound_secret",
      ]);
      assert.equal(
        await store.load("auth-token", "ws-1"),
        "issued-token-value",
      );
      assert.equal(await store.load("inbound-secret", "ws-1"), "second-secret");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test(`${name} adapter: per-workspace files, loads trimmed, empty never written`, async () => {
    const dir = await tempDir();
    try {
      const store = new FileSecretStore({
        dir,
        perWorkspace: true,
        fs: make(),
      });
      await store.save("inbound-secret", "a/../b", "s1");
      await store.save("inbound-secret", "ws-2", "s2");
      await store.save("auth-token", "ws-2", "t2");
      assert.deepEqual((await readdir(dir)).sort(), [
        ".auth_token.ws-2",
        ".platform_inbound_secret.a_.._b~eab86698e8f0be01", // odd ids are hashed
        ".platform_inbound_secret.ws-2",
      ]);
      await writeFile(
        join(dir, ".platform_inbound_secret.ws-3"),
        "  padded \n",
      );
      assert.equal(await store.load("inbound-secret", "ws-3"), "padded");
      await assert.rejects(store.save("inbound-secret", "ws-2", ""), TypeError);
      await assert.rejects(store.save("auth-token", "ws-2", ""), TypeError);
      assert.equal(await store.load("inbound-secret", "ws-2"), "s2");
      assert.equal(await store.load("auth-token", "ws-2"), "t2");
      assert.equal(await store.load("auth-token", "ws-3"), undefined);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test(`${name} adapter: stat() and isWritableDir()`, async () => {
    const dir = await tempDir();
    try {
      const fs = make();
      await writeFile(join(dir, "f"), "x", { mode: 0o644 });
      await chmod(join(dir, "f"), 0o644);
      const info = await fs.stat(join(dir, "f"));
      assert.equal(info?.mode, 0o644);
      assert.equal(info?.size, 1);
      assert.ok(Math.abs(info!.mtimeMs - Date.now()) < 60_000);
      assert.equal(await fs.stat(join(dir, "missing")), undefined);
      assert.equal(await fs.isWritableDir(dir), true);
      assert.equal(await fs.isWritableDir(join(dir, "f")), false);
      assert.equal(await fs.isWritableDir(join(dir, "missing")), false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test("a write failure rejects and leaves no temporary file", {
  skip: isRoot ? "root ignores directory permissions" : false,
}, async () => {
  const dir = await tempDir();
  try {
    await chmod(dir, 0o500);
    const store = new FileSecretStore({ dir });
    await assert.rejects(store.save("inbound-secret", "ws-1", "secret"));
    await chmod(dir, 0o700);
    assert.deepEqual(await readdir(dir), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a secret dir that is not writable, then writable again: the secret lands", async () => {
  const root = await tempDir();
  // A file where the configs dir should be makes every write fail, even as root.
  const dir = join(root, "configs");
  await writeFile(dir, "in the way");
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": "token-123456" },
  });
  try {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: "ws-1", token: "token-123456" }],
      intervalMs: 50,
      secretStore: new FileSecretStore({ dir }),
    });
    let failures = 0;
    hb.addEventListener("secret-failed", () => failures++);
    await captureLogs(async () => {
      await waitFor(() => failures >= 2, 3000, "failed writes");
      await rm(dir);
      await waitFor(
        () => hb.status().workspaces[0].secretStored,
        3000,
        "the secret to land",
      );
    });
    await hb.stop();
    assert.equal(
      await readFile(join(dir, ".platform_inbound_secret"), "utf8"),
      "secret-ws-1",
    );
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("configs dir: CONFIGS_DIR wins and is created", async () => {
  const root = await tempDir();
  try {
    const wanted = join(root, "a", "b");
    const dir = await resolveConfigsDir({
      env: envFromRecord({ CONFIGS_DIR: ` ${wanted} `, HOME: root }),
    });
    assert.deepEqual(dir, { path: wanted });
    assert.ok((await stat(wanted)).isDirectory());
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("configs dir: /configs when it exists and is writable, else $HOME/.molecule-workspace (0700)", async () => {
  const root = await tempDir();
  try {
    const container = join(root, "configs");
    await mkdir(container);
    const env = envFromRecord({ HOME: join(root, "home"), CONFIGS_DIR: "  " });
    assert.deepEqual(
      await resolveConfigsDir({ env, containerDir: container }),
      { path: container },
    );
    const fallback = await resolveConfigsDir({
      env,
      containerDir: join(root, "absent"),
    });
    assert.deepEqual(fallback, {
      path: join(root, "home", ".molecule-workspace"),
    });
    assert.equal((await stat(fallback.path)).mode & 0o777, 0o700);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("configs dir that cannot be created is reported, not thrown", async () => {
  const root = await tempDir();
  try {
    await writeFile(join(root, "file"), "x");
    const dir = await resolveConfigsDir({
      env: envFromRecord({ CONFIGS_DIR: join(root, "file", "sub") }),
    });
    assert.equal(dir.path, join(root, "file", "sub"));
    assert.ok(dir.problem && dir.problem.length > 0);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
