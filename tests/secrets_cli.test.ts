// Secrets that stay ours (issue 25), through the command as users run it
// (mod.ts) where only a process can show it: the wrapped server's
// environment holds none of our tokens unless --pass-token says so; --token
// is refused without echoing it; an exit-2 line never echoes a value that
// looks like a token or equals a known secret; every secret stored in the
// configs dir is known to masking before the first request.
import { test } from "node:test";
import { inParallel } from "./helpers/wait.ts";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { envFromRecord } from "../src/shared/env.ts";
import { childEnvironment, passTokenSetting } from "../src/cli/child_env.ts";
import { goneCode } from "../src/cli/run.ts";
import { parseFlags } from "../src/cli/flags.ts";
import { looksLikeToken, maskSecrets } from "../src/shared/mask.ts";
import type { WorkspaceStatus } from "../src/schedule/types.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import {
  nodeBin,
  runScript,
  runtimeArgs,
  startPiped,
} from "./helpers/runtime.ts";
import { scratch } from "./helpers/scratch.ts";

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));
const WS = "3f9c2a4e-8b1d-4c6e-9a7f-1e2d3c4b5a60";
const WS2 = "7b2e9d1c-4a3f-4e8b-9c0d-5f6a7b8c9d0e";
const TOKEN = "Wt7qK2mZ9xLp4RvB8nJc3HsY";
const TOKEN2 = "Second-Tok-5Gh8Kq2Wz7Lm";
const HEALTH = "health-bearer-0123456789abcdef";

/** No piece of 6 characters of `secret` may appear in `text`. */
function assertNoPiece(text: string, secret: string, what: string) {
  for (let i = 0; i + 6 <= secret.length; i++) {
    const piece = secret.slice(i, i + 6);
    assert.ok(!text.includes(piece), `${what}: "${piece}" leaked:\n${text}`);
  }
}

/**
 * Runs mod.ts wrapping a Node child that writes its environment (as JSON)
 * to a file, and returns that environment and our stderr.
 */
async function childEnvOf(
  dir: string,
  flags: string[],
  env: Record<string, string>,
) {
  const out = join(dir, `env-${crypto.randomUUID()}.json`);
  const [cmd, args] = runtimeArgs(MOD, [
    ...flags,
    "--",
    nodeBin(),
    "-e",
    "require('fs').writeFileSync(process.argv[1], JSON.stringify(process.env))",
    out,
  ]);
  const done = await startPiped(cmd, args, { env, timeoutMs: 30_000 }).done;
  assert.equal(done.code, 0, done.stderr);
  return {
    env: JSON.parse(await readFile(out, "utf8")) as Record<string, string>,
    stderr: done.stderr,
  };
}

test("wrapper (mod.ts): the server's environment holds none of our tokens and secrets; --pass-token (or MOLECULE_PASS_TOKEN=1) passes the workspace token only", async () => {
  await using dir = await scratch("molecule-secrets-");
  await using platform = await startPlatformEmulator({
    workspaces: { [WS]: TOKEN, [WS2]: TOKEN2 },
  });
  const tokenFile = join(dir.path, "token");
  await writeFile(tokenFile, TOKEN, { mode: 0o600 });
  const base = {
    PLATFORM_URL: platform.url,
    WORKSPACE_ID: WS,
    CONFIGS_DIR: dir.path,
    MOLECULE_HEALTH_TOKEN: HEALTH,
    MOLECULE_WORKSPACE_TOKEN_FILE: tokenFile,
    // Another name holding our token (a server's own setting, say).
    SERVER_API_KEY: `Bearer ${TOKEN}`,
    SERVER_SETTING: "kept-as-it-is",
  };

  const plain = await childEnvOf(dir.path, [], {
    ...base,
    MOLECULE_WORKSPACE_TOKEN: TOKEN,
  });
  for (
    const name of [
      "MOLECULE_WORKSPACE_TOKEN",
      "MOLECULE_HEALTH_TOKEN",
      "MOLECULE_WORKSPACE_TOKEN_FILE",
      "SERVER_API_KEY",
    ]
  ) assert.equal(plain.env[name], undefined, `${name} reached the server`);
  assertNoPiece(JSON.stringify(plain.env), TOKEN, "the server's environment");
  assertNoPiece(JSON.stringify(plain.env), HEALTH, "the server's environment");
  // What is not ours, or no secret, passes.
  assert.equal(plain.env.SERVER_SETTING, "kept-as-it-is");
  assert.equal(plain.env.PLATFORM_URL, platform.url);
  assert.equal(plain.env.WORKSPACE_ID, WS);
  assert.equal(plain.env.CONFIGS_DIR, dir.path);
  assert.ok(plain.env.PATH);
  // The variable of another name is named (never its value) in one line.
  const leftOut = plain.stderr.split("\n").filter((l) => /left .* out/.test(l));
  assert.equal(leftOut.length, 1, plain.stderr);
  assert.match(
    leftOut[0],
    /WARN left SERVER_API_KEY out of the server's environment/,
  );
  assertNoPiece(plain.stderr, TOKEN, "our stderr");

  // A token file: the token is read from it, and still not passed on.
  const fromFile = await childEnvOf(
    dir.path,
    ["--token-file", tokenFile],
    base,
  );
  assertNoPiece(
    JSON.stringify(fromFile.env),
    TOKEN,
    "the server's environment",
  );

  // A list: MOLECULE_WORKSPACES holds every token.
  const list = await childEnvOf(dir.path, [], {
    ...base,
    MOLECULE_WORKSPACES: JSON.stringify([
      { id: WS, token: TOKEN },
      { id: WS2, token: TOKEN2 },
    ]),
  });
  assert.equal(list.env.MOLECULE_WORKSPACES, undefined);
  for (const secret of [TOKEN, TOKEN2]) {
    assertNoPiece(JSON.stringify(list.env), secret, "the server's environment");
  }

  // --pass-token: the workspace token (and the token file's path), nothing else.
  for (
    const [flags, extra] of [
      [["--pass-token"], {}],
      [[], { MOLECULE_PASS_TOKEN: "1" }],
    ] as const
  ) {
    const passed = await childEnvOf(dir.path, [...flags], {
      ...base,
      ...extra,
      MOLECULE_WORKSPACE_TOKEN: TOKEN,
    });
    assert.equal(passed.env.MOLECULE_WORKSPACE_TOKEN, TOKEN);
    assert.equal(passed.env.MOLECULE_WORKSPACE_TOKEN_FILE, tokenFile);
    assert.equal(passed.env.SERVER_API_KEY, `Bearer ${TOKEN}`);
    assert.equal(passed.env.MOLECULE_HEALTH_TOKEN, undefined);
    assertNoPiece(JSON.stringify(passed.env), HEALTH, "with --pass-token");
  }
});

test("childEnvironment and passTokenSetting: names, values, what --pass-token keeps, what it refuses", () => {
  const parent = {
    PATH: "/usr/bin",
    MOLECULE_WORKSPACE_TOKEN: "tok-0123456789",
    MOLECULE_WORKSPACES: '[{"id":"a","token":"tok-0123456789"}]',
    MOLECULE_WORKSPACES_FILE: "/etc/molecule/workspaces.json",
    MOLECULE_WORKSPACE_TOKEN_FILE: "/etc/molecule/token",
    MOLECULE_HEALTH_TOKEN: "health-0123456789abcdef",
    COPY: "tok-0123456789",
    SECRET_IN_URL: "https://x.example/?s=inbound-secret-42",
    SHORT: "tok",
  };
  const secrets = [
    "tok-0123456789",
    "health-0123456789abcdef",
    "inbound-secret-42",
    "tok", // under 6 characters: no secret
  ];
  const plain = childEnvironment(parent, { secrets });
  assert.deepEqual(plain.env, { PATH: "/usr/bin", SHORT: "tok" });
  assert.deepEqual(plain.leftOut, ["COPY", "SECRET_IN_URL"]);
  const passed = childEnvironment(parent, {
    secrets,
    passToken: "tok-0123456789",
  });
  assert.deepEqual(passed.env, {
    PATH: "/usr/bin",
    MOLECULE_WORKSPACE_TOKEN_FILE: "/etc/molecule/token",
    COPY: "tok-0123456789",
    SHORT: "tok",
    MOLECULE_WORKSPACE_TOKEN: "tok-0123456789",
  });
  assert.deepEqual(passed.leftOut, ["SECRET_IN_URL"]);

  const pass = (args: string[], env: Record<string, string>, wrapping = true) =>
    passTokenSetting(parseFlags(args), envFromRecord(env), wrapping);
  assert.equal(pass([], {}), false);
  assert.equal(pass(["--pass-token"], {}), true);
  for (const on of ["1", "true", "YES", "on"]) {
    assert.equal(pass([], { MOLECULE_PASS_TOKEN: on }), true, on);
  }
  for (const off of ["0", "false", "no", "off", " "]) {
    assert.equal(pass([], { MOLECULE_PASS_TOKEN: off }), false, off);
  }
  assert.equal(pass([], { MOLECULE_PASS_TOKEN: "1" }, false), false);
  assert.throws(
    () => pass([], { MOLECULE_PASS_TOKEN: "please" }),
    /MOLECULE_PASS_TOKEN must be 1, true, yes or on/,
  );
  assert.throws(
    () => pass(["--pass-token"], {}, false),
    /--pass-token .* needs a command after --/,
  );
});

test("command (mod.ts): --pass-token with a workspaces list, or without a command, exits 2 naming it", async () => {
  const env = {
    PLATFORM_URL: "http://127.0.0.1:2",
    MOLECULE_WORKSPACES: JSON.stringify([
      { id: WS, token: TOKEN },
      { id: WS2, token: TOKEN2 },
    ]),
  };
  const list = await runScript(MOD, {
    args: ["--pass-token", "--", "true"],
    env,
  });
  assert.equal(list.code, 2, list.stderr);
  assert.match(
    list.stderr,
    /^molecule-heartbeat: error: --pass-token passes one workspace's token to the server: serve one workspace/,
  );
  const alone = await runScript(MOD, { args: ["--pass-token"], env });
  assert.equal(alone.code, 2, alone.stderr);
  assert.match(alone.stderr, /--pass-token .* needs a command after --/);
});

test("command (mod.ts): --token VALUE is refused with the two ways that exist, exit 2, the value never echoed", async () => {
  for (
    const args of [
      ["--token", TOKEN],
      [`--token=${TOKEN}`],
      ["--verbose", "--token", TOKEN, "--", "npx", "-y", "some-server"],
      ["--log-format", "json", "--token", TOKEN],
    ]
  ) {
    const r = await runScript(MOD, {
      args,
      env: { PLATFORM_URL: "http://127.0.0.1:2", WORKSPACE_ID: WS },
    });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /--token is not accepted/);
    assert.match(lines[0], /MOLECULE_WORKSPACE_TOKEN/);
    assert.match(lines[0], /--token-file/);
    assertNoPiece(r.stderr, TOKEN, args.join(" "));
    assert.equal(r.stdout, "");
  }
});

test("command (mod.ts): a token pasted into WORKSPACE_ID, PLATFORM_URL or another setting is masked in the exit-2 line; so is a known secret", async () => {
  const hex =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
  const base = {
    PLATFORM_URL: "http://127.0.0.1:2",
    WORKSPACE_ID: WS,
    MOLECULE_WORKSPACE_TOKEN: "some-token-of-ours",
  };
  const cases: [string, string[], Record<string, string>, RegExp, string][] = [
    [
      "token in WORKSPACE_ID",
      [],
      { ...base, WORKSPACE_ID: TOKEN },
      /WORKSPACE_ID is no workspace id/,
      TOKEN,
    ],
    [
      "token in --workspace-id",
      ["--workspace-id", TOKEN],
      base,
      /--workspace-id is no workspace id/,
      TOKEN,
    ],
    [
      "token in PLATFORM_URL",
      [],
      { ...base, PLATFORM_URL: TOKEN },
      /PLATFORM_URL must be an absolute http\(s\) URL/,
      TOKEN,
    ],
    [
      "hex token in PLATFORM_URL",
      [],
      { ...base, PLATFORM_URL: hex },
      /PLATFORM_URL must be an absolute/,
      hex,
    ],
    [
      "token in the interval",
      [],
      { ...base, MOLECULE_HEARTBEAT_INTERVAL: TOKEN },
      /MOLECULE_HEARTBEAT_INTERVAL must be a number/,
      TOKEN,
    ],
    [
      "token as a list entry's id",
      [],
      {
        ...base,
        MOLECULE_WORKSPACES: JSON.stringify([{
          id: TOKEN,
          token: "x-token-000",
        }]),
      },
      /MOLECULE_WORKSPACES entry 0 has an \\?"id\\?" that is no workspace id/,
      TOKEN,
    ],
    // Not token-like, but our own token: masked as a known secret.
    [
      "the token itself in WORKSPACE_ID",
      [],
      {
        ...base,
        WORKSPACE_ID: "Correct.Horse.Battery9",
        MOLECULE_WORKSPACE_TOKEN: "Correct.Horse.Battery9",
      },
      /WORKSPACE_ID is no workspace id/,
      "Correct.Horse.Battery9",
    ],
  ];
  const runs = cases.flatMap((c) =>
    ["text", "json"].map((format) => [c, format] as const)
  );
  await inParallel(
    runs,
    4,
    async ([[what, args, env, pattern, secret], format]) => {
      const r = await runScript(MOD, {
        args: [...args, "--log-format", format],
        env,
      });
      assert.equal(r.code, 2, `${what}: ${r.stderr}`);
      const line = r.stderr.trim();
      assert.equal(line.split("\n").length, 1, `${what}: ${r.stderr}`);
      assert.match(line, pattern, what);
      assert.match(line, /\[redacted\]/, what);
      assertNoPiece(r.stderr, secret, `${what} (${format})`);
    },
  );
  // What is not a secret is still shown, so the line says what to fix.
  const plain = await runScript(MOD, {
    env: { ...base, WORKSPACE_ID: "My_Workspace" },
  });
  assert.match(
    plain.stderr,
    /WORKSPACE_ID is no workspace id \(My_Workspace\)/,
  );
});

test("looksLikeToken: base64 and hex runs are tokens; names, paths, ids and UUIDs are not", () => {
  for (
    const token of [
      TOKEN,
      "9f86d081884c7d659a2feaa0c55ad015",
      "dGhpcy1pcy1hLXNlY3JldC10b2tlbg",
      "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
      "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
    ]
  ) assert.ok(looksLikeToken(token), token);
  for (
    const name of [
      WS,
      "MOLECULE_WORKSPACE_TOKEN_FILE",
      "molecule-mcp-3f9c2a4e",
      "your-tenant-molecule-example",
      "lower-case-words-and-2-digits",
      "short0123",
    ]
  ) assert.ok(!looksLikeToken(name), name);
  assert.equal(
    maskSecrets(
      `WORKSPACE_ID is no workspace id (${TOKEN}): see /tmp/molecule-cli-Ab3xYz/ws.json and ${WS}`,
      { tokenLike: true },
    ),
    `WORKSPACE_ID is no workspace id ([redacted]): see /tmp/molecule-cli-Ab3xYz/ws.json and ${WS}`,
  );
});

test("command (mod.ts): a stored inbound secret that the platform quotes in an error body is masked in our line before the platform sends it again", async () => {
  await using dir = await scratch("molecule-secrets-");
  const stored = "Stored-Inbound-Zk4Qw8Rt2Yp6";
  const issued = "Stored-Issued-Mx5Nb1Vc7Lq3";
  await writeFile(join(dir.path, ".platform_inbound_secret"), stored + "\n", {
    mode: 0o600,
  });
  await writeFile(join(dir.path, `.auth_token.${WS2}`), issued, {
    mode: 0o600,
  });
  await using platform = await startPlatformEmulator({
    workspaces: { [WS]: TOKEN },
    secretFor: () => undefined, // never sends it in this run
  });
  platform.fail({
    kind: "status",
    status: 500,
    body: `{"error":"secret ${stored} mismatch; last token ${issued}"}`,
  }, { path: "heartbeat" });
  for (const format of ["text", "json"]) {
    const r = await runScript(MOD, {
      args: ["--once", "--verbose", "--log-format", format],
      env: {
        PLATFORM_URL: platform.url,
        WORKSPACE_ID: WS,
        MOLECULE_WORKSPACE_TOKEN: TOKEN,
        CONFIGS_DIR: dir.path,
      },
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /mismatch; last token/, "the body is quoted");
    assertNoPiece(r.stderr, stored, `the stored secret (${format})`);
    assertNoPiece(r.stderr, issued, `the stored issued token (${format})`);
  }
});

test("goneCode: every workspace deleted is 4; any token refused is 3; ids refused as malformed is 2; one still served is none", () => {
  const w = (over: Partial<WorkspaceStatus>) =>
    ({ rejected: false, deleted: false, ...over }) as WorkspaceStatus;
  const deleted = w({ deleted: true });
  const token = w({ rejected: true, rejectedFor: "token" });
  const id = w({ rejected: true, rejectedFor: "id" });
  const older = w({ rejected: true }); // a library that does not say why
  assert.equal(goneCode([deleted, deleted]), 4);
  assert.equal(goneCode([deleted, token]), 3);
  assert.equal(goneCode([id, token]), 3);
  assert.equal(goneCode([older]), 3);
  assert.equal(goneCode([id, id]), 2);
  assert.equal(goneCode([id, deleted]), 2);
  assert.equal(goneCode([id, w({})]), undefined);
});

test("command (mod.ts): a workspace id the platform refuses as malformed (not a UUID) exits 2 naming where it came from", async () => {
  await using dir = await scratch("molecule-secrets-");
  await using platform = await startPlatformEmulator();
  const r = await runScript(MOD, {
    env: {
      PLATFORM_URL: platform.url,
      WORKSPACE_ID: "ws-not-a-uuid",
      MOLECULE_WORKSPACE_TOKEN: TOKEN,
      CONFIGS_DIR: dir.path,
    },
  });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /WORKSPACE_ID/);
  assertNoPiece(r.stderr, TOKEN, "our stderr");
});

test("docs/security.md names, for each promise, tests that exist", async () => {
  const doc = await readFile(
    new URL("../docs/security.md", import.meta.url),
    "utf8",
  );
  let file = "";
  let named = 0;
  for (const m of doc.matchAll(/`(?:([a-z_]+\.test\.ts): )?"([^"`]+)"`/g)) {
    file = m[1] ?? file;
    const source = await readFile(
      new URL(`./${file}`, import.meta.url),
      "utf8",
    );
    const name = m[2].replace("<adapter>", "${name}");
    assert.ok(source.includes(name), `${file} has no test "${m[2]}"`);
    named++;
  }
  assert.ok(named >= 20, `only ${named} tests named`);
});
