// Wrapper mode's process rules (`molecule-heartbeat -- COMMAND`), from the
// outside: a real emulator on loopback, the command on this runtime, small
// fixture children.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type PlatformEmulator,
  startPlatformEmulator,
} from "../src/testing/emulator.ts";
import { nodeBin, runtimeArgs, startPiped } from "./helpers/runtime.ts";
import { waitFor } from "./helpers/wait.ts";
import { scratch } from "./helpers/scratch.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const FIXTURE = fileURLToPath(
  new URL("./fixtures/child.mjs", import.meta.url),
);
const TOKEN = "wrap-token-0123456789";
const WS = "ws-wrap";

/** The command wrapping the fixture child in `mode`, against `platform`. */
function wrap(
  platform: PlatformEmulator,
  dir: string,
  mode: string,
  arg: string,
  options: { flags?: string[]; token?: string; timeoutMs?: number } = {},
) {
  const [cmd, args] = runtimeArgs(CLI, [
    ...(options.flags ?? []),
    "--",
    nodeBin(),
    FIXTURE,
    mode,
    arg,
  ]);
  return startPiped(cmd, args, {
    env: {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: WS,
      MOLECULE_WORKSPACE_TOKEN: options.token ?? TOKEN,
      CONFIGS_DIR: dir,
      MOLECULE_HEARTBEAT_INTERVAL: "0.2",
    },
    timeoutMs: options.timeoutMs ?? 30_000,
  });
}

const lines = async (path: string) =>
  (await readFile(path, "utf8").catch(() => "")).split("\n").filter(Boolean);

test("wrapper: bytes pass both ways unchanged (binary, CR LF, no newline, 4 MiB), beats go on, EOF reaches the child, its exit code is ours", async () => {
  await using dir = await scratch("molecule-wrap-");
  await using platform = await startPlatformEmulator({
    workspaces: { [WS]: TOKEN },
  });
  const run = wrap(platform, dir.path, "echo", "");
  const parts: Uint8Array[] = [
    new TextEncoder().encode('{"jsonrpc":"2.0","id":1,"method":"ping"}\r\n'),
    new Uint8Array([0, 255, 254, 10, 13, 0xc3, 0x28, 10]), // invalid UTF-8
  ];
  const big = new Uint8Array(4 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
  parts.push(big, new TextEncoder().encode("last line, no newline"));
  for (const p of parts) await run.write(p);
  await waitFor(
    () => platform.requestsTo("heartbeat", WS).length >= 2,
    10_000,
    "beats while relaying",
  );
  await run.end();
  const done = await run.done;
  assert.equal(done.code, 0, done.stderr);
  const expected = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    expected.set(p, at);
    at += p.length;
  }
  const got = run.stdout();
  assert.equal(got.length, expected.length);
  assert.ok(got.every((b, i) => b === expected[i]), "stdout differs");
});

test("wrapper: the child's exit code, 128 + N for death by signal N", async () => {
  await using dir = await scratch("molecule-wrap-");
  await using platform = await startPlatformEmulator({
    workspaces: { [WS]: TOKEN },
  });
  const seven = await wrap(platform, dir.path, "exit", "7").done;
  assert.equal(seven.code, 7, seven.stderr);
  const signalled = await wrap(platform, dir.path, "die-by-signal", "").done;
  assert.equal(signalled.code, 143, signalled.stderr);
});

test("wrapper: SIGHUP and SIGINT are forwarded; SIGTERM is forwarded and we exit with the child's code", async () => {
  await using dir = await scratch("molecule-wrap-");
  await using platform = await startPlatformEmulator({
    workspaces: { [WS]: TOKEN },
  });
  const marker = join(dir.path, "marker");
  const run = wrap(platform, dir.path, "marker", marker);
  await waitFor(async () => (await lines(marker)).includes("ready"), 10_000);
  await waitFor(() => platform.requestsTo("heartbeat", WS).length >= 1);
  run.kill("SIGHUP");
  await waitFor(async () => (await lines(marker)).includes("SIGHUP"), 5_000);
  run.kill("SIGINT");
  await waitFor(async () => (await lines(marker)).includes("SIGINT"), 5_000);
  run.kill("SIGTERM");
  const done = await run.done;
  assert.equal(done.code, 0, done.stderr);
  assert.deepEqual(await lines(marker), [
    "ready",
    "SIGHUP",
    "SIGINT",
    "SIGTERM",
  ]);
});

test("wrapper: a child that ignores SIGTERM is SIGKILLed after --kill-after (137)", async () => {
  await using dir = await scratch("molecule-wrap-");
  await using platform = await startPlatformEmulator({
    workspaces: { [WS]: TOKEN },
  });
  const marker = join(dir.path, "marker");
  const run = wrap(platform, dir.path, "ignore-term", marker, {
    flags: ["--kill-after", "0.3"],
  });
  await waitFor(async () => (await lines(marker)).includes("ready"), 10_000);
  run.kill("SIGTERM");
  const done = await run.done;
  assert.equal(done.code, 137, done.stderr);
  assert.ok((await lines(marker)).includes("SIGTERM ignored"));
});

test("wrapper: a child that never reads stdin does not stall the heartbeat", async () => {
  await using dir = await scratch("molecule-wrap-");
  await using platform = await startPlatformEmulator({
    workspaces: { [WS]: TOKEN },
  });
  const marker = join(dir.path, "marker");
  const run = wrap(platform, dir.path, "no-stdin", marker);
  await waitFor(async () => (await lines(marker)).includes("ready"), 10_000);
  // More than every pipe between us can hold: the writes back up to us.
  void run.write(new Uint8Array(2 * 1024 * 1024));
  const before = platform.requestsTo("heartbeat", WS).length;
  await waitFor(
    () => platform.requestsTo("heartbeat", WS).length >= before + 3,
    10_000,
    "beats while the child's stdin is full",
  );
  run.kill("SIGTERM");
  const done = await run.done;
  assert.equal(done.code, 143);
});

test("wrapper: if we are SIGKILLed, the child sees EOF on stdin", async () => {
  await using dir = await scratch("molecule-wrap-");
  await using platform = await startPlatformEmulator({
    workspaces: { [WS]: TOKEN },
  });
  const marker = join(dir.path, "marker");
  const run = wrap(platform, dir.path, "eof-marker", marker);
  await waitFor(async () => (await lines(marker)).includes("ready"), 10_000);
  run.kill("SIGKILL");
  await run.done;
  await waitFor(
    async () => (await lines(marker)).includes("eof"),
    5_000,
    "the orphaned child to see EOF",
  );
});

test("wrapper: a rejected token stops the child as on SIGTERM and exits 3", async () => {
  await using dir = await scratch("molecule-wrap-");
  await using platform = await startPlatformEmulator({
    workspaces: { [WS]: TOKEN },
  });
  const marker = join(dir.path, "marker");
  // Register fails (and is retried) until the child is listening for signals.
  platform.fail({ kind: "status", status: 503 }, { path: "register" });
  const run = wrap(platform, dir.path, "marker", marker, {
    token: "wrong-token-0123456789",
  });
  await waitFor(async () => (await lines(marker)).includes("ready"), 10_000);
  platform.heal();
  const done = await run.done;
  assert.equal(done.code, 3, done.stderr);
  assert.match(done.stderr, /Tokens tab/);
  assert.ok(!done.stderr.includes("wrong-token-0123456789"));
  assert.ok((await lines(marker)).includes("SIGTERM"));
});

test("wrapper: usage and start errors, one line each, no stack trace", async () => {
  await using dir = await scratch("molecule-wrap-");
  await using platform = await startPlatformEmulator({
    workspaces: { [WS]: TOKEN },
  });
  const env = {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: WS,
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
    CONFIGS_DIR: dir.path,
  };
  const cases: [string[], number, RegExp][] = [
    [["--"], 2, /-- must be followed by the command/],
    [["--once", "--", "true"], 2, /--once cannot be combined/],
    [["--kill-after", "soon", "--", "true"], 2, /--kill-after must be/],
    [
      ["--", "no-such-command-4711"],
      127,
      /no-such-command-4711: command not found/,
    ],
    [["--", FIXTURE], 126, /cannot be executed/],
  ];
  for (const [flags, code, message] of cases) {
    const [cmd, args] = runtimeArgs(CLI, flags);
    const run = startPiped(cmd, args, { env });
    await run.end();
    const done = await run.done;
    assert.equal(done.code, code, `${flags.join(" ")}: ${done.stderr}`);
    assert.match(done.stderr, message);
    const errors = done.stderr.split("\n").filter((l) => /error/i.test(l));
    assert.equal(errors.length, 1, done.stderr);
    assert.ok(!/^\s+at /m.test(done.stderr), done.stderr);
    assert.equal(done.stdout, "", "nothing on stdout");
  }
});

test("wrapper: --demo -- COMMAND runs the child against the in-process emulator", async () => {
  const [cmd, args] = runtimeArgs(CLI, [
    "--demo",
    "--",
    nodeBin(),
    FIXTURE,
    "exit",
    "5",
  ]);
  const run = startPiped(cmd, args);
  await run.end();
  const done = await run.done;
  assert.equal(done.code, 5, done.stderr);
  assert.match(done.stderr, /demo: a platform emulator is listening/);
  assert.match(done.stderr, /started \S*node \(pid \d+\)/);
});
