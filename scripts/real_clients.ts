/**
 * The real-client check (`deno task real-clients`): the MCP client
 * configurations the docs show, run through real MCP clients from npm, with
 * the wrapper as users get it.
 *
 * 1. `deno publish` of the working tree to a JSR-protocol registry on
 *    loopback (`scripts/local_jsr.ts`); the platform emulator serves the
 *    workspace id and token the docs' configurations carry.
 * 2. Every block between `<!-- client-config:begin NAME -->` and
 *    `<!-- client-config:end -->` in docs/wrapper.md (and README.md, when it
 *    has any) is read as its client reads it (JSON `mcpServers`, Codex's
 *    TOML). Only `PLATFORM_URL` (to the emulator) and paths under
 *    `/home/you` (to a scratch home) change; the entry's env gets `JSR_URL`
 *    and a fresh `DENO_DIR`, which point `jsr:@molecule/heartbeat` at the
 *    local registry.
 * 3. Each block goes through the MCP Inspector's CLI (`npx
 *    @modelcontextprotocol/inspector --cli --config FILE --server NAME`,
 *    the docs' own command lines, `tools/list` then `tools/call`) and
 *    mcporter (`list`, `call`), each client started with a clean
 *    environment that holds no platform variable: they reach the wrapper
 *    only through the block's `env`. mcporter reads the Codex, Cursor and
 *    Claude Code blocks from where those clients keep them
 *    (`~/.codex/config.toml`, `~/.cursor/mcp.json`, `~/.claude.json`), the
 *    others through `--config`. Every run must list the server's tools,
 *    answer the call, and register the workspace with the emulator.
 * 4. Why the `env` block: the same entry without it, the variables in the
 *    client's own environment, fails, and nothing registers.
 * 5. The docs' `sh` lines run as shown (`--demo`, the token file).
 *
 * The clients are devDependencies (`npm ci` installs them). Each step prints
 * PASS or FAIL; the exit code is the number of failed steps.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { startLocalJsr } from "./local_jsr.ts";
import {
  asMcpServersJson,
  type ConfigBlock,
  configBlocks,
  type ServerEntry,
  serverEntry,
} from "./release/client_configs.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { capture, expect, outputTail, type Ran, steps } from "./_steps.ts";

const root = resolve(import.meta.dirname!, "..");
const bin = (name: string) => join(root, "node_modules/.bin", name);
const JSR = "jsr:@molecule/heartbeat";
const PUBLISH_TOKEN = "real-clients-publish-token";
const RUN_TIMEOUT_MS = 180_000;
/** The blocks the docs must have, one per client, and the token-file variant. */
const EXPECTED = [
  "claude-desktop",
  "claude-code",
  "codex",
  "cursor",
  "gemini-cli",
  "token-file",
];
/** Where mcporter finds a client's own configuration, under HOME. */
const NATIVE: Record<string, string> = {
  "codex": ".codex/config.toml",
  "cursor": ".cursor/mcp.json",
  "claude-code": ".claude.json",
};

const tmp = await Deno.makeTempDir({ prefix: "molecule-clients-" });
const { step, finish } = steps("real clients");

let dirs = 0;
async function scratchDir(name: string): Promise<string> {
  const dir = join(tmp, `${++dirs}-${name}`);
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

/**
 * A directory to run a client in, as a user's project would be: no
 * deno.json (so `jsr:` resolves through the registry, not this workspace),
 * and this checkout's node_modules, so that `npx` finds the clients and the
 * MCP server installed by `npm ci` instead of downloading them.
 */
async function clientDir(name: string): Promise<string> {
  const dir = await scratchDir(name);
  await Deno.symlink(join(root, "node_modules"), join(dir, "node_modules"));
  return dir;
}

/** Runs `sh -c line` with a clean environment plus `env`. */
async function sh(
  line: string,
  cwd: string,
  env: Record<string, string>,
): Promise<Ran> {
  return await capture("sh", ["-c", line], {
    cwd,
    env,
    clearEnv: true,
    timeoutMs: RUN_TIMEOUT_MS,
  });
}

const tail = (r: Ran) => outputTail(r);
const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

// What the docs say.
const docs: { file: string; blocks: ConfigBlock[] }[] = [];
for (const file of ["docs/wrapper.md", "README.md"]) {
  const text = await Deno.readTextFile(join(root, file)).catch(() => "");
  docs.push({ file, blocks: configBlocks(text) });
}
const wrapperMd = await Deno.readTextFile(join(root, "docs/wrapper.md"));
const shLines = [...wrapperMd.matchAll(/```sh\n([\s\S]*?)```/g)]
  .flatMap((m) => m[1].split("\n")).map((l) => l.trim()).filter(Boolean);
const inspectorLines = shLines.filter((l) =>
  l.startsWith("npx @modelcontextprotocol/inspector --cli")
);
const demoLine = shLines.find((l) =>
  l.startsWith(`deno run -A --no-config ${JSR} --demo`)
);
const tokenLines = shLines.filter((l) =>
  l.includes(".config/molecule") && !l.includes("inspector")
);

const jsr = await startLocalJsr({
  dir: join(tmp, "jsr"),
  token: PUBLISH_TOKEN,
});
const denoDir = join(tmp, "deno_dir");
const path = `${join(root, "node_modules/.bin")}:${Deno.env.get("PATH")}`;
/**
 * This machine's certificate settings, for a network whose TLS goes through
 * a proxy of its own (Deno fetches the package's npm dependencies): a user
 * there puts them in the env block too, as the docs say of `DENO_CERT`.
 */
const tlsEnv: Record<string, string> = {};
for (
  const name of [
    "DENO_CERT",
    "DENO_TLS_CA_STORE",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
  ]
) {
  const value = Deno.env.get(name);
  if (value) tlsEnv[name] = value;
}
/** What every wrapper the clients start gets on top of the block's env. */
const toLocalRegistry = {
  JSR_URL: jsr.url,
  DENO_DIR: denoDir,
  DENO_NO_UPDATE_CHECK: "1",
  NO_COLOR: "1",
  ...tlsEnv,
};

// The emulator serves the workspace id and token each block carries (set
// before each block's runs).
const platform = await startPlatformEmulator({ uuidIds: false });
let WS = "";
const registers = () => platform.requestsTo("register", WS).length;

/** The entry pointed at the emulator, the local registry and `home`. */
function pointed(entry: ServerEntry, home: string): ServerEntry {
  const swap = (v: string) => v.replace(/^\/home\/you(?=\/|$)/, home);
  expect(
    entry.env.PLATFORM_URL && entry.env.WORKSPACE_ID,
    `${entry.server}: its env block must set PLATFORM_URL and WORKSPACE_ID`,
  );
  const tokenGiven = "MOLECULE_WORKSPACE_TOKEN" in entry.env ||
    "MOLECULE_WORKSPACE_TOKEN_FILE" in entry.env ||
    entry.args.includes("--token-file");
  expect(tokenGiven, `${entry.server}: no token (env or --token-file)`);
  const at = entry.args.indexOf(JSR);
  const dashes = entry.args.indexOf("--");
  expect(
    entry.command === "deno" && at >= 0 && dashes > at,
    `${entry.server}: want deno ... ${JSR} [flags] -- COMMAND, got ${entry.command} ${
      entry.args.join(" ")
    }`,
  );
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry.env)) env[k] = swap(v);
  return {
    ...entry,
    args: entry.args.map(swap),
    env: { ...env, PLATFORM_URL: platform.url, ...toLocalRegistry },
  };
}

/** The docs' TOML text with the same changes as {@link pointed}, checked to read back as that entry. */
function pointedToml(
  text: string,
  entry: ServerEntry,
  home: string,
): string {
  let out = text.replaceAll(/"\/home\/you(?=[/"])/g, `"${home}`).replace(
    /^(PLATFORM_URL\s*=\s*)".*"$/m,
    `$1${JSON.stringify(platform.url)}`,
  );
  out = out.replace(
    /^(\[mcp_servers\.[A-Za-z0-9_-]+\.env\])$/m,
    (header) =>
      [
        header,
        ...Object.entries(toLocalRegistry).map(([k, v]) =>
          `${k} = ${JSON.stringify(v)}`
        ),
      ].join("\n"),
  );
  const back = serverEntry({ name: "codex", lang: "toml", text: out });
  const want = pointed(entry, home);
  expect(
    JSON.stringify([back.command, back.args, sorted(back.env)]) ===
      JSON.stringify([want.command, want.args, sorted(want.env)]),
    `the TOML edit went wrong:\n${out}`,
  );
  return out;
}

const sorted = (env: Record<string, string>) =>
  Object.fromEntries(Object.entries(env).sort());

/** A client's environment: nothing of the platform's, as a fresh login shell. */
const clientEnv = (home: string, extra: Record<string, string> = {}) => ({
  PATH: path,
  HOME: home,
  NO_COLOR: "1",
  // The Inspector would try the OS keychain, then a file under HOME.
  MCP_INSPECTOR_SECRET_STORE: "memory",
  npm_config_update_notifier: "false",
  ...extra,
});

/** Runs one client command line; it must exit 0, print `want` and register. */
async function clientRun(
  what: string,
  line: string,
  cwd: string,
  home: string,
  want: RegExp,
): Promise<void> {
  const before = registers();
  const r = await sh(line, cwd, clientEnv(home));
  expect(r.code === 0, `${what}: exit ${r.code}\n$ ${line}\n${tail(r)}`);
  expect(want.test(r.stdout), `${what}: no ${want} in\n${tail(r)}`);
  expect(
    registers() > before,
    `${what}: the wrapper did not register with the platform\n${tail(r)}`,
  );
}

try {
  await step(
    "the docs' client configurations: every client has a block, each configures one stdio server",
    () => {
      const names = docs[0].blocks.map((b) => b.name);
      const missing = EXPECTED.filter((n) => !names.includes(n));
      expect(missing.length === 0, `docs/wrapper.md lacks ${missing}`);
      for (const { file, blocks } of docs) {
        for (const b of blocks) {
          const entry = serverEntry(b);
          pointed(entry, "/tmp/x"); // the shape it must have
          if (b.name === "token-file") {
            expect(
              !("MOLECULE_WORKSPACE_TOKEN" in entry.env),
              `${file} token-file: the token must not sit in the env block`,
            );
          }
        }
      }
      expect(inspectorLines.length === 2, "docs: the two Inspector lines");
      expect(demoLine, "docs: the --demo line");
      return docs.map((d) => `${d.file}: ${d.blocks.length} blocks`).join(
        "; ",
      );
    },
  );

  await step("deno publish to the local registry", async () => {
    const r = await new Deno.Command(bin("deno"), {
      args: ["publish", "--token", PUBLISH_TOKEN, "--allow-dirty"],
      cwd: root,
      env: { ...toLocalRegistry, DENO_DIR: join(tmp, "deno_dir_publish") },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    expect(
      r.code === 0,
      `deno publish: ${dec.decode(r.stderr).slice(-2000)}`,
    );
    expect(jsr.published.length === 1, "the registry recorded no publish");
    return jsr.published[0];
  });

  for (const { file, blocks } of docs) {
    for (const block of blocks) {
      await step(
        `${file} ${block.name}: the MCP Inspector's CLI and mcporter list and call a tool through the wrapper`,
        async () => {
          const entry = serverEntry(block);
          const cwd = await clientDir(block.name);
          const home = await scratchDir(`${block.name}-home`);
          if (block.name === "token-file") {
            // The docs' own lines write the token file.
            for (const line of tokenLines) {
              const r = await sh(line, cwd, clientEnv(home));
              expect(r.code === 0, `${line}: ${tail(r)}`);
            }
          }
          const target = pointed(entry, home);
          WS = target.env.WORKSPACE_ID;
          platform.setWorkspace(WS, await tokenOf(target));
          const config = join(cwd, `${block.name}.json`);
          await Deno.writeTextFile(config, asMcpServersJson(target));
          const server = entry.server;
          const marker = `hello-${block.name}`;
          // The Inspector, by the docs' own command lines.
          for (const line of inspectorLines) {
            const ours = line.replace(
              "claude_desktop_config.json",
              `${block.name}.json`,
            ).replace("message=hello", `message=${marker}`).replace(
              "--server my-tools",
              `--server ${server}`,
            );
            const call = ours.includes("tools/call");
            await clientRun(
              `Inspector ${call ? "tools/call" : "tools/list"}`,
              ours,
              cwd,
              home,
              call ? new RegExp(`Echo: ${marker}`) : /"name": "echo"/,
            );
          }
          // mcporter: from the client's own file where it reads one.
          let flags = `--config ${quote(config)}`;
          const native = NATIVE[block.name];
          if (native) {
            const at = join(home, native);
            await Deno.mkdir(join(at, ".."), { recursive: true });
            await Deno.writeTextFile(
              at,
              block.lang === "toml"
                ? pointedToml(block.text, entry, home)
                : JSON.stringify(
                  pointedJson(JSON.parse(block.text), target),
                  null,
                  2,
                ),
            );
            flags = "";
          }
          await clientRun(
            "mcporter list",
            `mcporter ${flags} list ${server} --json`,
            cwd,
            home,
            /"name": "echo"/,
          );
          await clientRun(
            "mcporter call",
            `mcporter ${flags} call ${server}.echo message=${marker}-m`,
            cwd,
            home,
            new RegExp(`Echo: ${marker}-m`),
          );
          return `Inspector and mcporter (${
            native ? `from ~/${native}` : "--config"
          }): tools listed, echo answered, registered`;
        },
      );
    }
  }

  await step(
    "why the env block: the same entry without it, the variables in the client's environment, does not start",
    async () => {
      const entry = serverEntry(
        docs[0].blocks.find((b) => b.name === "claude-desktop")!,
      );
      const cwd = await clientDir("no-env");
      const home = await scratchDir("no-env-home");
      const target = pointed(entry, home);
      WS = target.env.WORKSPACE_ID;
      platform.setWorkspace(WS, await tokenOf(target));
      const { PLATFORM_URL, WORKSPACE_ID, MOLECULE_WORKSPACE_TOKEN, ...rest } =
        target.env;
      await Deno.writeTextFile(
        join(cwd, "no-env.json"),
        asMcpServersJson({ ...target, env: rest }),
      );
      const before = registers();
      const r = await sh(
        `npx @modelcontextprotocol/inspector --cli --config no-env.json --server ${entry.server} --method tools/list`,
        cwd,
        clientEnv(home, {
          PLATFORM_URL,
          WORKSPACE_ID,
          MOLECULE_WORKSPACE_TOKEN,
        }),
      );
      expect(r.code !== 0, `the Inspector listed tools:\n${tail(r)}`);
      expect(
        /PLATFORM_URL is not set/.test(r.stdout + r.stderr),
        `no "PLATFORM_URL is not set" from the wrapper:\n${tail(r)}`,
      );
      expect(registers() === before, "something registered");
      return `the Inspector passes only HOME, PATH, SHELL and TERM: exit ${r.code}, "PLATFORM_URL is not set"`;
    },
  );

  await step("the docs' --demo line runs as shown", async () => {
    const cwd = await clientDir("demo");
    const r = await sh(
      demoLine!,
      cwd,
      { ...clientEnv(await scratchDir("demo-home")), ...toLocalRegistry },
    );
    expect(r.code === 0, `exit ${r.code}\n${tail(r)}`);
    expect(
      /demo: a platform emulator is listening/.test(r.stderr) &&
        /registered workspace/.test(r.stderr),
      tail(r),
    );
    return "registered with the in-process emulator; exit 0 at stdin's end";
  });
} finally {
  await platform.close();
  await jsr.close();
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}

/** The token a pointed entry gives the wrapper: from its env, or its token file. */
async function tokenOf(entry: ServerEntry): Promise<string> {
  const file = entry.env.MOLECULE_WORKSPACE_TOKEN_FILE ??
    entry.args[entry.args.indexOf("--token-file") + 1];
  const token = entry.env.MOLECULE_WORKSPACE_TOKEN ??
    (await Deno.readTextFile(file)).trim();
  expect(token, `${entry.server}: an empty token`);
  return token;
}

/** The docs' JSON with its one entry replaced by `target` (its other members kept). */
function pointedJson(
  doc: { mcpServers: Record<string, unknown> },
  target: ServerEntry,
) {
  const entry = doc.mcpServers[target.server] as Record<string, unknown>;
  return {
    ...doc,
    mcpServers: {
      [target.server]: {
        ...entry,
        args: target.args,
        env: target.env,
      },
    },
  };
}

finish();
