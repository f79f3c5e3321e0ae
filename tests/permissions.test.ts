// Deno's permissions, named: the narrow `deno run` line of the README runs
// the command, and a permission missing is one line naming the flag to add,
// exit 2, never a stack trace. The black-box tests run mod.ts under Deno with
// exactly the flags given (they are skipped on Node, which has none).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import {
  permissionErrorMessage,
  permissionMessage,
  requirePermission,
} from "../src/cli/permissions.ts";
import { ConfigError } from "../src/shared/errors.ts";
import { type Finished, passedEnv } from "./helpers/runtime.ts";
import { scratch } from "./helpers/scratch.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const README = fileURLToPath(new URL("../README.md", import.meta.url));
const onDeno = "Deno" in globalThis;
const WS = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
const TOKEN = "permissions-token-0123456789";
/** What the README says `--demo` runs with. */
const DEMO_FLAGS =
  "--allow-env --allow-net=127.0.0.1 --allow-read --allow-write";

/** The plain run's line in the README's permissions block, as arguments. */
async function readmeLine(): Promise<string[]> {
  const readme = await readFile(README, "utf8");
  const block = /<!-- permissions:begin -->([\s\S]*?)<!-- permissions:end -->/
    .exec(readme);
  assert.ok(block, "README.md has no permissions block");
  const sh = /```sh\n([\s\S]*?)```/.exec(block[1]);
  assert.ok(sh, "the permissions block has no sh snippet");
  return sh[1].replace(/\\\n/g, " ").trim().split(/\s+/);
}

/**
 * The README's line for this machine: the platform's host and port, the
 * configs dir, and this checkout's mod.ts in place of the published module.
 */
function localized(line: string[], hostPort: string, configs: string) {
  assert.equal(line[0], "deno");
  assert.equal(line[1], "run");
  assert.equal(line.at(-1), "jsr:@molecule/heartbeat");
  // A checkout's mod.ts needs its deno.json (the import map): no --no-config.
  assert.equal(line.at(-2), "--no-config");
  return line.slice(2, -2).map((flag) =>
    flag.replaceAll("your-tenant.molecule.example:443", hostPort)
      .replaceAll("$HOME/.molecule-workspace", configs)
  );
}

/** `deno run FLAGS mod.ts ARGS` with only `env` (and PATH, HOME) set. */
function denoRun(
  flags: string[],
  args: string[],
  env: Record<string, string>,
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["run", ...flags, MOD, ...args], {
      env: {
        ...passedEnv(),
        HOME: process.env.HOME ?? "/tmp",
        ...(process.env.DENO_DIR ? { DENO_DIR: process.env.DENO_DIR } : {}),
        NO_COLOR: "1",
        ...env,
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => stdout += d);
    child.stderr.on("data", (d) => stderr += d);
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end();
  });
}

/** Exit 2 and one line on stderr naming `flag`, no stack trace. */
function assertOneLine(run: Finished, flag: string) {
  assert.equal(run.code, 2, run.stderr);
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0], /^molecule-heartbeat: error: this run needs /);
  assert.ok(lines[0].includes(flag), lines[0]);
  assert.match(lines[0], /or run with -A$/);
  assert.doesNotMatch(run.stderr, /Uncaught|NotCapable|^\s+at /m);
}

test("a NotCapable error becomes the line naming its flag; other errors are not permissions", () => {
  const notCapable = new Error(
    'Requires env access to "TMPDIR", run again with the --allow-env flag',
  );
  notCapable.name = "NotCapable";
  assert.equal(
    permissionErrorMessage(notCapable),
    'this run needs --allow-env (env access to "TMPDIR"): add --allow-env to the deno run line, or run with -A',
  );
  const net = new Error(
    'Requires net access to "127.0.0.1:8080", run again with the --allow-net flag',
  );
  net.name = "NotCapable";
  assert.equal(
    permissionErrorMessage(net),
    'this run needs --allow-net (net access to "127.0.0.1:8080"): add --allow-net (or --allow-net=127.0.0.1:8080) to the deno run line, or run with -A',
  );
  const os = new Error("Permission denied (os error 13)");
  os.name = "PermissionDenied";
  assert.equal(permissionErrorMessage(os), undefined);
  assert.equal(permissionErrorMessage(new TypeError("boom")), undefined);
  assert.equal(permissionErrorMessage("text"), undefined);
  assert.equal(
    permissionMessage("--allow-run", "to start npx", "--allow-run=npx"),
    "this run needs --allow-run (to start npx): add --allow-run (or --allow-run=npx) to the deno run line, or run with -A",
  );
});

test("requirePermission passes what is granted and throws a ConfigError naming the flag otherwise", () => {
  const asked: unknown[] = [];
  const granted = (p: unknown) => (asked.push(p), "granted");
  requirePermission({ name: "env" }, "to read settings", granted);
  requirePermission({ name: "run", command: "sh" }, "to start sh", granted);
  assert.deepEqual(asked, [{ name: "env" }, { name: "run", command: "sh" }]);
  for (const state of ["prompt", "denied"]) {
    assert.throws(
      () =>
        requirePermission(
          { name: "net", host: "example.com:443" },
          "to reach the platform",
          () => state,
        ),
      (error) =>
        error instanceof ConfigError && error.setting === "--allow-net" &&
        error.message ===
          "this run needs --allow-net (to reach the platform): add --allow-net (or --allow-net=example.com:443) to the deno run line, or run with -A",
    );
  }
  assert.throws(
    () =>
      requirePermission(
        { name: "write", path: "/configs" },
        "to keep the secret",
        () => "prompt",
      ),
    /add --allow-write \(or --allow-write=\/configs\)/,
  );
  // Off Deno, or a descriptor this Deno does not know: no check.
  requirePermission({ name: "env" }, "x", undefined);
  requirePermission({ name: "env" }, "x", () => {
    throw new TypeError("unknown descriptor");
  });
});

test(
  "deno run --allow-net mod.ts --demo: exit 2, one line naming --allow-env, no stack trace",
  {
    skip: !onDeno,
  },
  async () => {
    const run = await denoRun(["--allow-net"], ["--demo"], {});
    assertOneLine(run, "--allow-env");
  },
);

test(
  "the README's narrow line: a plain run against the emulator; each permission left out is one line naming it",
  {
    skip: !onDeno,
  },
  async () => {
    await using dir = await scratch("molecule-perm-");
    await using platform = await startPlatformEmulator({
      workspaces: { [WS]: TOKEN },
    });
    const hostPort = new URL(platform.url).host;
    const configs = join(dir.path, "configs");
    const flags = localized(await readmeLine(), hostPort, configs);
    const env = {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: WS,
      MOLECULE_WORKSPACE_TOKEN: TOKEN,
      CONFIGS_DIR: configs,
    };
    const ok = await denoRun(flags, ["--once"], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(platform.requestsTo("heartbeat", WS).length >= 1);
    assert.equal(ok.stderr, "");

    for (const kind of ["env", "net", "read", "write"]) {
      const fewer = flags.filter((f) => !f.startsWith(`--allow-${kind}`));
      assertOneLine(
        await denoRun(fewer, ["--once"], env),
        `--allow-${kind}`,
      );
    }
    // A token file outside --allow-read: the same line (not the canvas's
    // hint, which is for a bad token).
    const tokenFile = join(dir.path, "token");
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    const unreadable = await denoRun(flags, ["--once"], {
      ...env,
      MOLECULE_WORKSPACE_TOKEN: "",
      MOLECULE_WORKSPACE_TOKEN_FILE: tokenFile,
    });
    assertOneLine(unreadable, "--allow-read");
    assert.doesNotMatch(unreadable.stderr, /canvas/);
  },
);

test(
  "the README's narrow line runs the wrapper with --allow-run and /proc added; without --allow-run, one line naming it",
  {
    skip: !onDeno,
  },
  async () => {
    await using dir = await scratch("molecule-perm-");
    await using platform = await startPlatformEmulator({
      workspaces: { [WS]: TOKEN },
    });
    const configs = join(dir.path, "configs");
    const flags = localized(
      await readmeLine(),
      new URL(platform.url).host,
      configs,
    ).map((f) => f.startsWith("--allow-read=") ? `${f},/proc` : f);
    const env = {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: WS,
      MOLECULE_WORKSPACE_TOKEN: TOKEN,
      CONFIGS_DIR: configs,
    };
    const wrapped = await denoRun(
      [...flags, "--allow-run=sh"],
      ["--", "sh", "-c", "exit 3"],
      env,
    );
    assert.equal(wrapped.code, 3, wrapped.stderr);
    assertOneLine(
      await denoRun(flags, ["--", "sh", "-c", "exit 3"], env),
      "--allow-run",
    );
  },
);

test("--demo --once runs with the permissions the README names for it", {
  skip: !onDeno,
}, async () => {
  const readme = await readFile(README, "utf8");
  assert.ok(
    readme.replace(/\s+/g, " ").includes(`\`${DEMO_FLAGS}\``),
    "the README names the demo's permissions",
  );
  const run = await denoRun(DEMO_FLAGS.split(" "), ["--demo", "--once"], {});
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /heartbeat of .* accepted/);
});
