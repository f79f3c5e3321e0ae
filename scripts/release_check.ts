/**
 * The release check (`deno task release-check`): publishes the working tree
 * for real to a JSR-protocol registry on loopback (`scripts/local_jsr.ts`)
 * and installs it every way the README tells users to, from empty
 * directories, with a fresh `DENO_DIR`:
 *
 * 1. `deno publish --token …` (the real command, not a dry run); the files
 *    published are exactly the tracked files `publish.include` names;
 * 2. `deno run -A jsr:@molecule/heartbeat` with `--version`, `--help`,
 *    `--demo --once`; then, with stdin held open as an MCP client holds it,
 *    every exit code a user meets first: a bad flag 2, no configuration 2,
 *    `--demo -- sh -c 'exit 7'` 7 within a second of the child, a missing
 *    command 127, a rejected token 3 (against the platform emulator), a
 *    server command without `--` 2 with the hint (the installed command of
 *    step 4 too); and once with exactly the README's narrow permission line
 *    (no `-A`), `--once` against the emulator;
 * 3. a Deno program importing `jsr:@molecule/heartbeat` and
 *    `jsr:@molecule/heartbeat/testing` (directly, and after `deno add`):
 *    heartbeats against the emulator, a secret stored through the file store;
 * 4. `deno install -g -A -n molecule-heartbeat jsr:@molecule/heartbeat` into a
 *    temporary root, then the installed command;
 * 5. Node: the package as JSR's npm layer would build it
 *    (`scripts/jsr_npm_layer.ts`), published to a real npm registry
 *    (verdaccio, started and stopped here), installed by the real
 *    `npx jsr add @molecule/heartbeat` through the `.npmrc` scope line, then
 *    run on Node 20, 22 and 24 and type-checked with `tsc --noEmit`;
 * 6. the JSR score items that can be checked here.
 *
 * Every line of the README's install block must be a command run above.
 * Each step prints PASS or FAIL with what went wrong; the exit code is the
 * number of failed steps (0: all passed).
 *
 * @module
 */
import { join, resolve } from "node:path";
import { startLocalJsr } from "./local_jsr.ts";
import { buildNpmLayer } from "./jsr_npm_layer.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { capture, expect, outputTail, type Ran, steps } from "./_steps.ts";

const root = resolve(import.meta.dirname!, "..");
const bin = (name: string) => join(root, "node_modules/.bin", name);
const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
const PKG: string = config.name;
const VERSION: string = config.version;
const JSR = `jsr:${PKG}`;
const TOKEN = "release-check-token";
const STEP_TIMEOUT_MS = 240_000;
/** The workspace of step 2c, a UUID as the platform's are. */
const PERMISSION_WS = "7d2e9c1a-4b3f-4e5d-9a8b-1c2d3e4f5a6b";

/** The install commands the README shows, each run by a step below. */
const README_COMMANDS = {
  run: `deno run -A --no-config ${JSR}`,
  install: `deno install -g -A -n molecule-heartbeat ${JSR}`,
  denoAdd: `deno add ${JSR}`,
  jsrAdd: `npx jsr add ${PKG}`,
};

const tmp = await Deno.makeTempDir({ prefix: "molecule-release-" });
const work = join(root, ".ci/out/release");
await Deno.remove(work, { recursive: true }).catch(() => {});
await Deno.mkdir(work, { recursive: true });
const env: Record<string, string> = {
  DENO_DIR: join(tmp, "deno_dir"),
  NO_COLOR: "1",
  // A fresh cache must not reach for the internet for anything but npm.
  DENO_NO_UPDATE_CHECK: "1",
  PATH: `${join(root, "node_modules/.bin")}:${Deno.env.get("PATH")}`,
};

async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Ran> {
  return await capture(cmd, args, {
    cwd: opts.cwd ?? tmp,
    env: { ...env, ...opts.env },
    timeoutMs: STEP_TIMEOUT_MS,
  });
}

/** Runs a command, failing with its output's tail when it exits non-zero. */
async function ok(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Ran> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${r.code}:\n${outputTail(r)}`,
    );
  }
  return r;
}

async function emptyDir(name: string): Promise<string> {
  const dir = join(tmp, name);
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

const { step, finish } = steps("release check");

const store = join(tmp, "jsr");
const jsr = await startLocalJsr({ dir: store, token: TOKEN });
env.JSR_URL = jsr.url;
const published = join(store, PKG, VERSION);
let verdaccio: Deno.ChildProcess | undefined;

try {
  await step(
    "README install block: every line is a command this check runs",
    async () => {
      const readme = await Deno.readTextFile(join(root, "README.md"));
      const block = readme.match(
        /<!-- install:begin -->([\s\S]*?)<!-- install:end -->/,
      );
      expect(
        block,
        "README.md has no <!-- install:begin --> … <!-- install:end --> block",
      );
      const lines = block[1].split("\n").map((l) =>
        l.replace(/\s+#.*$/, "").trim()
      )
        .filter((l) => l && !l.startsWith("```") && !l.startsWith("#"));
      const known = Object.values(README_COMMANDS);
      const unknown = lines.filter((l) => !known.some((k) => l.startsWith(k)));
      expect(
        unknown.length === 0,
        `README install lines this check does not run: ${unknown.join(" | ")}`,
      );
      const missing = known.filter((k) => !lines.some((l) => l.startsWith(k)));
      expect(
        missing.length === 0,
        `README does not show: ${missing.join(" | ")}`,
      );
      return `${lines.length} lines`;
    },
  );

  await step(
    `1. deno publish ${PKG}@${VERSION} to the local registry`,
    async () => {
      await ok(bin("deno"), ["publish", "--token", TOKEN, "--allow-dirty"], {
        cwd: root,
      });
      expect(
        jsr.published.includes(`${PKG}@${VERSION}`),
        "registry recorded no publish",
      );
      const meta = JSON.parse(
        await Deno.readTextFile(`${published}_meta.json`),
      );
      const files = Object.keys(meta.manifest).map((p) => p.slice(1)).sort();
      const include: string[] = config.publish.include;
      const tracked =
        (await ok("git", ["ls-files", "--", ...include], { cwd: root }))
          .stdout.trim().split("\n").filter(Boolean).sort();
      const notPublished = tracked.filter((f) => !files.includes(f));
      const untracked = files.filter((f) => !tracked.includes(f));
      expect(
        notPublished.length === 0,
        `tracked but not published: ${notPublished}`,
      );
      expect(untracked.length === 0, `published but not tracked: ${untracked}`);
      return `${files.length} files, each with its sha256 in ${VERSION}_meta.json`;
    },
  );

  await step(
    `2. ${README_COMMANDS.run} (--version, --help, --demo --once)`,
    async () => {
      // In a Node project's folder, where MCP clients start it: without
      // --no-config, Deno looks for LogTape in the project's node_modules.
      const dir = await emptyDir("run");
      await Deno.writeTextFile(
        join(dir, "package.json"),
        '{"name": "an-mcp-users-project", "type": "module"}\n',
      );
      const RUN = ["run", "-A", "--no-config", JSR];
      const version = await ok(bin("deno"), [...RUN, "--version"], {
        cwd: dir,
      });
      expect(
        version.stdout === `molecule-heartbeat ${VERSION}\n`,
        `--version printed ${JSON.stringify(version.stdout)}, want ${VERSION}`,
      );
      const help = await ok(bin("deno"), [...RUN, "--help"], {
        cwd: dir,
      });
      expect(
        help.stdout.includes("MOLECULE_WORKSPACE_TOKEN"),
        "--help lacks the variables",
      );
      const demo = await ok(
        bin("deno"),
        [...RUN, "--demo", "--once"],
        {
          cwd: dir,
        },
      );
      expect(
        /heartbeat accepted/.test(demo.stderr),
        "--demo --once: no accepted beat",
      );
      return `prints "molecule-heartbeat ${VERSION}"; demo beat accepted`;
    },
  );

  await step(
    `2b. ${README_COMMANDS.run}: exit codes with stdin held open`,
    () => exitCodeRows(["deno", "run", "-A", "--no-config", JSR]),
  );

  await step(
    "2c. the README's narrow permission line, exactly (no -A): --once against the emulator",
    async () => {
      const readme = await Deno.readTextFile(join(root, "README.md"));
      const block = readme.match(
        /<!-- permissions:begin -->[\s\S]*?```sh\n([\s\S]*?)```/,
      );
      expect(block, "README.md has no <!-- permissions:begin --> sh block");
      const line = block[1].replace(/\\\n/g, " ").trim().split(/\s+/);
      expect(
        line[0] === "deno" && line.at(-1) === JSR,
        `the permission line does not run ${JSR}: ${line.join(" ")}`,
      );
      await using platform = await startPlatformEmulator({
        workspaces: { [PERMISSION_WS]: "release-token-narrow" },
      });
      const configs = await emptyDir("narrow-configs");
      // The README's placeholders, for this machine: nothing else changes.
      const args = line.slice(1).map((word) =>
        word.replaceAll(
          "your-tenant.molecule.example:443",
          new URL(platform.url).host,
        ).replaceAll("$HOME/.molecule-workspace", configs)
      );
      await ok(bin("deno"), [...args, "--once"], {
        cwd: await emptyDir("narrow"),
        env: {
          PLATFORM_URL: platform.url,
          WORKSPACE_ID: PERMISSION_WS,
          MOLECULE_WORKSPACE_TOKEN: "release-token-narrow",
          CONFIGS_DIR: configs,
        },
      });
      expect(
        platform.requestsTo("heartbeat", PERMISSION_WS).length >= 1,
        "no heartbeat reached the emulator",
      );
      return args.filter((a) => a.startsWith("--allow-")).join(" ");
    },
  );

  await step("3. a Deno program importing the package from JSR", async () => {
    const direct = await emptyDir("deno-direct");
    await Deno.copyFile(
      join(root, "scripts/release/deno_consumer.ts"),
      join(direct, "main.ts"),
    );
    await ok(bin("deno"), ["check", "main.ts"], { cwd: direct });
    const a = await ok(bin("deno"), ["run", "-A", "main.ts"], {
      cwd: direct,
      env: { EXPECTED_VERSION: VERSION },
    });
    const added = await emptyDir("deno-add");
    await Deno.writeTextFile(join(added, "deno.json"), "{}\n");
    await ok(bin("deno"), README_COMMANDS.denoAdd.split(" ").slice(1), {
      cwd: added,
    });
    const denoJson = JSON.parse(
      await Deno.readTextFile(join(added, "deno.json")),
    );
    expect(
      denoJson.imports?.[PKG] === `${JSR}@^${VERSION}`,
      `deno add wrote ${JSON.stringify(denoJson.imports)}`,
    );
    const source = (await Deno.readTextFile(
      join(root, "scripts/release/deno_consumer.ts"),
    )).replaceAll(`"${JSR}`, `"${PKG}`);
    await Deno.writeTextFile(join(added, "main.ts"), source);
    const b = await ok(bin("deno"), ["run", "-A", "main.ts"], {
      cwd: added,
      env: { EXPECTED_VERSION: VERSION },
    });
    return `${a.stdout.trim()}; after deno add: ${b.stdout.trim()}`;
  });

  await step(`4. ${README_COMMANDS.install}, then the command`, async () => {
    const installRoot = join(tmp, "install-root");
    await ok(bin("deno"), [
      ...README_COMMANDS.install.split(" ").slice(1),
      "--root",
      installRoot,
    ], { cwd: await emptyDir("install") });
    const cmd = join(installRoot, "bin", "molecule-heartbeat");
    const version = await ok(cmd, ["--version"], {
      cwd: await emptyDir("installed"),
    });
    expect(
      version.stdout === `molecule-heartbeat ${VERSION}\n`,
      "wrong --version",
    );
    const demo = await ok(cmd, ["--demo", "--once"]);
    expect(
      /heartbeat accepted/.test(demo.stderr),
      "--demo --once: no accepted beat",
    );
    const rows = await exitCodeRows([cmd]);
    return `${cmd} --demo --once exits 0; ${rows}`;
  });

  await step(
    "5. Node: the npm layer through verdaccio and npx jsr add, on Node 20, 22, 24",
    async () => {
      const layer = await buildNpmLayer(
        published,
        join(work, "npm"),
        bin("tsc"),
      );
      expect(
        layer.packageJson.version === VERSION,
        "npm package version differs",
      );
      const reg = await startVerdaccio();
      verdaccio = reg.process;
      const npmrc = join(tmp, "publish.npmrc");
      const host = reg.url.replace(/^http:/, "");
      await Deno.writeTextFile(npmrc, `${host}:_authToken=${reg.token}\n`);
      await ok("npm", [
        "publish",
        "--registry",
        reg.url,
        "--userconfig",
        npmrc,
        "--no-provenance",
      ], { cwd: layer.dir });
      const consumer = await emptyDir("node-consumer");
      await ok("npm", ["init", "-y"], { cwd: consumer });
      // What `npx jsr add` writes, pointed at the local registry; the real
      // `jsr add` keeps an existing @jsr line and runs npm install.
      await Deno.writeTextFile(
        join(consumer, ".npmrc"),
        `@jsr:registry=${reg.url}\n`,
      );
      await ok(bin("jsr"), README_COMMANDS.jsrAdd.split(" ").slice(2), {
        cwd: consumer,
      });
      const pkgJson = JSON.parse(
        await Deno.readTextFile(join(consumer, "package.json")),
      );
      const dep = pkgJson.dependencies?.[PKG];
      expect(
        dep === `npm:@jsr/${PKG.slice(1).replace("/", "__")}@^${VERSION}`,
        `jsr add wrote dependency ${JSON.stringify(dep)}`,
      );
      const installed = JSON.parse(
        await Deno.readTextFile(
          join(consumer, "node_modules", PKG, "package.json"),
        ),
      );
      expect(installed.version === VERSION, `installed ${installed.version}`);
      await Deno.copyFile(
        join(root, "scripts/release/node_consumer.test.mjs"),
        join(consumer, "consumer.test.mjs"),
      );
      const ran: string[] = [];
      for (const node of await nodes()) {
        const r = await ok(node.path, ["--test", "consumer.test.mjs"], {
          cwd: consumer,
          env: { EXPECTED_VERSION: VERSION },
        });
        expect(
          /\bpass [1-9]/.test(r.stdout) && /\bfail 0\b/.test(r.stdout) &&
            r.stdout.includes(`works on Node ${node.version}`),
          r.stdout,
        );
        ran.push(node.version);
      }
      await Deno.copyFile(
        join(root, "scripts/release/node_consumer.ts"),
        join(consumer, "consumer.ts"),
      );
      await Deno.writeTextFile(
        join(consumer, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            module: "NodeNext",
            moduleResolution: "NodeNext",
            target: "ES2022",
            strict: true,
            noEmit: true,
            typeRoots: [join(root, "node_modules/@types")],
            types: ["node"],
          },
          files: ["consumer.ts"],
        }),
      );
      await ok(bin("tsc"), ["-p", "tsconfig.json"], { cwd: consumer });
      return `ran on ${ran.join(", ")}; tsc --noEmit clean`;
    },
  );

  await step("6. JSR score items", async () => {
    expect(
      typeof config.description === "string" &&
        config.description.length >= 20 && config.description.length <= 250,
      "deno.json needs a description (20–250 characters)",
    );
    const readme = await Deno.readTextFile(join(root, "README.md"));
    expect(readme.length > 2000, "README.md is missing or short");
    expect(
      /runtime compatibility/i.test(readme) && /Deno/.test(readme) &&
        /Node/.test(readme),
      "README must declare runtime compatibility",
    );
    const entries: string[] = Object.values(config.exports);
    for (const entry of entries) {
      const text = await Deno.readTextFile(join(root, entry));
      expect(/@module/.test(text), `${entry} has no module doc (@module)`);
    }
    await ok(bin("deno"), ["doc", "--lint", ...entries], { cwd: root });
    // Step 1 published without --allow-slow-types: no slow types.
    return `description, README, module docs on ${entries.length} entry points, symbol docs (deno doc --lint), no slow types`;
  });
} finally {
  if (verdaccio) {
    try {
      verdaccio.kill("SIGTERM");
    } catch { /* already gone */ }
    await verdaccio.status;
  }
  await jsr.close();
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}

finish();

/**
 * Runs `argv` with `args` and stdin piped but never closed (as an MCP client
 * holds it open), with a clean environment plus `extra`; resolves with its
 * exit code and when it exited, or fails after `timeoutMs`.
 */
async function held(
  argv: string[],
  args: string[],
  extra: Record<string, string>,
  timeoutMs = 60_000,
): Promise<Ran & { exitedAt: number }> {
  const [cmd, ...pre] = argv;
  const child = new Deno.Command(cmd === "deno" ? bin("deno") : cmd, {
    args: [...pre, ...args],
    cwd: await emptyDir("held"),
    clearEnv: true,
    env: {
      PATH: env.PATH,
      HOME: await emptyDir("held-home"),
      DENO_DIR: env.DENO_DIR,
      DENO_NO_UPDATE_CHECK: "1",
      JSR_URL: env.JSR_URL,
      NO_COLOR: "1",
      ...extra,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const status = child.status.then((s) => ({ ...s, at: Date.now() }));
  const [out, err, s] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    status,
  ]);
  clearTimeout(timer);
  await child.stdin.close().catch(() => {});
  if (s.signal === "SIGKILL") {
    throw new Error(
      `${argv.join(" ")} ${args.join(" ")}: did not exit within ${
        timeoutMs / 1000
      } s with stdin open\n${err.trim().split("\n").slice(-5).join("\n")}`,
    );
  }
  return { code: s.code, stdout: out, stderr: err, exitedAt: s.at };
}

/**
 * The exit codes a user meets first, through `argv` (`deno run -A jsr:…` or
 * the installed command), each with stdin held open.
 */
async function exitCodeRows(argv: string[]): Promise<string> {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: { "ws-release": "release-token-right" },
  });
  const stamp = join(await emptyDir("stamp"), "child-exit-ms");
  const rows: {
    what: string;
    args: string[];
    env?: Record<string, string>;
    code: number;
    stderr?: RegExp;
  }[] = [
    { what: "a bad flag", args: ["--no-such-flag"], code: 2 },
    {
      what: "no configuration",
      args: [],
      code: 2,
      stderr: /PLATFORM_URL is not set/,
    },
    {
      what: "--demo -- sh -c 'exit 7'",
      args: ["--demo", "--", "sh", "-c", `date +%s%3N > ${stamp}; exit 7`],
      code: 7,
    },
    {
      what: "a missing command",
      args: ["--demo", "--", "no-such-command-4711"],
      code: 127,
      stderr: /command not found/,
    },
    {
      what: "a rejected token (wrapper mode)",
      args: ["--", "sh", "-c", "sleep 60"],
      env: {
        PLATFORM_URL: platform.url,
        WORKSPACE_ID: "ws-release",
        MOLECULE_WORKSPACE_TOKEN: "release-token-wrong",
        CONFIGS_DIR: await emptyDir("held-configs"),
      },
      code: 3,
      stderr: /Tokens tab/,
    },
    {
      what: "a server command without --",
      args: ["npx", "-y", "@modelcontextprotocol/server-everything"],
      code: 2,
      stderr: /did you forget `--` before the server's command\?/,
    },
  ];
  const seen: string[] = [];
  for (const row of rows) {
    const r = await held(argv, row.args, row.env ?? {});
    expect(
      r.code === row.code,
      `${row.what}: exit ${r.code}, want ${row.code}\n${r.stderr.trim()}`,
    );
    if (row.stderr) {
      expect(row.stderr.test(r.stderr), `${row.what}: stderr ${r.stderr}`);
    }
    if (row.code === 7) {
      const childExit = Number((await Deno.readTextFile(stamp)).trim());
      const lag = r.exitedAt - childExit;
      expect(
        lag < 1_000,
        `--demo -- sh -c 'exit 7': exited ${lag} ms after the child, want < 1000`,
      );
      seen.push(`7 (${lag} ms after the child)`);
    } else seen.push(`${r.code}`);
  }
  return `exits ${seen.join(", ")}`;
}

/** Node 20 (the machine's), 22 (installed here from npm) and 24 (ours). */
async function nodes(): Promise<{ path: string; version: string }[]> {
  const tools = join(work, "node22");
  await ok("npm", [
    "install",
    "--prefix",
    tools,
    "--no-audit",
    "--no-fund",
    "node@22",
  ]);
  const out: { path: string; version: string }[] = [];
  for (
    const path of [
      "/usr/bin/node",
      join(tools, "node_modules/.bin/node"),
      bin("node"),
    ]
  ) {
    const r = await run(path, ["--version"]).catch(() => undefined);
    if (!r || r.code !== 0) throw new Error(`${path}: not runnable`);
    out.push({ path, version: r.stdout.trim() });
  }
  const majors = out.map((n) => n.version.split(".")[0]).sort();
  expect(majors.join() === "v20,v22,v24", `Node versions found: ${majors}`);
  return out;
}

/** A real npm registry on loopback: verdaccio, one user, no uplinks. */
async function startVerdaccio(): Promise<{
  url: string;
  token: string;
  process: Deno.ChildProcess;
}> {
  const dir = await emptyDir("verdaccio");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await Deno.writeTextFile(
    join(dir, "config.yaml"),
    [
      `storage: ${join(dir, "storage")}`,
      "auth:",
      "  htpasswd:",
      `    file: ${join(dir, "htpasswd")}`,
      "    max_users: 1",
      "uplinks: {}",
      "packages:",
      "  '@jsr/*':",
      "    access: $all",
      "    publish: $authenticated",
      "  '**':",
      "    access: $all",
      "log: { type: stdout, format: pretty, level: warn }",
      "",
    ].join("\n"),
  );
  const process = new Deno.Command(bin("node"), {
    args: [
      bin("verdaccio"),
      "--config",
      join(dir, "config.yaml"),
      "--listen",
      `127.0.0.1:${port}`,
    ],
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Its warnings (it dislikes running as root) are kept, bounded, for a
  // failure message, not printed.
  const log: string[] = [];
  (async () => {
    for await (
      const chunk of process.stderr.pipeThrough(new TextDecoderStream())
    ) {
      log.push(chunk);
      if (log.length > 50) log.shift();
    }
  })().catch(() => {});
  const url = `http://127.0.0.1:${port}/`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`${url}-/ping`);
      await r.body?.cancel();
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      throw new Error("verdaccio did not start in 30 s");
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const user = await fetch(`${url}-/user/org.couchdb.user:release-check`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      name: "release-check",
      password: crypto.randomUUID(),
    }),
  });
  const body = await user.json();
  expect(
    user.ok && body.token,
    `verdaccio user: ${user.status} ${JSON.stringify(body)}`,
  );
  return { url, token: body.token, process };
}
