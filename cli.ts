/**
 * The `molecule-heartbeat` command. Run it (`deno run -A cli.ts`, the
 * installed command, a compiled binary) and it exits with the command's
 * code; import it to call {@link main} with arguments and an environment of
 * your own. Everything it does lives in `src/cli/`.
 *
 * @example Run the command's self-test in-process
 * ```ts ignore
 * import { main } from "@molecule/heartbeat/cli";
 * const code = await main({ args: ["--demo", "--once"] });
 * ```
 *
 * @module
 */
import { runAsMain } from "./src/cli/main.ts";

export { type CliContext, EXIT, main, runAsMain } from "./src/cli/main.ts";

if (import.meta.main) await runAsMain();
