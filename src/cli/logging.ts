/**
 * The command's log output: LogTape records as text or JSON lines on stderr
 * (stdout may be an MCP stdio channel and stays empty).
 *
 * @module
 */
import { configure, type LogRecord } from "@logtape/logtape";
import { LOG_CATEGORY } from "../shared/constants.ts";
import { maskSecrets } from "../shared/mask.ts";
import { writeStderrText } from "./host.ts";
import type { LogSettings } from "./settings.ts";

/** Writes one line to stderr. */
export function writeStderr(line: string): void {
  writeStderrText(line.endsWith("\n") ? line : `${line}\n`);
}

function render(value: unknown): string {
  if (value instanceof Error) return value.message;
  if (typeof value === "string") return value;
  try {
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  } catch {
    return String(value);
  }
}

/** A record's message with its values filled in. */
export function messageText(record: LogRecord): string {
  return record.message.map((part, i) =>
    i % 2 === 0 ? String(part) : render(part)
  ).join("");
}

const LEVELS: Record<string, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "FATAL",
};

/** One line of text: time, level, message. */
export function textLine(record: LogRecord): string {
  return `${new Date(record.timestamp).toISOString()} ${
    LEVELS[record.level] ?? record.level
  } ${messageText(record)}`;
}

function maskedObject(value: object, mask: (text: string) => string): unknown {
  const text = mask(render(value));
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * One JSON object: time, level, category, message, then the record's
 * properties, each string masked before it is escaped into JSON.
 */
export function jsonLine(
  record: LogRecord,
  mask: (text: string) => string = (text) => text,
): string {
  const props: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record.properties)) {
    const value = v instanceof Error ? v.message : v;
    props[k] = typeof value === "string"
      ? mask(value)
      : typeof value === "object" && value !== null
      ? maskedObject(value, mask)
      : value;
  }
  return JSON.stringify({
    ...props,
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    category: record.category.join("."),
    message: mask(messageText(record)),
  });
}

/**
 * A record as the command writes it: the last stop of every log line, where
 * no remembered token or secret passes.
 */
export function formatLine(
  record: LogRecord,
  format: "text" | "json",
): string {
  return format === "json"
    ? jsonLine(record, maskSecrets)
    : maskSecrets(textLine(record));
}

/**
 * Sends the library's (and the command's) records to stderr: warnings and
 * errors, or from info up when verbose (debug too with `debug`).
 */
export async function configureLogging(
  settings: LogSettings & { debug?: boolean },
  write: (line: string) => void = writeStderr,
): Promise<void> {
  const format = (record: LogRecord) => formatLine(record, settings.format);
  await configure({
    reset: true,
    sinks: { stderr: (record: LogRecord) => write(format(record)) },
    loggers: [
      {
        category: [...LOG_CATEGORY],
        lowestLevel: settings.debug
          ? "debug"
          : settings.verbose
          ? "info"
          : "warning",
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
  if (format === "json") {
    writeStderr(JSON.stringify({
      time: new Date().toISOString(),
      level: "error",
      category: LOG_CATEGORY.join("."),
      message,
    }));
  } else {
    writeStderr(`molecule-heartbeat: error: ${message}`);
  }
}
