/**
 * The wrapped child's process group: signals to all of it, and whether any
 * of it still runs. The child is spawned as the leader of a group (and
 * session) of its own, so its group id is its pid, and whatever it starts
 * (a launcher's real server: `bash run.sh` → `python server.py`, `npx` →
 * `node`) is in that group unless it moves itself out.
 *
 * @module
 */
import { kill, readDirNamesSync, readTextSync } from "./host.ts";

/**
 * Sends `signal` to every process in group `pgid`. A group already empty is
 * no error.
 *
 * @param pgid The group id (the child's pid).
 * @param signal Such as `"SIGTERM"`.
 * @returns Whether the signal was delivered to at least one process.
 */
export function signalGroup(pgid: number, signal: string): boolean {
  if (!(pgid > 1)) return false; // never -1 (every process) or our own group (0)
  try {
    kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: nobody left; EPERM: not ours to signal
  }
}

/**
 * The processes of group `pgid` that still run. A zombie (dead, waiting for
 * its parent to collect it) does not count: it runs nothing, and where PID
 * 1 does not reap orphans (some containers) it would count forever. On
 * Linux this reads `/proc`; elsewhere it can only tell whether the group
 * has any member at all (then it answers `[pgid]`).
 *
 * @param pgid The group id.
 * @returns Pids still running in the group; empty when none.
 */
export function liveGroupMembers(pgid: number): number[] {
  if (!(pgid > 1)) return [];
  // Cheap first: no member at all, zombies included.
  try {
    kill(-pgid, 0);
  } catch (error) {
    // ESRCH: no member; a runtime that cannot send signal 0 reads /proc.
    if (!(error instanceof TypeError)) return [];
  }
  let entries: string[];
  try {
    entries = readDirNamesSync("/proc");
  } catch {
    return [pgid]; // no /proc (macOS): the group has members, that is all we know
  }
  const live: number[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readTextSync(`/proc/${name}/stat`);
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") {
      live.push(Number(name));
    }
  }
  return live;
}
