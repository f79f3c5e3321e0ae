/**
 * The command's `--help` text.
 *
 * @module
 */
import { VERSION } from "../shared/version.ts";

/** The usage text, with every flag, its variable and its default. */
export function helpText(): string {
  return `molecule-heartbeat ${VERSION}: keeps external Molecule workspaces alive.
Registers each workspace with the platform, then heartbeats it every 20 s
(the platform marks a workspace OFFLINE after 180 s of silence, its stale
window), keeps the token a register issues, and notices a paused or deleted
workspace.

Usage:
  deno run -A jsr:@molecule/heartbeat [flags]
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

Flags (a flag beats its variable):
  --platform-url URL       PLATFORM_URL                  platform base URL (required, unless
                                                         every workspaces entry has its own
                                                         "platform_url")
  --workspace-id ID        WORKSPACE_ID                  the workspace to serve
  (no flag: argv is public) MOLECULE_WORKSPACE_TOKEN     its token
  --token-file PATH        MOLECULE_WORKSPACE_TOKEN_FILE read the token from PATH (the flag
                                                         first; the variable after
                                                         MOLECULE_WORKSPACE_TOKEN; default
                                                         <configs dir>/.auth_token)
  --workspaces-file PATH   MOLECULE_WORKSPACES_FILE      several workspaces: a JSON array
                                                         [{"id": "...", "token": "..."}, ...]
                                                         (an entry may add "platform_url")
  (no flag)                MOLECULE_WORKSPACES           the same JSON array, inline;
                                                         wins over WORKSPACE_ID
  --configs-dir DIR        CONFIGS_DIR                   where .platform_inbound_secret and
                                                         .auth_token live, and a token the
                                                         platform issues is stored (default
                                                         /configs if writable, else
                                                         ~/.molecule-workspace)
  --interval SECONDS       MOLECULE_HEARTBEAT_INTERVAL   seconds between beats (default 20;
                                                         fractions allowed; at most 3600)
  --log-format FORMAT      MOLECULE_LOG_FORMAT           text (default) or json (one object
                                                         a line); logs go to stderr only
  --verbose, -v            MOLECULE_MCP_VERBOSE          info-level logs (default: warnings
                                                         and errors)
  --health-port PORT       MOLECULE_HEALTH_PORT          serve GET /healthz (liveness), /readyz
                                                         (readiness), /metrics (Prometheus)
                                                         and /status
  --health-host HOST       MOLECULE_HEALTH_HOST          health address (default 127.0.0.1;
                                                         off loopback, /status needs
                                                         MOLECULE_HEALTH_TOKEN as a bearer)
  --kill-after SECONDS                                   with -- COMMAND: time from a signal to
                                                         the child's group to SIGKILL for it
                                                         (default 10)
  --org-id ID              MOLECULE_ORG_ID               send X-Molecule-Org-Id: ID on
                           (or MOLECULE_ORGANIZATION_ID) /workspaces/... requests (multi-tenant
                                                         platforms; never on /registry/*)
  --max-in-flight N        MOLECULE_MAX_IN_FLIGHT        requests in flight at most (default: from
                                                         the open-files limit, 16 to 1024), plus up
                                                         to 8 registers; a beat that finds it full
                                                         waits for a free slot
  --wedged-after SECONDS   MOLECULE_WEDGED_AFTER         with -- COMMAND: a tool call unanswered
                                                         this long (or a server silent this long
                                                         with calls pending) makes beats say
                                                         runtime_state "wedged" (default 300;
                                                         0 turns it off)
  --state-poll N                                         ask the platform for each workspace's
                                                         state every N beats, to notice a pause
                                                         or a deletion (default 15; 0: only
                                                         after a refused token)
  --stale-window SECONDS   MOLECULE_STALE_WINDOW         the platform's stale window (default
                                                         180): after a gap longer than it, a
                                                         workspace registers again; readiness
                                                         follows it
  --once                                                 register and send one beat per
                                                         workspace, then exit (not with --)
  --demo                                                 run against a platform emulator
                                                         started in-process (no setup needed)
  --help, -h                                             this text
  --version, -V                                          the version

Agent card: MOLECULE_AGENT_NAME (default molecule-mcp-<first 8 chars of id>),
MOLECULE_AGENT_DESCRIPTION, MOLECULE_AGENT_SKILLS (comma-separated).

Tokens: generate a workspace token in the canvas → Tokens tab. A token is 1
to 4096 visible ASCII characters. Token files (and the workspaces file) are
re-read when they change. Only regular files are read, and at most: a token
file 16 KiB, the workspaces file 64 MiB, a stored secret 8 KiB.

Exit codes: 0 stopped by SIGINT/SIGTERM or --once accepted; 1 --once not
accepted; 2 configuration or usage error; 3 token rejected at register (with
several workspaces: only when every one is rejected; with -- COMMAND the
child is stopped first); 4 the workspace was deleted on the platform (with
several: when every one is gone). With -- COMMAND: the child's exit code, 128 + N when
signal N killed it, 127 when the command is not found, 126 when it cannot be
executed.
`;
}
