/**
 * The command's configs dir (`--configs-dir`, `CONFIGS_DIR`, `/configs`,
 * `~/.molecule-workspace`), with a warning for each way it falls short.
 *
 * @module
 */
import type { EnvReader } from "../shared/env.ts";
import { resolveConfigsDir } from "../storage/configs_dir.ts";
import type { FileSystem } from "../storage/file_system.ts";
import type { CliFlags } from "./flags.ts";
import { workingDir } from "./host.ts";
import { setting } from "./settings.ts";

/**
 * Resolves the configs dir; a dir that is relative (no HOME), writable by
 * others, or cannot be created is a warning, never an error: heartbeats go
 * on, and the inbound secret is stored once it can be.
 */
export async function configsDirSetting(
  flags: CliFlags,
  env: EnvReader,
  fs: FileSystem,
  warnings: string[],
): Promise<string> {
  const configsEnv: EnvReader = setting(flags.configsDir) === undefined
    ? env
    : (name) => name === "CONFIGS_DIR" ? flags.configsDir : env(name);
  const configs = await resolveConfigsDir({ env: configsEnv, fs });
  if (!configs.path.startsWith("/")) {
    warnings.push(
      `HOME is not set and /configs is not writable: the inbound secret goes to ${
        workingDir().replace(/\/$/, "")
      }/${configs.path} (set CONFIGS_DIR to choose)`,
    );
  }
  const dirInfo = await fs.stat(configs.path).catch(() => undefined);
  if (dirInfo && (dirInfo.mode & 0o022) !== 0) {
    warnings.push(
      `the configs dir ${configs.path} is writable by other users (mode ${
        dirInfo.mode.toString(8).padStart(4, "0")
      }): they could replace the inbound secret; chmod 700 it`,
    );
  }
  if (configs.problem) {
    warnings.push(
      `the configs dir ${configs.path} cannot be created or written (${configs.problem}); ` +
        "heartbeats go on, and the inbound secret is stored once it can be",
    );
  }
  return configs.path;
}
