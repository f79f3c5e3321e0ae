/**
 * The workspaces to serve and their tokens: `--workspace-id`,
 * `WORKSPACE_ID`, `MOLECULE_WORKSPACES`, a workspaces file, token files; a
 * configuration error names the variable, file or entry to fix, never the
 * token.
 *
 * @module
 */
import type { EnvReader } from "../shared/env.ts";
import { ConfigError } from "../shared/errors.ts";
import { isRecord } from "../shared/_json.ts";
import { rememberSecret } from "../shared/mask.ts";
import { isValidToken } from "../shared/token.ts";
import {
  isValidWorkspaceId,
  MAX_WORKSPACE_ID_LENGTH,
} from "../shared/workspace_id.ts";
import type { WorkspaceConfig } from "../schedule/types.ts";
import type { FileSystem } from "../storage/file_system.ts";
import {
  fileToken,
  type WatchedFile,
  watchFile,
} from "../storage/watched_file.ts";
import { type CliFlags, setting } from "./flags.ts";
import { log } from "./logging.ts";
import { permissionErrorMessage } from "./permissions.ts";
import { checkedPlatformUrl, missingPlatformUrl } from "./settings.ts";

/** A workspaces list's entry, as error messages show it. */
const ENTRY = '{"id": "...", "token": "..."}';

/** What a valid token is, for error messages (never the token itself). */
const TOKEN_RULE =
  "a token is 1 to 4096 visible ASCII characters, without spaces or line breaks (a second line or a stray quote is a common cause)";

/** Where the canvas issues tokens; named in every token error. */
export const TOKENS_HINT =
  "Generate a workspace token in the canvas → Tokens tab.";

/**
 * Workspace ids the command accepts: the Python runtime's check (the
 * platform's ids are lower-case UUIDs); anything else is almost certainly a
 * typo. The library itself takes any id without control characters.
 */
export const WORKSPACE_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,127}$/;

/** What {@link WORKSPACE_ID_PATTERN} means, for messages. */
const ID_RULE =
  "lower-case letters, digits and -, starting with a letter or digit, at most 128 characters (the platform's ids are lower-case UUIDs, such as 5f0c9a7e-…)";

/** One entry of a workspaces list. */
export interface WorkspaceEntry {
  id: string;
  token: string;
  /** The entry's own platform base URL, when it has one. */
  platformUrl?: string;
}

/**
 * Parses a `MOLECULE_WORKSPACES` JSON array: objects with non-empty string
 * `id` (a platform workspace id) and `token`, ids unique, each optionally
 * with its own `platform_url` (a string; blank means `PLATFORM_URL`).
 * Every error names the entry's index.
 *
 * @param text The JSON.
 * @param where The variable or file it came from, for messages.
 * @param warnings Where a plain-http `platform_url` is warned about.
 * @param ownUrlRequired Whether every entry needs its own `platform_url`
 *   (`PLATFORM_URL` is not set). @default {false}
 * @returns The entries, in order.
 * @throws {ConfigError} For invalid JSON, a non-array, an empty array, or a bad entry.
 */
export function parseWorkspacesJson(
  text: string,
  where: string,
  warnings: string[] = [],
  ownUrlRequired = false,
): WorkspaceEntry[] {
  const fail = (what: string) => new ConfigError(`${where} ${what}`, where);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // Its position only: `JSON.parse`'s message quotes the input, which may
    // hold a token.
    const { message } = error as SyntaxError;
    const at = /position (\d+)/.exec(message) ?? /column (\d+)/.exec(message);
    throw fail(
      `is not valid JSON (${
        at
          ? `a syntax error near character ${at[1]}`
          : "a syntax error (check commas, quotes and brackets)"
      }); expected [${ENTRY}, ...]`,
    );
  }
  if (!Array.isArray(value)) {
    throw fail(`must be a JSON array of ${ENTRY} objects`);
  }
  if (value.length === 0) {
    throw fail(`is an empty array: list at least one ${ENTRY}`);
  }
  const seen = new Map<string, number>();
  // Keys nothing reads: one warning (a typo of "platform_url" would
  // otherwise send that workspace to PLATFORM_URL without a word).
  const unread = new Map<string, number>();
  const entries = value.map((entry, index) => {
    if (!isRecord(entry)) {
      throw fail(`entry ${index} is not an object; expected ${ENTRY}`);
    }
    for (const key of Object.keys(entry)) {
      if (!KNOWN_KEYS.has(key) && !unread.has(key)) unread.set(key, index);
    }
    const { id, token, platform_url: platformUrl } = entry;
    if (typeof id !== "string" || !id.trim()) {
      throw fail(`entry ${index} has no "id" (a non-empty string)`);
    }
    const cleanId = id.trim();
    const named = `entry ${index} (id ${cleanId})`;
    if (typeof token !== "string" || !token.trim()) {
      throw fail(
        `${named} has no "token" (a non-empty string). ${TOKENS_HINT}`,
      );
    }
    if (!isValidWorkspaceId(cleanId)) {
      throw fail(
        `entry ${index} has an "id" with control characters or over ${MAX_WORKSPACE_ID_LENGTH} characters`,
      );
    }
    if (!WORKSPACE_ID_PATTERN.test(cleanId)) {
      throw fail(
        `entry ${index} has an "id" that is no workspace id (${cleanId}): ${ID_RULE}`,
      );
    }
    if (platformUrl != null && typeof platformUrl !== "string") {
      throw fail(`${named} has a "platform_url" that is not a string`);
    }
    const ownUrl = platformUrl?.trim()
      ? checkedPlatformUrl(
        platformUrl.trim(),
        `${where} ${named} "platform_url"`,
        warnings,
        where,
      )
      : undefined;
    if (ownUrlRequired && ownUrl === undefined) {
      throw missingPlatformUrl(
        `, or give ${where} ${named} its own "platform_url" (without PLATFORM_URL, every entry needs one)`,
      );
    }
    const cleanToken = token.trim();
    if (!isValidToken(cleanToken)) {
      throw fail(`${named} has a "token" that cannot be sent: ${TOKEN_RULE}`);
    }
    rememberSecret(cleanToken);
    const first = seen.get(cleanId);
    if (first !== undefined) {
      throw fail(`entry ${index} repeats id ${cleanId} of entry ${first}`);
    }
    seen.set(cleanId, index);
    return ownUrl === undefined
      ? { id: cleanId, token: cleanToken }
      : { id: cleanId, token: cleanToken, platformUrl: ownUrl };
  });
  if (unread.size > 0) {
    const keys = [...unread].slice(0, 3).map(([key, index]) =>
      `${JSON.stringify(key.slice(0, 40))} (entry ${index})`
    );
    warnings.push(
      `${where} has keys this command does not read: ${keys.join(", ")}${
        unread.size > 3 ? ` and ${unread.size - 3} more` : ""
      }; an entry reads "id", "token" and "platform_url" (a typo?)`,
    );
  }
  return entries;
}

/** The keys of a workspaces entry. */
const KNOWN_KEYS = new Set(["id", "token", "platform_url"]);

/**
 * A watched workspaces file's hooks, as {@link workspacesSetting} fills
 * them: set `listener` to hear of every new version of it (every entry as a
 * workspace), to add and remove workspaces; `watched` is set when the
 * workspaces come from such a file (they may grow from one to several).
 * `poll` looks at the file now (it is otherwise looked at when a token is
 * read from it, at most once a second): for a shard that serves none of it.
 */
export interface WorkspacesFileChanges {
  /** `changed`: the ids whose token or `platform_url` this version changed. */
  listener?: (
    workspaces: WorkspaceConfig[],
    changed: { token: Set<string>; url: Set<string> },
  ) => void;
  watched?: boolean;
  poll?: () => Promise<unknown>;
}

/** Everything needed to find the workspaces and their tokens. */
export interface WorkspaceSources {
  flags: CliFlags;
  env: EnvReader;
  fs: FileSystem;
  /** The resolved configs dir, for `.auth_token`. */
  configsDir: string;
  warnings: string[];
  /**
   * Set when `PLATFORM_URL` (or `--platform-url`) is not: then only a
   * workspaces list whose every entry has its own `platform_url` can be
   * served (the caller refuses any other source first).
   * @default {false}
   */
  noPlatformUrl?: boolean;
  /** With a workspaces file: its hooks, filled in. */
  changes?: WorkspacesFileChanges;
}

/**
 * Where the workspaces come from: a file's path, the JSON list, or one id
 * (`value`), and the flag or variable that set it (`where`); see
 * {@link workspacesSource}.
 */
export type WorkspacesSource =
  | { kind: "file" | "json" | "id"; value: string; where: string }
  | { kind: "none" };

/**
 * Where the workspaces come from, in precedence order: `--workspaces-file`,
 * `--workspace-id`, `MOLECULE_WORKSPACES_FILE`, `MOLECULE_WORKSPACES`,
 * `WORKSPACE_ID`. Only a list (`file`, `json`) has entries that can carry
 * their own `platform_url`.
 */
export function workspacesSource(
  flags: CliFlags,
  env: EnvReader,
): WorkspacesSource {
  const sources = [
    ["file", flags.workspacesFile, "--workspaces-file"],
    ["id", flags.workspaceId, "--workspace-id"],
    ["file", env("MOLECULE_WORKSPACES_FILE"), "MOLECULE_WORKSPACES_FILE"],
    ["json", env("MOLECULE_WORKSPACES"), "MOLECULE_WORKSPACES"],
    ["id", env("WORKSPACE_ID"), "WORKSPACE_ID"],
  ] as const;
  for (const [kind, raw, where] of sources) {
    const value = setting(raw);
    if (value !== undefined) return { kind, value, where };
  }
  return { kind: "none" };
}

/**
 * The workspaces to serve, from {@link workspacesSource}. A single
 * workspace's token comes from `--token-file`, `MOLECULE_WORKSPACE_TOKEN`,
 * `MOLECULE_WORKSPACE_TOKEN_FILE` or `<configs dir>/.auth_token`. Tokens in
 * files are re-read when the file changes.
 *
 * @throws {ConfigError} When there is no workspace or no token, or a file is unreadable or malformed.
 */
export async function workspacesSetting(
  src: WorkspaceSources,
): Promise<WorkspaceConfig[]> {
  const source = workspacesSource(src.flags, src.env);
  if (source.kind === "none") {
    throw new ConfigError(
      "no workspace to serve: set WORKSPACE_ID (or --workspace-id) and MOLECULE_WORKSPACE_TOKEN, " +
        `or MOLECULE_WORKSPACES / --workspaces-file for several. ${TOKENS_HINT}`,
      "WORKSPACE_ID",
    );
  }
  const { kind, value, where } = source;
  if (kind === "file") return await workspacesFromFile(value, where, src);
  if (kind === "json") {
    return parseWorkspacesJson(value, where, src.warnings, src.noPlatformUrl)
      .map((w, index) => ({
        ...w,
        idSource: `entry ${index} of ${where}`,
        tokenSource: where,
      }));
  }
  const fail = (what: string) => new ConfigError(`${where} ${what}`, where);
  if (!isValidWorkspaceId(value)) {
    throw fail(
      `must be a workspace id without control characters, at most ${MAX_WORKSPACE_ID_LENGTH} characters`,
    );
  }
  if (!WORKSPACE_ID_PATTERN.test(value)) {
    throw fail(`is no workspace id (${value}): ${ID_RULE}`);
  }
  return [{ id: value, idSource: where, ...await singleToken(value, src) }];
}

/** A workspace's token, and where it came from (for the revoked-token error). */
async function singleToken(
  id: string,
  src: WorkspaceSources,
) {
  const flagFile = setting(src.flags.tokenFile);
  const fromEnv = setting(src.env("MOLECULE_WORKSPACE_TOKEN"));
  if (flagFile === undefined && fromEnv !== undefined) {
    if (!isValidToken(fromEnv)) {
      throw new ConfigError(
        `MOLECULE_WORKSPACE_TOKEN cannot be sent as it is: ${TOKEN_RULE}. ${TOKENS_HINT}`,
        "MOLECULE_WORKSPACE_TOKEN",
      );
    }
    rememberSecret(fromEnv);
    return { token: fromEnv, tokenSource: "MOLECULE_WORKSPACE_TOKEN" };
  }
  // The Python runtime's order: the variable, then a file it names (no
  // fall-back past a file that is missing, unreadable, empty or malformed).
  const envFile = setting(src.env("MOLECULE_WORKSPACE_TOKEN_FILE"));
  const fallback = `${src.configsDir}/.auth_token`;
  const [path, where] = flagFile !== undefined
    ? [flagFile, "--token-file"]
    : envFile !== undefined
    ? [envFile, "MOLECULE_WORKSPACE_TOKEN_FILE"]
    : [fallback, fallback];
  if (
    where === fallback &&
    (await src.fs.stat(fallback).catch(() => undefined)) === undefined
  ) {
    throw new ConfigError(
      `no token for workspace ${id}: set MOLECULE_WORKSPACE_TOKEN (or MOLECULE_WORKSPACE_TOKEN_FILE to a file holding it), or put the token in ${fallback}, or pass --token-file. ${TOKENS_HINT}`,
      "MOLECULE_WORKSPACE_TOKEN",
    );
  }
  await warnIfShared(path, where, src);
  try {
    return {
      token: await fileToken(path, {
        fs: src.fs,
        maxBytes: 16 * 1024, // a token file
      }),
      tokenSource: `the token file ${path}${
        where === "MOLECULE_WORKSPACE_TOKEN_FILE" ? ` (${where})` : ""
      }`,
      tokenReread: true,
    };
  } catch (error) {
    const permission = permissionErrorMessage(error);
    if (permission) throw new ConfigError(permission, "--allow-read");
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(
      `cannot read the token from ${where} (${path}): ${reason}. ${TOKENS_HINT}`,
      where,
    );
  }
}

async function workspacesFromFile(
  path: string,
  where: string,
  src: WorkspaceSources,
): Promise<WorkspaceConfig[]> {
  await warnIfShared(path, where, src);
  let file: WatchedFile<Map<string, WorkspaceEntry>> | undefined;
  // Each entry's token is looked up in the file, re-read when it changes
  // (an id that left it keeps its last token). The listener hears which
  // ids' token or `platform_url` a new version changed.
  let previous: Map<string, WorkspaceEntry> | undefined;
  const said = new Set<string>();
  const served = (entries: Map<string, WorkspaceEntry>) =>
    [...entries.values()].map((entry, index): WorkspaceConfig => {
      const { id, platformUrl } = entry;
      let last = entry.token;
      return {
        id,
        idSource: `entry ${index} of the workspaces file ${path}`,
        tokenSource: `the workspaces file ${path}`,
        tokenReread: true,
        ...(platformUrl ? { platformUrl } : {}),
        token: async () => {
          last = (await file!.get()).get(id)?.token ?? last;
          return last;
        },
      };
    });
  try {
    // Parsed once per change into a map: a token is looked up before every
    // beat, and a scan of the list made a fleet of N cost N² (a profile at
    // 10,000 workspaces put it at a third of the CPU).
    file = await watchFile(
      path,
      (text) => {
        const warnings: string[] = [];
        const entries = new Map(
          parseWorkspacesJson(
            text,
            `${where} (${path})`,
            warnings,
            src.noPlatformUrl,
          ).map((e) => [e.id, e]),
        );
        // Each warning once (an unread key, plain http): at start with the
        // others, a new one in a later version as it is read.
        if (said.size > 1_000) said.clear();
        for (const warning of warnings) {
          if (said.has(warning)) continue;
          said.add(warning);
          if (file === undefined) src.warnings.push(warning);
          else log.warn(warning);
        }
        return entries;
      },
      {
        fs: src.fs,
        maxBytes: 64 * 1024 * 1024, // a workspaces file
        onChange: (entries) => {
          const changed = { token: new Set<string>(), url: new Set<string>() };
          for (const [id, was] of previous ?? []) {
            const now = entries.get(id);
            if (now && now.token !== was.token) changed.token.add(id);
            if (now && now.platformUrl !== was.platformUrl) changed.url.add(id);
          }
          previous = entries;
          src.changes?.listener?.(served(entries), changed);
        },
      },
    );
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const permission = permissionErrorMessage(error);
    if (permission) throw new ConfigError(permission, "--allow-read");
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`cannot read ${where} (${path}): ${reason}`, where);
  }
  const initial = previous = await file.get();
  if (src.changes) {
    src.changes.watched = true;
    src.changes.poll = () => file!.get();
  }
  return served(initial);
}

async function warnIfShared(
  path: string,
  where: string,
  src: WorkspaceSources,
) {
  const info = await src.fs.stat(path).catch(() => undefined);
  if (info && (info.mode & 0o077) !== 0) {
    src.warnings.push(
      `${where} (${path}) is readable by other users (mode ${
        info.mode.toString(8).padStart(4, "0")
      }): it holds tokens; chmod 600 it`,
    );
  }
}
