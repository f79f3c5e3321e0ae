/**
 * The command's log output: LogTape records as text or JSON lines on stderr
 * (stdout may be an MCP stdio channel and stays empty).
 *
 * @module
 */
import { configure, getLogger, type LogRecord } from "@logtape/logtape";
import { LOG_CATEGORY } from "../shared/constants.ts";
import { maskSecrets } from "../shared/mask.ts";
import { writeText } from "./host.ts";

/** The command's own logger (its lines' category ends in `cli`). */
export const log = getLogger([...LOG_CATEGORY, "cli"]);

function render(value: unknown): string {
  if (value instanceof Error) return value.message;
  if (typeof value === "string") return value;
  try {
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  } catch {
    return String(value);
  }
}

/** An object property, masked as text, and parsed back when it still parses. */
function maskedObject(value: object): unknown {
  const text = maskSecrets(render(value));
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * A record as the command writes it, the last stop of every log line, where
 * no remembered token or secret passes: text (time, level, message), or one
 * JSON object (time, level, category, message, then the record's
 * properties, each string masked before it is escaped into JSON).
 */
export function formatLine(
  record: LogRecord,
  format: "text" | "json",
): string {
  const time = new Date(record.timestamp).toISOString();
  const message = record.message.map((part, i) =>
    i % 2 === 0 ? String(part) : render(part)
  ).join("");
  if (format === "text") {
    return maskSecrets(
      `${time} ${
        record.level === "warning" ? "WARN" : record.level.toUpperCase()
      } ${message}`,
    );
  }
  const props: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record.properties)) {
    const value = v instanceof Error ? v.message : v;
    props[k] = typeof value === "string"
      ? maskSecrets(value)
      : typeof value === "object" && value !== null
      ? maskedObject(value)
      : value;
  }
  return JSON.stringify({
    ...props,
    time,
    level: record.level,
    category: record.category.join("."),
    message: maskSecrets(message),
  });
}

/**
 * Sends the library's (and the command's) records to `write`: warnings and
 * errors, or from info up when verbose.
 */
export async function configureLogging(
  settings: { format: "text" | "json"; verbose: boolean },
  write: (line: string) => void,
): Promise<void> {
  await configure({
    reset: true,
    sinks: {
      stderr: (record: LogRecord) => write(formatLine(record, settings.format)),
    },
    loggers: [
      {
        category: [...LOG_CATEGORY],
        lowestLevel: settings.verbose ? "info" : "warning",
        sinks: ["stderr"],
      },
      {
        category: ["logtape", "meta"],
        lowestLevel: "warning",
        sinks: ["stderr"],
      },
    ],
  });
}

/**
 * Writes an error before (or without) LogTape, in the chosen format: the
 * exit-2 line of a configuration error, which may quote what was typed, so
 * a word that looks like a token is masked too (a secret pasted into the
 * wrong setting), beside every secret known.
 */
export function printError(
  message: string,
  format: "text" | "json" = "text",
): void {
  message = maskSecrets(message, { tokenLike: true });
  writeText(
    "stderr",
    format === "json"
      ? `${
        JSON.stringify({
          time: new Date().toISOString(),
          level: "error",
          category: LOG_CATEGORY.join("."),
          message,
        })
      }\n`
      : `molecule-heartbeat: error: ${message}\n`,
  );
}
