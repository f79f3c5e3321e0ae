/**
 * The agent card sent at register.
 *
 * @module
 */
import { processEnv } from "../shared/env.ts";

/** One skill on an agent card; the canvas and peers read `name`. */
export interface AgentSkill {
  /** The skill's label. */
  name: string;
}

/** The `agent_card` of a register request. */
export interface AgentCard {
  /** Display name, shown on the canvas and to peers. */
  name: string;
  /** Skills, possibly none. */
  skills: AgentSkill[];
  /** One line about the agent; absent when unset. */
  description?: string;
  /** Any further card fields the platform accepts. */
  [key: string]: unknown;
}

/**
 * Builds the agent card exactly as the reference does, from
 * `MOLECULE_AGENT_NAME` (default `molecule-mcp-<first 8 chars of id>`),
 * `MOLECULE_AGENT_DESCRIPTION` (key absent when unset) and
 * `MOLECULE_AGENT_SKILLS` (comma-separated; blank labels dropped).
 * Whitespace-only values count as unset.
 *
 * @example
 * ```ts
 * import { buildAgentCard } from "@molecule/heartbeat/platform";
 * const vars: Record<string, string> = { MOLECULE_AGENT_SKILLS: "research, code-review,," };
 * const card = buildAgentCard("0123456789abcdef", (name) => vars[name]);
 * // { name: "molecule-mcp-01234567", skills: [{ name: "research" }, { name: "code-review" }] }
 * ```
 *
 * @param workspaceId The workspace the card describes.
 * @param env Reads one variable (`undefined` when unset); default the
 *   process environment.
 * @returns The card.
 */
export function buildAgentCard(
  workspaceId: string,
  env: (name: string) => string | undefined = processEnv,
): AgentCard {
  const name = (env("MOLECULE_AGENT_NAME") ?? "").trim() ||
    `molecule-mcp-${Array.from(workspaceId).slice(0, 8).join("")}`;
  const description = (env("MOLECULE_AGENT_DESCRIPTION") ?? "").trim();
  const skills = (env("MOLECULE_AGENT_SKILLS") ?? "")
    .split(",")
    .map((label) => label.trim())
    .filter((label) => label !== "")
    .map((label) => ({ name: label }));
  const card: AgentCard = { name, skills };
  if (description) card.description = description;
  return card;
}
