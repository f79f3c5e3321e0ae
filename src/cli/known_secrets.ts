/**
 * Every secret the command can know at start is known to masking before
 * the first request: the ones in our environment (before anything is
 * parsed, so that a configuration error cannot echo them), and the ones
 * stored in the configs dir (inbound secrets and issued tokens of every
 * workspace there), which the platform may quote in an error body before
 * it sends them again.
 *
 * @module
 */
import type { EnvReader } from "../shared/env.ts";
import { rememberSecret } from "../shared/mask.ts";
import type { FileSystem } from "../storage/file_system.ts";
import {
  MAX_TOKEN_STORE_FILE_BYTES,
  SECRET_FILE_NAME,
  TOKEN_FILE_NAME,
} from "../storage/file_secret_store.ts";
import { isValidSecret } from "../storage/secret_store.ts";

/**
 * Remembers, for masking, the secrets our environment holds, as they are
 * and trimmed, valid or not: `MOLECULE_WORKSPACE_TOKEN`,
 * `MOLECULE_HEALTH_TOKEN`, and each `token` of `MOLECULE_WORKSPACES` when
 * it parses. Called first, before any setting is read.
 *
 * @example
 * ```ts
 * import { envFromRecord } from "../shared/env.ts";
 * import { maskSecrets } from "../shared/mask.ts";
 * import { rememberEnvironmentSecrets } from "./known_secrets.ts";
 * rememberEnvironmentSecrets(envFromRecord({ MOLECULE_WORKSPACE_TOKEN: "tok-0123456789" }));
 * maskSecrets("WORKSPACE_ID tok-0123456789"); // "WORKSPACE_ID [redacted]"
 * ```
 *
 * @param env The environment.
 * @returns The values remembered.
 */
export function rememberEnvironmentSecrets(env: EnvReader): string[] {
  const values: string[] = [];
  const add = (value: unknown) => {
    if (typeof value !== "string") return;
    for (const v of new Set([value, value.trim()])) {
      if (!v) continue;
      rememberSecret(v);
      values.push(v);
    }
  };
  add(env("MOLECULE_WORKSPACE_TOKEN"));
  add(env("MOLECULE_HEALTH_TOKEN"));
  const list = env("MOLECULE_WORKSPACES");
  if (list?.trim()) {
    try {
      const entries: unknown = JSON.parse(list);
      if (Array.isArray(entries)) {
        for (const entry of entries) {
          add((entry as { token?: unknown } | null)?.token);
        }
      }
    } catch {
      // its own error says what is wrong, without quoting it
    }
  }
  return values;
}

/**
 * Reads every stored inbound secret and issued token in the configs dir
 * (each workspace's, served now or not; temporary files aside) and
 * remembers each for masking. Files that cannot be read are skipped (the
 * stores say so when they need them).
 *
 * @example
 * ```ts
 * import { defaultFileSystem } from "../storage/default_file_system.ts";
 * import { rememberStoredSecrets } from "./known_secrets.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/.platform_inbound_secret`, "s3cr3t-stored");
 * console.log(await rememberStoredSecrets(await defaultFileSystem(), dir)); // ["s3cr3t-stored"]
 * ```
 *
 * @param fs File operations.
 * @param dir The configs dir.
 * @returns The values remembered.
 */
export async function rememberStoredSecrets(
  fs: FileSystem,
  dir: string,
): Promise<string[]> {
  if (!fs.list) return [];
  const names = await fs.list(dir).catch(() => [] as string[]);
  const paths = names
    // `.platform_inbound_secret[.<id>]`, `.auth_token[.<id>]`; not a
    // temporary file.
    .filter((name) =>
      !name.endsWith(".tmp") &&
      [SECRET_FILE_NAME, TOKEN_FILE_NAME].some((base) =>
        name === base ||
        (name.startsWith(`${base}.`) && name.length > base.length + 1)
      )
    )
    .map((name) => `${dir.replace(/(.)\/+$/, "$1")}/${name}`);
  const values: string[] = [];
  // At most 32 files read at once.
  for (let i = 0; i < paths.length; i += 32) {
    await Promise.all(
      paths.slice(i, i + 32).map(async (path) => {
        const text = await fs.readText(path, {
          maxBytes: MAX_TOKEN_STORE_FILE_BYTES,
        }).catch(() => undefined);
        const value = text?.trim();
        if (!value || !isValidSecret(value)) return;
        rememberSecret(value);
        values.push(value);
      }),
    );
  }
  return values;
}
