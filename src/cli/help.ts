/**
 * The command's `--help` text.
 *
 * @module
 */
import { VERSION } from "../shared/version.ts";
import { type Entry, FLAGS } from "./flags.ts";

/** The usage text, with every flag and variable of {@link FLAGS}. */
export function helpText(): string {
  return `molecule-heartbeat ${VERSION}: keeps external Molecule workspaces alive.
Registers each workspace with the platform, then heartbeats it every 20 s
(the platform marks a workspace OFFLINE after 180 s of silence, its stale
window), keeps the token a register issues, and notices a paused or deleted
workspace.

Usage:
  deno run -A --no-config jsr:@molecule/heartbeat [flags]
  molecule-heartbeat [flags]
  molecule-heartbeat [flags] -- COMMAND [ARGS...]

With -- COMMAND, the command (an MCP stdio server, or any long-running
agent) runs as a child in a process group of its own: stdin, stdout and
stderr are relayed byte for byte, SIGINT/SIGTERM/SIGHUP go to its whole
group, and the exit code is the child's (128 + N for signal N). When it
exits, whatever it left running in its group is stopped too. Heartbeats
carry its live work (tool calls under way, error rate, and
runtime_state "wedged" when a tool call goes unanswered).
Our flags come before --, the command after it.

Flags and variables (a flag beats its variable; a blank variable is unset):
${flagList()}

Tokens: generate a workspace token in the canvas → Tokens tab. A token is 1
to 4096 visible ASCII characters. Token files (and the workspaces file) are
re-read when they change. Only regular files are read, and at most: a token
file 16 KiB, the workspaces file 64 MiB, a stored secret 8 KiB.

Exit codes: 0 stopped by SIGINT/SIGTERM or --once accepted; 1 --once not
accepted; 2 configuration or usage error (also: the platform refuses every
workspace id as malformed); 3 token rejected at register (with several
workspaces: only when every one is rejected; with -- COMMAND the child is
stopped first); 4 the workspace was deleted on the platform (with several:
when every one is gone). With -- COMMAND: the child's exit code, 128 + N
when signal N killed it, 127 when the command is not found, 126 when it
cannot be executed.
`;
}

/** Each entry of {@link FLAGS}: its flag and variables, then what it does. */
function flagList(): string {
  return (Object.values(FLAGS) as Entry[]).map((entry) => {
    const flag = entry.short ? `${entry.flag}, -${entry.short}` : entry.flag;
    const variables = [entry.env ?? []].flat().join(" or ");
    const names = flag && variables
      ? `${flag} (${variables})`
      : flag ?? variables;
    // Wrapped at 72 characters, between words.
    return `  ${names}\n${entry.help.replace(/(.{1,72})( |$)/g, "      $1\n")}`
      .trimEnd();
  }).join("\n");
}
