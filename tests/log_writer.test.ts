// Logs that never stop the heartbeat: a bounded queue written asynchronously;
// a stalled reader drops lines (counted), a vanished one ends logging only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { createLogWriter } from "../src/cli/log_writer.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { passedEnv, runtimeArgs } from "./helpers/runtime.ts";
import { sleep, waitFor } from "./helpers/wait.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const decoder = new TextDecoder();

test("log writer: a stalled reader never blocks the caller; lines beyond the bound are dropped, counted and reported", async () => {
  const written: string[] = [];
  let release!: () => void;
  let gate: Promise<void> = new Promise((r) => release = r);
  const stream = new WritableStream<Uint8Array>({
    async write(chunk) {
      await gate;
      written.push(decoder.decode(chunk));
    },
  });
  const log = createLogWriter(stream, { maxLines: 10 });
  for (let i = 0; i < 100; i++) log.write(`line ${i}`);
  // The first line went to the (stalled) stream; ten wait; the rest dropped.
  assert.equal(log.dropped, 89);
  gate = Promise.resolve();
  release();
  await log.flush(2_000);
  const text = written.join("");
  assert.ok(text.startsWith("line 0\nline 1\n"), text);
  assert.match(
    text,
    /89 log line\(s\) were dropped: stderr was not being read/,
  );
  assert.ok(!text.includes("line 99"));
});

test("log writer: a reader that went away ends logging, never throws", async () => {
  const stream = new WritableStream<Uint8Array>({
    write() {
      throw new Error("EPIPE: broken pipe");
    },
  });
  const log = createLogWriter(stream);
  log.write("first");
  await log.flush(1_000);
  assert.equal(log.closed, true);
  log.write("after");
  assert.equal(log.dropped, 2);
});

function fleet(n: number) {
  return JSON.stringify(
    Array.from({ length: n }, (_, i) => ({
      id: `ws-${i}`,
      token: `token-of-ws-${i}-0000`,
    })),
  );
}

test("command: when nobody reads our stderr, beats go on", async () => {
  await using platform = await startPlatformEmulator({ uuidIds: false });
  platform.fail({ kind: "status", status: 500 }, { path: "heartbeat" });
  const [cmd, args] = runtimeArgs(MOD, ["--interval", "0.1", "--verbose"]);
  // stderr is a pipe that is never read: it fills within a second.
  const child = spawn(cmd, args, {
    env: {
      ...passedEnv(),
      HOME: process.env.HOME ?? "/tmp",
      PLATFORM_URL: platform.url,
      MOLECULE_WORKSPACES: fleet(40),
      CONFIGS_DIR: "/tmp/molecule-log-writer-test",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  try {
    await sleep(2_500);
    const before = platform.requestsTo("heartbeat").length;
    await sleep(1_000);
    const during = platform.requestsTo("heartbeat").length - before;
    // 40 workspaces every 0.1 s would be 400 a second; a frozen process sends none.
    assert.ok(
      during >= 100,
      `beats in one second with stderr unread: ${during}`,
    );
  } finally {
    child.kill("SIGKILL");
    await new Promise((r) => child.on("close", r));
  }
});

test("command: when our stderr is closed, logging ends and the run goes on to its normal end", async () => {
  await using platform = await startPlatformEmulator({ uuidIds: false });
  const [cmd, args] = runtimeArgs(MOD, ["--once", "--verbose"]);
  const child = spawn(cmd, args, {
    env: {
      ...passedEnv(),
      HOME: process.env.HOME ?? "/tmp",
      PLATFORM_URL: platform.url,
      MOLECULE_WORKSPACES: fleet(3),
      CONFIGS_DIR: "/tmp/molecule-log-writer-test",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr!.destroy(); // the reader goes away before the first line
  const code = await new Promise<number | null>((r) =>
    child.on("close", (c) => r(c))
  );
  assert.equal(code, 0);
  await waitFor(() => platform.requestsTo("heartbeat").length >= 3);
});
