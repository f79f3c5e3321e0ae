// Wrapper mode's process rules (`molecule-heartbeat -- COMMAND`), from the
// outside: a real emulator on loopback, the command on this runtime run
// through mod.ts (what `deno run -A jsr:@molecule/heartbeat` runs; cli.ts
// too where cheap), small fixture children.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import process from "node:process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type PlatformEmulator,
  startPlatformEmulator,
} from "../src/testing/emulator.ts";
import {
  nodeBin,
  passedEnv,
  runtimeArgs,
  startPiped,
} from "./helpers/runtime.ts";
import { groupOf, pidsIn, running } from "./helpers/processes.ts";
import { inParallel, waitFor } from "./helpers/wait.ts";
import { scratch } from "./helpers/scratch.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const FIXTURE = fileURLToPath(
  new URL("./fixtures/child.mjs", import.meta.url),
);
const CLIENT = fileURLToPath(
  new URL("./fixtures/vanishing_client.mjs", import.meta.url),
);
const LAUNCHER = fileURLToPath(
  new URL("./fixtures/launcher.sh", import.meta.url),
);
const TOKEN = "wrap-token-0123456789";
const WS = "ws-wrap";

/** The command wrapping the fixture child in `mode`, against `platform`. */
function wrap(
  platform: PlatformEmulator,
  dir: string,
  mode: string,
  arg: string,
  options: {
    flags?: string[];
    token?: string;
    timeoutMs?: number;
    entry?: string;
    /** The child's command line, instead of the fixture in `mode`. */
    command?: string[];
    env?: Record<string, string>;
    ownGroup?: boolean;
  } = {},
) {
  const [cmd, args] = runtimeArgs(options.entry ?? MOD, [
    ...(options.flags ?? []),
    "--",
    ...(options.command ?? [nodeBin(), FIXTURE, mode, arg]),
  ]);
  return startPiped(cmd, args, {
    env: {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: WS,
      MOLECULE_WORKSPACE_TOKEN: options.token ?? TOKEN,
      CONFIGS_DIR: dir,
      MOLECULE_HEARTBEAT_INTERVAL: "0.2",
      ...options.env,
    },
    timeoutMs: options.timeoutMs ?? 30_000,
    ownGroup: options.ownGroup,
  });
}

/** A launcher chain: bash (not forwarding signals) → a server that ignores SIGTERM and EOF. */
const launcherChain = (launcherMode: string, marker: string) => [
  "bash",
  LAUNCHER,
  launcherMode,
  nodeBin(),
  FIXTURE,
  "stubborn",
  marker,
];

const lines = async (path: string) =>
  (await readFile(path, "utf8").catch(() => "")).split("\n").filter(Boolean);

test("wrapper: bytes pass both ways unchanged (binary, CR LF, no newline, 4 MiB), beats go on, EOF reaches the child, its exit code is ours", async () => {
  await using s = await scene();
  const { dir, platform } = s;
  const run = wrap(platform, dir, "echo", "");
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

test("wrapper: a server's last output reaches a client that reads slowly, though the server exits at once", async () => {
  await using s = await scene();
  const { dir, platform } = s;
  // 64 KiB fill the pipe to our client, which reads nothing for a second;
  // the server's last 6,000 bytes wait in our buffer as it exits. A wrapper
  // that exits without writing them out loses the end of the last answer.
  const server = "process.stdout.write(Buffer.alloc(65536, 97));" +
    "setTimeout(() => process.stdout.write(Buffer.alloc(6000, 98)), 200);";
  const [cmd, args] = runtimeArgs(MOD, ["--", nodeBin(), "-e", server]);
  const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
  const line = `${[cmd, ...args].map(quote).join(" ")} | (sleep 1; wc -c)`;
  const run = startPiped("sh", ["-c", line], {
    env: {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: WS,
      MOLECULE_WORKSPACE_TOKEN: TOKEN,
      CONFIGS_DIR: dir,
    },
  }); // our stdin held open, as an MCP client holds it
  const done = await run.done;
  assert.equal(done.code, 0, done.stderr);
  assert.equal(done.stdout.trim(), String(65536 + 6000), done.stderr);
});

test("wrapper: the child's exit code, 128 + N for death by signal N, through mod.ts and cli.ts, our stdin held open", async () => {
  await using s = await scene();
  const { dir, platform } = s;
  for (const entry of [MOD, CLI]) {
    // stdin stays open, as an MCP client holds it: the exit must not wait for it.
    const seven = await wrap(platform, dir, "exit", "7", { entry }).done;
    assert.equal(seven.code, 7, `${entry}: ${seven.stderr}`);
    const signalled = await wrap(platform, dir, "die-by-signal", "", {
      entry,
    }).done;
    assert.equal(signalled.code, 143, `${entry}: ${signalled.stderr}`);
  }
});

test("wrapper: SIGHUP and SIGINT are forwarded; SIGTERM is forwarded and we exit with the child's code", async () => {
  await using s = await scene();
  const { dir, platform, marker } = s;
  const run = wrap(platform, dir, "marker", marker);
  await waitFor(async () => (await lines(marker)).includes("ready"), 10_000);
  await waitFor(() => platform.requestsTo("heartbeat", WS).length >= 1);
  run.kill("SIGHUP");
  await waitFor(async () => (await lines(marker)).includes("SIGHUP"), 5_000);
  run.kill("SIGINT");
  await waitFor(async () => (await lines(marker)).includes("SIGINT"), 5_000);
  run.kill("SIGTERM");
  const done = await run.done;
  assert.equal(done.code, 0, done.stderr);
  assert.deepEqual((await lines(marker)).slice(1), [
    "ready",
    "SIGHUP",
    "SIGINT",
    "SIGTERM",
  ]);
});

test("wrapper: a child that ignores SIGTERM is SIGKILLed after --kill-after (137)", async () => {
  await using s = await scene();
  const { dir, platform, marker } = s;
  const run = wrap(platform, dir, "ignore-term", marker, {
    flags: ["--kill-after", "0.3"],
  });
  await waitFor(async () => (await lines(marker)).includes("ready"), 10_000);
  run.kill("SIGTERM");
  const done = await run.done;
  assert.equal(done.code, 137, done.stderr);
  assert.ok((await lines(marker)).includes("SIGTERM ignored"));
});

test("wrapper: a child that never reads stdin does not stall the heartbeat", async () => {
  await using s = await scene();
  const { dir, platform, marker } = s;
  const run = wrap(platform, dir, "no-stdin", marker);
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
  await using s = await scene();
  const { dir, platform, marker } = s;
  const run = wrap(platform, dir, "eof-marker", marker);
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
  await using s = await scene();
  const { dir, platform, marker } = s;
  // Register fails (and is retried) until the child is listening for signals.
  platform.fail({ kind: "status", status: 503 }, { path: "register" });
  const run = wrap(platform, dir, "marker", marker, {
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
  await using s = await scene();
  const { dir, platform } = s;
  const env = {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: WS,
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
    CONFIGS_DIR: dir,
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
    [
      ["--verbose", "npx", "-y", "@modelcontextprotocol/server-everything"],
      2,
      /unexpected argument "npx": did you forget `--` before the server's command\?/,
    ],
    [["--wedged-after", "soon", "--", "true"], 2, /--wedged-after must be/],
    [
      ["ws-1", "--", "true"],
      2,
      /unexpected argument "ws-1" before --: our flags go before --/,
    ],
  ];
  await inParallel(cases, 4, async ([flags, code, message]) => {
    const [cmd, args] = runtimeArgs(MOD, flags);
    // stdin held open: every one of these exits without waiting for it.
    const run = startPiped(cmd, args, { env });
    const done = await run.done;
    assert.equal(done.code, code, `${flags.join(" ")}: ${done.stderr}`);
    assert.match(done.stderr, message);
    const errors = done.stderr.split("\n").filter((l) => /error/i.test(l));
    assert.equal(errors.length, 1, done.stderr);
    assert.ok(!/^\s+at /m.test(done.stderr), done.stderr);
    assert.equal(done.stdout, "", "nothing on stdout");
  });
});

test("wrapper: --demo -- COMMAND runs the child against the in-process emulator, and exits with it while our stdin is open", async () => {
  for (const entry of [MOD, CLI]) {
    const [cmd, args] = runtimeArgs(entry, [
      "--demo",
      "--",
      "sh",
      "-c",
      "exit 7",
    ]);
    // Never closed: an MCP client keeps our stdin open while we run.
    const run = startPiped(cmd, args);
    const done = await run.done;
    assert.equal(done.code, 7, `${entry}: ${done.stderr}`);
    assert.match(done.stderr, /demo: a platform emulator is listening/);
    assert.match(done.stderr, /started sh \(pid \d+, its own process group\)/);
  }
});

/** Waits for the marker's `pid N` lines (the stubborn server's), ready. */
async function serverPids(marker: string): Promise<number[]> {
  await waitFor(
    async () => (await lines(marker)).includes("ready"),
    15_000,
    "the server to be ready",
  );
  return pidsIn(await lines(marker));
}

/** Fails when any of `pids` still runs (a zombie does not: it is dead). */
async function assertNoneRunning(pids: number[], what: string) {
  assert.ok(pids.length > 0, "no pid to check");
  // Already gone when we exit: a short wait only absorbs the kernel's bookkeeping.
  await waitFor(
    () => pids.every((p) => !running(p)),
    2_000,
    `${what}: pids ${pids.join(", ")} still running`,
  );
}

/**
 * What a wrapper test starts from: a scratch dir (the configs dir), the
 * emulator serving {@link WS} with {@link TOKEN}, and the path of a marker
 * file in the dir for the fixture's pids. At the scope's end, in this
 * order: every server pid the marker lists that still runs is SIGKILLed,
 * the emulator closes, the dir is removed.
 */
async function scene(): Promise<
  AsyncDisposable & { dir: string; platform: PlatformEmulator; marker: string }
> {
  const stack = new AsyncDisposableStack();
  try {
    const dir = stack.use(await scratch("molecule-wrap-"));
    const platform = stack.use(
      await startPlatformEmulator({
        uuidIds: false,
        workspaces: { [WS]: TOKEN },
      }),
    );
    const marker = join(dir.path, "marker");
    stack.use(reaper(marker));
    return {
      dir: dir.path,
      platform,
      marker,
      [Symbol.asyncDispose]: () => stack.disposeAsync(),
    };
  } catch (error) {
    await stack.disposeAsync();
    throw error;
  }
}

/**
 * SIGKILLs, at the end of the scope, every server pid the marker lists that
 * still runs: a failing test leaves the machine clean.
 */
function reaper(marker: string): AsyncDisposable {
  return {
    async [Symbol.asyncDispose]() {
      for (const pid of pidsIn(await lines(marker))) {
        if (!running(pid)) continue;
        try {
          process.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
    },
  };
}

test("wrapper: the child leads a process group and session of its own; its children are in it", async () => {
  await using s = await scene();
  const { dir, platform, marker } = s;
  const run = wrap(platform, dir, "", "", {
    command: launcherChain("wait", marker),
    flags: ["--kill-after", "0.5"],
  });
  const [server] = await serverPids(marker);
  const ours = groupOf(run.pid);
  const its = groupOf(server);
  assert.notEqual(its.pgrp, ours.pgrp, "the server is not in our group");
  assert.equal(its.session, its.pgrp, "a session of its own, led by the child");
  // The group leader is the launcher, our child.
  assert.equal(groupOf(its.pgrp).pgrp, its.pgrp);
  run.kill("SIGTERM");
  await run.done;
  await assertNoneRunning([server], "after SIGTERM");
});

test("wrapper: SIGTERM goes to the launcher's whole group; a server ignoring SIGTERM and EOF is SIGKILLed after --kill-after; nothing is left", async () => {
  await using s = await scene();
  const { dir, platform, marker } = s;
  const run = wrap(platform, dir, "", "", {
    command: launcherChain("wait", marker),
    flags: ["--kill-after", "0.5"],
  });
  const pids = await serverPids(marker);
  await waitFor(() => platform.requestsTo("heartbeat", WS).length >= 1);
  run.kill("SIGTERM");
  const done = await run.done;
  // bash dies of the SIGTERM (128 + 15); the server only noted it.
  assert.equal(done.code, 143, done.stderr);
  assert.ok(
    (await lines(marker)).includes("SIGTERM ignored"),
    "the server got the SIGTERM: it is in the group",
  );
  await assertNoneRunning(pids, "after SIGTERM and --kill-after");
});

test("wrapper: a launcher that exits leaving its server running: we exit with the launcher's code, the server stopped", async () => {
  await using s = await scene();
  const { dir, platform, marker } = s;
  const run = wrap(platform, dir, "", "", {
    command: launcherChain("exit-3", marker),
    flags: ["--kill-after", "0.5"],
  });
  const done = await run.done;
  assert.equal(done.code, 3, done.stderr);
  assert.match(done.stderr, /left 1 process\(es\) of its group running/);
  await assertNoneRunning(
    pidsIn(await lines(marker)),
    "after the launcher exited",
  );
});

test("wrapper: a client that dies (our stdin closed, our parent gone) does not leave us and the server running", async () => {
  await vanishingClient();
});

test("wrapper: a client that dies after sending more than a server that stopped reading takes (its EOF stuck behind it): the server is still stopped", async () => {
  await vanishingClient(1024 * 1024);
});

/** A client that starts the wrapper and dies; `fill`: bytes it sends first. */
async function vanishingClient(fill?: number) {
  await using s = await scene();
  const { dir, platform, marker } = s;
  // The server ignores stdin's EOF and stops on SIGTERM.
  const [cmd, args] = runtimeArgs(MOD, [
    "--kill-after",
    "1",
    "--",
    nodeBin(),
    FIXTURE,
    "marker",
    marker,
  ]);
  const client = spawn(nodeBin(), [CLIENT, marker, cmd, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    env: {
      ...passedEnv(),
      HOME: process.env.HOME ?? "/tmp",
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: WS,
      MOLECULE_WORKSPACE_TOKEN: TOKEN,
      CONFIGS_DIR: dir,
      MOLECULE_HEARTBEAT_INTERVAL: "0.2",
      ...(fill ? { FILL: String(fill) } : {}),
    },
  });
  let out = "";
  client.stdout!.on("data", (d) => out += d);
  const status = await new Promise((resolve) => client.on("close", resolve));
  const wrapperPid = Number(out.trim());
  try {
    assert.equal(status, 0);
    assert.ok(wrapperPid > 0, out);
    const server = pidsIn(await lines(marker));
    assert.equal(server.length, 1);
    await waitFor(
      () => !running(wrapperPid) && !running(server[0]),
      15_000,
      "the wrapper and the server stopped after the client died",
    );
    assert.ok((await lines(marker)).includes("SIGTERM"), "stopped by SIGTERM");
  } finally {
    if (wrapperPid > 0 && running(wrapperPid)) {
      process.kill(wrapperPid, "SIGKILL");
    }
  }
}

test("wrapper: a rejected token stops the launcher's whole group, exits 3, nothing left", async () => {
  await using s = await scene();
  const { dir, platform, marker } = s;
  platform.fail({ kind: "status", status: 503 }, { path: "register" });
  const run = wrap(platform, dir, "", "", {
    command: launcherChain("wait", marker),
    flags: ["--kill-after", "0.5"],
    token: "wrong-token-0123456789",
  });
  const pids = await serverPids(marker);
  platform.heal();
  const done = await run.done;
  assert.equal(done.code, 3, done.stderr);
  assert.ok((await lines(marker)).includes("SIGTERM ignored"));
  await assertNoneRunning(pids, "after the rejected token");
});

test("wrapper: a workspace deleted on the platform stops the launcher's whole group, exits 4, nothing left", async () => {
  await using s = await scene();
  const { dir, platform, marker } = s;
  const run = wrap(platform, dir, "", "", {
    command: launcherChain("wait", marker),
    flags: ["--kill-after", "0.5", "--state-poll", "1"],
  });
  const pids = await serverPids(marker);
  await waitFor(() => platform.requestsTo("heartbeat", WS).length >= 1);
  platform.remove(WS, "soft");
  const done = await run.done;
  assert.equal(done.code, 4, done.stderr);
  assert.match(done.stderr, /deleted on the platform/);
  await assertNoneRunning(pids, "after the deletion");
});

test("wrapper: a terminal's Ctrl-C (SIGINT to our whole foreground group) reaches the server once", async () => {
  await using s = await scene();
  const { dir, platform, marker } = s;
  // We lead a group, as a shell's foreground job does; the terminal signals it whole.
  const run = wrap(platform, dir, "marker", marker, { ownGroup: true });
  await serverPids(marker);
  process.kill(-run.pid, "SIGINT");
  await waitFor(async () => (await lines(marker)).includes("SIGINT"), 5_000);
  run.kill("SIGTERM");
  const done = await run.done;
  assert.equal(done.code, 0, done.stderr);
  assert.deepEqual(
    (await lines(marker)).filter((l) => l.startsWith("SIG")),
    ["SIGINT", "SIGTERM"],
    "one SIGINT (ours, forwarded), not a second straight from the terminal",
  );
});

test("wrapper: the health port in use exits 2 before the child or a register starts", async () => {
  await using s = await scene();
  const { dir, platform, marker } = s;
  const busy = new URL(platform.url).port;
  const done = await wrap(platform, dir, "marker", marker, {
    flags: ["--health-port", busy],
  }).done;
  assert.equal(done.code, 2, done.stderr);
  assert.match(
    done.stderr,
    /cannot serve health on 127\.0\.0\.1:\d+.*--health-port/,
  );
  assert.deepEqual(await lines(marker), [], "the child never started");
  assert.equal(platform.requestsTo("register", WS).length, 0, "no register");
});

test("wrapper: a tool call unanswered past --wedged-after: beats and /status say wedged with the tool's name; cancelled, they do not; one warning each way", async () => {
  await using s = await scene();
  const { dir, platform, marker } = s;
  const run = wrap(platform, dir, "swallow", marker, {
    flags: ["--verbose", "--health-port", "0"],
    env: { MOLECULE_WEDGED_AFTER: "0.4" },
  });
  await waitFor(async () => (await lines(marker)).includes("ready"), 10_000);
  const beat = () => platform.workspace(WS)?.lastHeartbeat ?? {};
  await run.write(
    JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "search", arguments: { q: "x" } },
    }) + "\n",
  );
  await waitFor(
    () => beat().runtime_state === "wedged",
    10_000,
    "a wedged beat",
  );
  assert.match(
    String(beat().sample_error),
    /^tool "search" has not answered for \d+ s$/,
  );
  assert.equal(beat().active_tasks, 1);
  const url = /health: (http:\/\/\S+)\/healthz/.exec(run.stderr())?.[1];
  assert.ok(url, run.stderr());
  const status = await (await fetch(`${url}/status`)).json();
  assert.equal(status.workspaces[0].stats.runtime_state, "wedged");
  assert.match(status.workspaces[0].stats.sample_error, /^tool "search"/);

  await run.write(
    JSON.stringify({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: 1 },
    }) + "\n",
  );
  await waitFor(
    () => beat().runtime_state === "" && beat().active_tasks === 0,
    10_000,
    "a beat no longer wedged",
  );
  assert.equal(beat().sample_error, "");
  run.kill("SIGTERM");
  const done = await run.done;
  const wedgeLines = done.stderr.split("\n").filter((l) => /wedged/.test(l));
  assert.equal(wedgeLines.length, 2, done.stderr);
  assert.match(
    wedgeLines[0],
    /WARN the MCP server looks wedged: tool "search"/,
  );
  assert.match(wedgeLines[1], /WARN the MCP server is no longer wedged/);
});
