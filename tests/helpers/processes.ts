import { readFileSync } from "node:fs";
import process from "node:process";

/** Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session. */
function stat(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "latin1");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` still runs. A zombie does not: it is dead, only not yet
 * collected (this machine's PID 1 does not reap orphans). Without /proc,
 * whether a signal 0 reaches it.
 */
export function running(pid: number): boolean {
  const fields = stat(pid);
  if (fields) return fields[0] !== "Z" && fields[0] !== "X";
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The process group and session of `pid` (Linux only). */
export function groupOf(pid: number): { pgrp: number; session: number } {
  const fields = stat(pid);
  if (!fields) throw new Error(`no /proc/${pid}/stat`);
  return { pgrp: Number(fields[2]), session: Number(fields[3]) };
}

/** The pids a marker file lists on its `pid N` lines. */
export function pidsIn(lines: string[]): number[] {
  return lines.filter((l) => l.startsWith("pid ")).map((l) =>
    Number(l.slice(4))
  );
}
