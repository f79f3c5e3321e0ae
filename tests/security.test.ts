// Secrets that never leak and inputs that cannot hurt (issue 10): token
// validation, masking, bounded and typed file reads, the interval floor,
// tidy secret writes, the watched workspaces file, and small operator things.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  mkdir,
  readdir,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  FileSecretStore,
  maskSecrets,
  MemorySecretStore,
  startHeartbeat,
} from "../mod.ts";
import { sendHeartbeat } from "../src/platform/mod.ts";
import { classifyError } from "../src/platform/outcome.ts";
import { rememberSecret } from "../src/shared/mask.ts";
import { FileReadError } from "../src/storage/file_system.ts";
import { createDenoFileSystem } from "../src/storage/file_system_deno.ts";
import { createNodeFileSystem } from "../src/storage/file_system_node.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { captureLogs, levelsAndTexts } from "./helpers/logs.ts";
import { runScript, startScript } from "./helpers/runtime.ts";
import { waitFor } from "./helpers/wait.ts";
import { scratch } from "./helpers/scratch.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const TOKEN = "sec-token-0123456789abcdef";

/** The command's stderr must be one error line, naming `where`, without `secret`. */
function oneLineNaming(
  r: { code: number | null; stderr: string },
  where: RegExp,
  secret: string,
) {
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], where);
  for (let i = 0; i + 6 <= secret.length; i++) {
    assert.ok(
      !r.stderr.includes(secret.slice(i, i + 6)),
      `a piece of the token leaked: ${r.stderr}`,
    );
  }
}

test("tokens are validated where they enter: variable, token file, workspaces entry; never echoed", async () => {
  await using dir = await scratch("molecule-sec-");
  const base = {
    PLATFORM_URL: "http://127.0.0.1:9",
    WORKSPACE_ID: "ws-1",
    CONFIGS_DIR: dir.path,
  };
  const secret = "Qz7xK9mW2pLr\nVb4nHc8jTy5g";
  oneLineNaming(
    await runScript(CLI, {
      args: ["--once"],
      env: { ...base, MOLECULE_WORKSPACE_TOKEN: secret },
    }),
    /MOLECULE_WORKSPACE_TOKEN cannot be sent/,
    secret,
  );
  const file = join(dir.path, "token");
  await writeFile(file, secret + "\n", { mode: 0o600 });
  oneLineNaming(
    await runScript(CLI, { args: ["--once", "--token-file", file], env: base }),
    /--token-file.*does not hold one token/,
    secret,
  );
  oneLineNaming(
    await runScript(CLI, {
      args: ["--once"],
      env: {
        ...base,
        MOLECULE_WORKSPACES: JSON.stringify([
          { id: "a", token: "fine-token-000000" },
          { id: "b", token: secret },
        ]),
      },
    }),
    /MOLECULE_WORKSPACES entry 1 \(id b\) has a "token" that cannot be sent/,
    secret,
  );
  // A trailing comma: JSON.parse would quote the input around it.
  const tokenBefore = "quoted-by-json-parse-0123";
  oneLineNaming(
    await runScript(CLI, {
      args: ["--once"],
      env: {
        ...base,
        MOLECULE_WORKSPACES: `[{"id":"a","token":"${tokenBefore}"},]`,
      },
    }),
    /MOLECULE_WORKSPACES is not valid JSON \(a syntax error/,
    tokenBefore,
  );
  oneLineNaming(
    await runScript(CLI, {
      args: ["--once"],
      env: {
        ...base,
        WORKSPACE_ID: "bad\u0007id",
        MOLECULE_WORKSPACE_TOKEN: TOKEN,
      },
    }),
    /WORKSPACE_ID must be a workspace id without control characters/,
    TOKEN,
  );
});

test("bounded, typed reads: /dev/zero, a FIFO, a symlink to a device, a file over the cap are refused at start, without hanging", async () => {
  await using dir = await scratch("molecule-sec-");
  const fifo = join(dir.path, "fifo");
  execFileSync("mkfifo", [fifo]);
  const link = join(dir.path, "zero-link");
  await symlink("/dev/zero", link);
  const big = join(dir.path, "big-token");
  await writeFile(big, "x".repeat(20 * 1024), { mode: 0o600 });
  const env = {
    PLATFORM_URL: "http://127.0.0.1:9",
    WORKSPACE_ID: "ws-1",
    CONFIGS_DIR: dir.path,
  };
  for (
    const [args, pattern] of [
      [["--workspaces-file", "/dev/zero"], /not a regular file/],
      [["--token-file", fifo], /not a regular file/],
      [["--token-file", link], /not a regular file/],
      [["--token-file", big], /larger than 16384 bytes/],
    ] as const
  ) {
    const r = await runScript(CLI, {
      args: ["--once", ...args],
      env,
      timeoutMs: 15_000,
    });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
});

test("bounded reads in both adapters; a secret file that is a symlink to /dev/zero is refused, not read", async () => {
  await using dir = await scratch("molecule-sec-");
  await symlink("/dev/zero", join(dir.path, ".platform_inbound_secret"));
  const adapters = [createNodeFileSystem()];
  if ("Deno" in globalThis) adapters.push(createDenoFileSystem());
  for (const fs of adapters) {
    const store = new FileSecretStore({ dir: dir.path, fs });
    await assert.rejects(store.load("inbound-secret", "ws-1"), FileReadError);
    const small = join(dir.path, "small");
    await writeFile(small, "12345");
    assert.equal(await fs.readText(small, { maxBytes: 5 }), "12345");
    await assert.rejects(fs.readText(small, { maxBytes: 4 }), /larger than 4/);
    assert.equal(
      await fs.readText(join(dir.path, "none"), { maxBytes: 4 }),
      undefined,
    );
  }
});

test("intervals under 0.05 s are refused", async () => {
  for (const value of ["1e-9", "0.01", "0.049"]) {
    const r = await runScript(CLI, {
      args: ["--once", "--interval", value],
      env: {
        PLATFORM_URL: "http://127.0.0.1:9",
        WORKSPACE_ID: "w",
        MOLECULE_WORKSPACE_TOKEN: TOKEN,
      },
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--interval must be a number of seconds from 0.05/);
  }
});

test("masking: a token straddling the 200-character cut, an inbound secret in an error body, a redirect's Location", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
    secretFor: () => "Xq93mZpL7vWr22Ks",
  });
  const store = new MemorySecretStore();
  await captureLogs(async (records) => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: "ws-1", token: TOKEN }],
      intervalMs: 100,
      timeoutMs: 2_000, // not the interval: a loaded machine is slow
      secretStore: store,
    });
    await waitFor(() => store.saves["inbound-secret"] === 1);
    platform.fail({
      kind: "status",
      status: 500,
      body: "x".repeat(190) + TOKEN + " and Xq93mZpL7vWr22Ks",
    }, { path: "heartbeat", times: 1 });
    await waitFor(() => hb.status().workspaces[0].lastStatus === 500);
    platform.fail({
      kind: "redirect",
      location: `https://evil.example/?t=${TOKEN}`,
    }, { path: "heartbeat", times: 1 });
    await waitFor(() => hb.status().workspaces[0].lastStatus === 307);
    const status = JSON.stringify(hb.status());
    await hb.stop();
    const all = levelsAndTexts(records).join("\n") + status;
    assert.ok(all.includes("evil.example"), "the Location is shown, masked");
    for (const secret of [TOKEN, "Xq93mZpL7vWr22Ks"]) {
      for (let i = 0; i + 6 <= secret.length; i++) {
        const piece = secret.slice(i, i + 6);
        assert.ok(!all.includes(piece), `leaked ${piece}: ${all}`);
      }
    }
  });
});

test("an invalid token from a token function is never sent, and its error quotes nothing of it", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  const bad = "line-one-AAAA\nline-two-BBBB";
  const result = await sendHeartbeat({
    platformUrl: platform.url,
    workspaceId: "ws-1",
    token: () => bad,
  });
  assert.equal(result.kind, "rejected");
  assert.ok(!result.reason.includes("AAAA") && !result.reason.includes("BBBB"));
  assert.equal(platform.requests.length, 0);

  // Through the scheduler: such beats are failures, never counted as sent.
  await captureLogs(async () => {
    const hb = startHeartbeat({
      platformUrl: platform.url,
      workspaces: [{ id: "ws-1", token: () => bad }],
      intervalMs: 100,
      timeoutMs: 1_000,
    });
    try {
      await waitFor(() => hb.status().workspaces[0].consecutiveFailures >= 3);
      assert.equal(hb.status().workspaces[0].beatsSent, 0);
      assert.equal(
        platform.requests.filter((r) => r.path === "heartbeat").length,
        0,
      );
    } finally {
      await hb.stop();
    }
  });
});

test("maskSecrets: whole values anywhere, a value cut off at the end, control characters; cut after masking", () => {
  rememberSecret("remembered-value-42");
  assert.equal(
    maskSecrets("a remembered-value-42 b\nc"),
    "a [redacted] b c",
  );
  assert.equal(maskSecrets("ends with remembered-va"), "ends with [redacted]");
  assert.equal(
    maskSecrets("x".repeat(195) + "remembered-value-42", { maxLength: 200 }),
    "x".repeat(195) + "[reda",
  );
  assert.equal(maskSecrets("short ab", { extra: ["ab"] }), "short ab");
});

test("TLS failures that mean an untrusted certificate say how to trust a private CA", () => {
  const error = new TypeError("fetch failed", {
    cause: { code: "SELF_SIGNED_CERT_IN_CHAIN" },
  });
  const reason = classifyError(error).reason;
  assert.match(reason, /DENO_CERT/);
  assert.match(reason, /NODE_EXTRA_CA_CERTS/);
  assert.doesNotMatch(
    classifyError(new TypeError("connection refused")).reason,
    /DENO_CERT/,
  );
});

test("Origin is the platform URL's origin even when the URL has a path", async () => {
  let origin: string | null = null;
  await sendHeartbeat({
    platformUrl: "https://platform.example:8443/tenant-a/",
    workspaceId: "ws-1",
    token: TOKEN,
    fetch: (_url, init) => {
      origin = new Headers(init?.headers).get("origin");
      return Promise.resolve(new Response('{"status":"ok"}'));
    },
  });
  assert.equal(origin, "https://platform.example:8443");
});

test("secret store: stale temporary files of ours are removed, fresh ones and others kept; long and odd ids get a file", async () => {
  await using dir = await scratch("molecule-sec-");
  const old = join(dir.path, ".platform_inbound_secret.1234.tmp");
  const fresh = join(dir.path, ".platform_inbound_secret.5678.tmp");
  const other = join(dir.path, "unrelated.tmp");
  for (const p of [old, fresh, other]) await writeFile(p, "x");
  const past = new Date(Date.now() - 3600_000);
  await utimes(old, past, past);
  const store = new FileSecretStore({ dir: dir.path, perWorkspace: true });
  const longId = "é/".repeat(300);
  await store.save("inbound-secret", longId, "s1");
  assert.equal(await store.load("inbound-secret", longId), "s1");
  const names = await readdir(dir.path);
  assert.ok(!names.includes(".platform_inbound_secret.1234.tmp"));
  assert.ok(names.includes(".platform_inbound_secret.5678.tmp"));
  assert.ok(names.includes("unrelated.tmp"));
  assert.ok(names.some((n) => n.length < 100 && n.includes("~")), names.join());
});

test("command: a group-writable configs dir is a warning; no HOME and no /configs says where the secret goes; --demo removes its dir", async () => {
  await using dir = await scratch("molecule-sec-");
  const configs = join(dir.path, "configs");
  await mkdir(configs, { mode: 0o777 });
  await (await import("node:fs/promises")).chmod(configs, 0o777);
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  const env = {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: "ws-1",
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
  };
  const shared = await runScript(CLI, {
    args: ["--once"],
    env: { ...env, CONFIGS_DIR: configs },
  });
  assert.equal(shared.code, 0, shared.stderr);
  assert.match(shared.stderr, /writable by other users.*chmod 700/);

  const homeless = await runScript(CLI, {
    args: ["--once"],
    env,
    noHome: true,
    cwd: dir.path,
  });
  assert.equal(homeless.code, 0, homeless.stderr);
  assert.ok(
    homeless.stderr.includes(
      `HOME is not set and /configs is not writable: the inbound secret goes to ${
        join(dir.path, ".molecule-workspace")
      }`,
    ),
    homeless.stderr,
  );

  const demo = await runScript(CLI, { args: ["--demo", "--once"] });
  assert.equal(demo.code, 0, demo.stderr);
  const demoDir = /inbound secret goes to (\S+)/.exec(demo.stderr)![1];
  await assert.rejects(stat(demoDir), "the demo's dir is removed");
});

test("command: a re-read token file with two lines is a warning and the previous token stays in use", async () => {
  await using dir = await scratch("molecule-sec-");
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-1": TOKEN },
  });
  const file = join(dir.path, "token");
  await writeFile(file, TOKEN + "\n", { mode: 0o600 });
  const run = startScript(CLI, {
    args: ["--token-file", file, "--interval", "0.2"],
    env: {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: "ws-1",
      CONFIGS_DIR: dir.path,
    },
  });
  try {
    await waitFor(() => platform.requestsTo("heartbeat").length >= 1, 10_000);
    await writeFile(file, TOKEN + "\nsecond-line-token-XYZ123\n");
    await waitFor(
      () => /cannot be used/.test(run.stderr()),
      10_000,
      "the warning",
    );
    const after = platform.requestsTo("heartbeat").length;
    await waitFor(
      () => platform.requestsTo("heartbeat").length >= after + 3,
      10_000,
    );
    assert.ok(platform.requestsTo("heartbeat").every((r) => r.authorized));
    assert.ok(!run.stderr().includes("XYZ123"), run.stderr());
  } finally {
    run.kill("SIGTERM");
    await run.done;
  }
});

test("command: entries added to a watched workspaces file are served, removed ones stop; each change logged once", async () => {
  await using dir = await scratch("molecule-sec-");
  await using platform = await startPlatformEmulator({ uuidIds: false });
  const file = join(dir.path, "workspaces.json");
  const entries = (ids: string[]) =>
    JSON.stringify(ids.map((id) => ({ id, token: `token-of-${id}-000` })));
  await writeFile(file, entries(["a", "b"]), { mode: 0o600 });
  const run = startScript(CLI, {
    args: ["--workspaces-file", file, "--interval", "0.2"],
    env: { PLATFORM_URL: platform.url, CONFIGS_DIR: dir.path },
  });
  try {
    await waitFor(
      () => platform.requestsTo("heartbeat", "b").length >= 1,
      10_000,
    );
    await writeFile(file, entries(["a", "c"]));
    await waitFor(
      () => platform.requestsTo("heartbeat", "c").length >= 2,
      10_000,
      "c beats",
    );
    const bThen = platform.requestsTo("heartbeat", "b").length;
    const aThen = platform.requestsTo("heartbeat", "a").length;
    await waitFor(
      () => platform.requestsTo("heartbeat", "a").length >= aThen + 3,
      10_000,
    );
    assert.ok(
      platform.requestsTo("heartbeat", "b").length <= bThen + 1,
      "b stopped",
    );
    assert.equal(platform.requestsTo("register", "c").length >= 1, true);
    const log = run.stderr();
    assert.equal(log.match(/now serving 1 more: c/g)?.length, 1, log);
    assert.equal(log.match(/no longer serving 1: b/g)?.length, 1, log);
  } finally {
    run.kill("SIGTERM");
    await run.done;
  }
});

test("secret store: the temporary file is written and flushed, renamed, then the directory is flushed", async () => {
  const calls: string[] = [];
  const fs = {
    readText: () => Promise.resolve(undefined),
    mkdirp: () => Promise.resolve(),
    writeNew: (path: string) => {
      calls.push(`writeNew ${path.endsWith(".tmp") ? "tmp" : path}`);
      return Promise.resolve();
    },
    rename: (_from: string, to: string) => {
      calls.push(`rename -> ${to.split("/").pop()}`);
      return Promise.resolve();
    },
    remove: () => Promise.resolve(),
    isWritableDir: () => Promise.resolve(true),
    stat: () => Promise.resolve(undefined),
    syncDir: (path: string) => {
      calls.push(`syncDir ${path}`);
      return Promise.resolve();
    },
    list: () => Promise.resolve([]),
  };
  const store = new FileSecretStore({ dir: "/configs-test", fs });
  await store.save("inbound-secret", "ws-1", "s3cr3t-value");
  assert.deepEqual(calls, [
    "writeNew tmp",
    "rename -> .platform_inbound_secret",
    "syncDir /configs-test",
  ]);
});
