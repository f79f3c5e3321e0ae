import { configure, type LogRecord, reset } from "@logtape/logtape";

/** Captures this library's log records at every level while `fn` runs. */
export async function captureLogs<T>(
  fn: (records: LogRecord[]) => Promise<T>,
): Promise<T> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      {
        category: ["molecule", "heartbeat"],
        lowestLevel: "trace",
        sinks: ["memory"],
      },
      { category: ["logtape", "meta"], lowestLevel: "fatal", sinks: [] },
    ],
  });
  try {
    return await fn(records);
  } finally {
    await reset();
  }
}

/** A record's message with its values filled in. */
export function text(record: LogRecord): string {
  return record.message.map((part) =>
    typeof part === "string" ? part : String(part)
  ).join("");
}

/** Every record's level and text, joined, for assertions on what an operator reads. */
export function levelsAndTexts(records: LogRecord[]): string[] {
  return records.map((r) => `${r.level}: ${text(r)}`);
}
