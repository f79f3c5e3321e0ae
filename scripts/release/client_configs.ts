/**
 * The MCP client configurations the docs show, taken out of the Markdown
 * between `<!-- client-config:begin NAME -->` and `<!-- client-config:end -->`,
 * read into one shape (the server's name, command, args, env) whatever the
 * client's format (JSON `mcpServers`, Codex's TOML `[mcp_servers.NAME]`).
 * Used by `scripts/real_clients.ts` and `tests/client_configs.test.ts`.
 *
 * @module
 */

/** One marked block: its name, the fence's language and its text. */
export interface ConfigBlock {
  /** The NAME after `client-config:begin`. */
  name: string;
  /** The code fence's language: `json` or `toml`. */
  lang: string;
  /** The text inside the fence. */
  text: string;
}

/** A configured stdio server, as every client format describes one. */
export interface ServerEntry {
  /** The server's name in the configuration (the key). */
  server: string;
  /** The command. */
  command: string;
  /** Its arguments. */
  args: string[];
  /** The `env` block. */
  env: Record<string, string>;
  /** The entry's other members, kept (such as `"type"` or a timeout). */
  extra: Record<string, unknown>;
}

const BLOCK =
  /<!-- client-config:begin ([a-z0-9-]+) -->\s*```([a-z]+)\n([\s\S]*?)```\s*<!-- client-config:end -->/g;

/**
 * The marked blocks of a Markdown text, in order.
 *
 * @throws {Error} When a begin marker has no well-formed block after it.
 */
export function configBlocks(markdown: string): ConfigBlock[] {
  const blocks = [...markdown.matchAll(BLOCK)].map((m) => ({
    name: m[1],
    lang: m[2],
    text: m[3],
  }));
  const begins = markdown.match(/<!-- client-config:begin /g)?.length ?? 0;
  if (begins !== blocks.length) {
    throw new Error(
      `${begins} client-config:begin markers but ${blocks.length} well-formed blocks (a begin marker, one fenced block, an end marker)`,
    );
  }
  return blocks;
}

/**
 * The one server a block configures.
 *
 * @throws {Error} When the block is not valid JSON/TOML, or does not
 *   configure exactly one stdio server with string command, args and env.
 */
export function serverEntry(block: ConfigBlock): ServerEntry {
  let servers: Record<string, unknown>;
  if (block.lang === "json") {
    const parsed = JSON.parse(block.text);
    servers = parsed?.mcpServers;
  } else if (block.lang === "toml") {
    servers = parseTomlSubset(block.text).mcp_servers as Record<
      string,
      unknown
    >;
  } else {
    throw new Error(
      `${block.name}: a \`${block.lang}\` block, want json or toml`,
    );
  }
  if (!servers || typeof servers !== "object") {
    throw new Error(`${block.name}: no mcpServers / [mcp_servers.NAME]`);
  }
  const names = Object.keys(servers);
  if (names.length !== 1) {
    throw new Error(`${block.name}: ${names.length} servers, want 1`);
  }
  const raw = servers[names[0]] as Record<string, unknown>;
  const { command, args, env, ...extra } = raw;
  const strings = (v: unknown) =>
    Array.isArray(v) && v.every((x) => typeof x === "string");
  if (typeof command !== "string" || !strings(args)) {
    throw new Error(`${block.name}: command must be a string, args strings`);
  }
  const envOk = env === undefined ||
    (typeof env === "object" && env !== null &&
      Object.values(env).every((v) => typeof v === "string"));
  if (!envOk) throw new Error(`${block.name}: env must map names to strings`);
  return {
    server: names[0],
    command,
    args: args as string[],
    env: { ...(env as Record<string, string> | undefined) },
    extra,
  };
}

/**
 * The entry as a JSON `mcpServers` file holds it (what the MCP Inspector's
 * and mcporter's `--config` read, and Claude, Cursor and Gemini CLI write).
 */
export function asMcpServersJson(entry: ServerEntry): string {
  return JSON.stringify(
    {
      mcpServers: {
        [entry.server]: {
          ...entry.extra,
          command: entry.command,
          args: entry.args,
          env: entry.env,
        },
      },
    },
    null,
    2,
  );
}

/**
 * The entry in Codex's `config.toml` form.
 */
export function asCodexToml(entry: ServerEntry): string {
  const lines = [
    `[mcp_servers.${entry.server}]`,
    `command = ${JSON.stringify(entry.command)}`,
    `args = ${JSON.stringify(entry.args)}`,
  ];
  for (const [key, value] of Object.entries(entry.extra)) {
    lines.push(`${key} = ${JSON.stringify(value)}`);
  }
  lines.push("", `[mcp_servers.${entry.server}.env]`);
  for (const [key, value] of Object.entries(entry.env)) {
    lines.push(`${key} = ${JSON.stringify(value)}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * The part of TOML a client configuration uses: `[dotted.table]` headers,
 * `key = value` with a basic string, a number, a boolean, an array of those
 * (on one line or several) or an inline table `{ K = "v", … }`; `#`
 * comments. Enough to read the Codex block; mcporter, which reads Codex's
 * real file with a full TOML parser, checks the rest.
 *
 * @throws {Error} On anything outside that subset.
 */
export function parseTomlSubset(text: string): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let table = root;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = stripComment(lines[i]).trim();
    if (!line) continue;
    const header = /^\[([A-Za-z0-9_.-]+)\]$/.exec(line);
    if (header) {
      table = root;
      for (const part of header[1].split(".")) {
        table = (table[part] ??= {}) as Record<string, unknown>;
      }
      continue;
    }
    // An array may go on over several lines.
    while (depth(line) > 0 && i + 1 < lines.length) {
      line += " " + stripComment(lines[++i]).trim();
    }
    const pair = /^([A-Za-z0-9_-]+)\s*=\s*(.+)$/.exec(line);
    if (!pair) throw new Error(`TOML line not understood: ${line}`);
    table[pair[1]] = tomlValue(pair[2]);
  }
  return root;
}

function stripComment(line: string): string {
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "\\" && inString) i++;
    else if (c === '"') inString = !inString;
    else if (c === "#" && !inString) return line.slice(0, i);
  }
  return line;
}

function depth(text: string): number {
  let d = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\\" && inString) i++;
    else if (c === '"') inString = !inString;
    else if (!inString && (c === "[" || c === "{")) d++;
    else if (!inString && (c === "]" || c === "}")) d--;
  }
  return d;
}

function tomlValue(raw: string): unknown {
  const text = raw.trim();
  if (text.startsWith("{")) {
    // An inline table: { A = "b", C = "d" } as JSON.
    const json = text.replace(
      /([{,]\s*)([A-Za-z0-9_-]+)\s*=/g,
      (_, lead, key) => `${lead}"${key}":`,
    );
    return JSON.parse(json);
  }
  // Basic strings, numbers, booleans and arrays of them are JSON as written
  // (a trailing comma in an array aside).
  return JSON.parse(text.replace(/,\s*\]/g, "]"));
}
