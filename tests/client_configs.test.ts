// The MCP client configurations the docs show (docs/wrapper.md, and
// README.md when it has any): each block reads as its client reads it and
// starts the wrapper the right way. CI runs them through real clients
// (scripts/real_clients.ts); this catches a broken block at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import {
  asCodexToml,
  configBlocks,
  parseTomlSubset,
  serverEntry,
} from "../scripts/release/client_configs.ts";
import { parseFlags } from "../src/cli/flags.ts";

const read = (file: string) =>
  readFile(new URL(`../${file}`, import.meta.url), "utf8").catch(() => "");

test("docs/wrapper.md: a block per client, each one stdio server: deno run -A --no-config jsr:@molecule/heartbeat [flags] -- COMMAND, with PLATFORM_URL, WORKSPACE_ID and the token in env", async () => {
  const docs = configBlocks(await read("docs/wrapper.md"));
  const all = [...docs, ...configBlocks(await read("README.md"))];
  assert.deepEqual(
    docs.map((b) => b.name).sort(),
    [
      "claude-code",
      "claude-desktop",
      "codex",
      "cursor",
      "gemini-cli",
      "token-file",
    ],
  );
  const shapes = new Set<string>();
  for (const block of all) {
    const entry = serverEntry(block);
    assert.equal(entry.command, "deno", block.name);
    const at = entry.args.indexOf("jsr:@molecule/heartbeat");
    // --no-config: MCP clients start it in a project's folder, where a
    // package.json would make Deno look for LogTape in its node_modules.
    assert.deepEqual(
      entry.args.slice(0, 3),
      ["run", "-A", "--no-config"],
      block.name,
    );
    assert.equal(at, 3, block.name);
    const dashes = entry.args.indexOf("--");
    assert.ok(dashes > at + 0, `${block.name}: no -- before the server`);
    assert.ok(entry.args.length > dashes + 1, `${block.name}: no server`);
    assert.ok(entry.env.PLATFORM_URL?.startsWith("https://"), block.name);
    assert.match(entry.env.WORKSPACE_ID, /^[a-z0-9][a-z0-9-]{0,127}$/);
    if (block.name === "token-file") {
      assert.equal(entry.env.MOLECULE_WORKSPACE_TOKEN, undefined);
      const file = entry.args[entry.args.indexOf("--token-file") + 1];
      assert.ok(file?.startsWith("/"), "the token file by its full path");
      assert.ok(entry.args.indexOf("--token-file") < dashes);
    } else {
      assert.ok(entry.env.MOLECULE_WORKSPACE_TOKEN, block.name);
      if (docs.includes(block)) {
        shapes.add(JSON.stringify([entry.server, entry.args, entry.env]));
      }
    }
    assert.ok(
      !/:9\b/.test(block.text),
      `${block.name}: port 9 (Deno refuses it)`,
    );
  }
  assert.equal(
    shapes.size,
    1,
    "every client block of docs/wrapper.md starts the same thing",
  );
});

test("the TOML subset: tables, strings, arrays over several lines, inline tables, comments; the Codex form round-trips", () => {
  const parsed = parseTomlSubset(`
# a comment
[mcp_servers.my-tools]
command = "deno" # trailing
args = [
  "run", "-A", "a#b",
  "x\\"y",
]
startup_timeout_sec = 60
env = { A = "1", B = "two words" }
`);
  assert.deepEqual(parsed, {
    mcp_servers: {
      "my-tools": {
        command: "deno",
        args: ["run", "-A", "a#b", 'x"y'],
        startup_timeout_sec: 60,
        env: { A: "1", B: "two words" },
      },
    },
  });
  const entry = serverEntry({
    name: "codex",
    lang: "toml",
    text: asCodexToml({
      server: "s",
      command: "deno",
      args: ["run", "--", "x"],
      env: { K: "v" },
      extra: { startup_timeout_sec: 60 },
    }),
  });
  assert.deepEqual(entry, {
    server: "s",
    command: "deno",
    args: ["run", "--", "x"],
    env: { K: "v" },
    extra: { startup_timeout_sec: 60 },
  });
  assert.throws(() => parseTomlSubset("what is this"), /not understood/);
});

test("docs/wrapper.md quotes the -- pitfall's error as the command prints it", async () => {
  const docs = await read("docs/wrapper.md");
  const quoted =
    /```text\n(molecule-heartbeat: error: unexpected argument[^\n]*)\n```/
      .exec(docs)?.[1];
  assert.ok(quoted, "the error line in a text block");
  assert.throws(
    () => parseFlags(["npx", "-y", "@modelcontextprotocol/server-everything"]),
    (error: Error) => `molecule-heartbeat: error: ${error.message}` === quoted,
  );
});
