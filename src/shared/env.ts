/**
 * Runtime-agnostic access to environment variables.
 *
 * @module
 */

/**
 * Reads one environment variable; `undefined` when unset.
 *
 * @example An environment from a plain object, for tests
 * ```ts
 * import type { EnvReader } from "./env.ts";
 * const env: EnvReader = (name) => ({ WORKSPACE_ID: "ws-1" } as Record<string, string>)[name];
 * ```
 */
export type EnvReader = (name: string) => string | undefined;

/**
 * Reads the process environment on Deno, Node, Bun and other runtimes; an
 * environment it may not read (Deno without `--allow-env`) reads as empty.
 *
 * @example
 * ```ts
 * import { processEnv } from "./env.ts";
 * const url = processEnv("PLATFORM_URL");
 * ```
 *
 * @param name The variable's name.
 * @returns Its value, or `undefined`.
 */
export function processEnv(name: string): string | undefined {
  const g = globalThis as {
    Deno?: { env: { get(name: string): string | undefined } };
    process?: { env: Record<string, string | undefined> };
  };
  try {
    if (g.Deno) return g.Deno.env.get(name);
    return g.process?.env[name];
  } catch {
    return undefined;
  }
}

/**
 * Turns a plain object into an {@link EnvReader}.
 *
 * @example
 * ```ts
 * import { envFromRecord } from "./env.ts";
 * const env = envFromRecord({ MOLECULE_AGENT_NAME: "scout" });
 * console.log(env("MOLECULE_AGENT_NAME")); // "scout"
 * ```
 *
 * @param record Variable names to values.
 * @returns A reader over the record.
 */
export function envFromRecord(
  record: Readonly<Record<string, string | undefined>>,
): EnvReader {
  return (name) => Object.hasOwn(record, name) ? record[name] : undefined;
}
