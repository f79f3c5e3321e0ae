/**
 * `--wedged-after SECONDS` / `MOLECULE_WEDGED_AFTER`: how long an
 * unanswered tool call (or a silent server with calls pending) may last
 * before wrapper mode's beats say `runtime_state: "wedged"`.
 *
 * @module
 */
import type { EnvReader } from "../shared/env.ts";
import { ConfigError } from "../shared/errors.ts";
import type { CliFlags } from "./flags.ts";
import { flagOrEnv } from "./settings.ts";

/** The default threshold, in seconds: five minutes. */
export const WEDGED_AFTER_SECONDS = 300;

/**
 * The wedge threshold in ms, from `--wedged-after` or `MOLECULE_WEDGED_AFTER`
 * (seconds, fractions allowed, default 300; 0 turns it off).
 *
 * @param flags The parsed flags.
 * @param env The environment.
 * @returns Milliseconds; 0 when off.
 * @throws {ConfigError} When not a number of seconds from 0 to 86400.
 */
export function wedgedAfterSetting(flags: CliFlags, env: EnvReader): number {
  const { raw, where } = flagOrEnv(
    flags.wedgedAfter,
    "--wedged-after",
    env,
    "MOLECULE_WEDGED_AFTER",
  );
  if (raw === undefined) return WEDGED_AFTER_SECONDS * 1000;
  const seconds = /^(\d+\.?\d*|\.\d+)$/.test(raw) ? Number(raw) : NaN;
  if (!(seconds >= 0 && seconds <= 86_400)) {
    throw new ConfigError(
      `${where} must be a number of seconds from 0 (off) to 86400, not "${raw}"`,
      where,
    );
  }
  return Math.round(seconds * 1000);
}
