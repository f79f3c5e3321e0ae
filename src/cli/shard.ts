/**
 * Sharding: `--shard N --total-shards M` (`MOLECULE_SHARD`,
 * `MOLECULE_TOTAL_SHARDS`) makes this process serve only the workspaces of
 * the list whose id hashes to shard N of M, by jump consistent hash
 * (Lamping and Veach, 2014) over the id's FNV-1a 64-bit hash. Every
 * process of the M computes the same split from the same list, with no
 * coordination; going from M to M + 1 shards moves about 1/(M + 1) of the
 * workspaces, each to the new shard. Also how a watched workspaces file's
 * changes reach the running heartbeat, sharded or not.
 *
 * @module
 */
import type { EnvReader } from "../shared/env.ts";
import { ConfigError } from "../shared/errors.ts";
import type { HeartbeatHandle } from "../schedule/start_heartbeat.ts";
import type { WorkspaceConfig } from "../schedule/types.ts";
import { type CliFlags, lookup, read } from "./flags.ts";
import { onSignal } from "./host.ts";
import { type WorkspacesFileChanges, workspacesSource } from "./workspaces.ts";
import { log } from "./logging.ts";

/** How often a watched workspaces file is looked at, in ms. */
export const FILE_POLL_MS = 1_000;

/** Which shard of a workspaces list this process serves. */
export interface Shard {
  /** This process's shard, from 0 to `total - 1` (`--shard`). */
  index: number;
  /** How many processes share the list (`--total-shards`). */
  total: number;
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const JUMP_MULTIPLIER = 2862933555777941757n;
const encoder = new TextEncoder();

/**
 * The 64-bit FNV-1a hash of a text's UTF-8 bytes: the same number on every
 * runtime (BigInt arithmetic modulo 2^64).
 *
 * @example
 * ```ts
 * import { fnv1a64 } from "./shard.ts";
 * console.log(fnv1a64("a").toString(16)); // "af63dc4c8601ec8c"
 * ```
 *
 * @param text The text, such as a workspace id.
 * @returns The hash, from 0 to 2^64 - 1.
 */
export function fnv1a64(text: string): bigint {
  let hash = FNV_OFFSET;
  for (const byte of encoder.encode(text)) {
    hash = BigInt.asUintN(64, (hash ^ BigInt(byte)) * FNV_PRIME);
  }
  return hash;
}

/**
 * Jump consistent hash (Lamping and Veach, "A Fast, Minimal Memory,
 * Consistent Hash Algorithm", 2014): the bucket of a 64-bit key among
 * `buckets`. From `buckets` to `buckets + 1`, a key moves only to the new
 * bucket, and about 1/(buckets + 1) of the keys do.
 *
 * @example
 * ```ts
 * import { jumpHash } from "./shard.ts";
 * console.log(jumpHash(256n, 1024)); // 520
 * ```
 *
 * @param key The key, taken modulo 2^64.
 * @param buckets How many buckets, at least 1.
 * @returns The bucket, from 0 to `buckets - 1`.
 * @throws {RangeError} When `buckets` is not a whole number from 1 to 2^31.
 */
export function jumpHash(key: bigint, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1 || buckets > 2 ** 31) {
    throw new RangeError(
      `buckets must be a whole number from 1 to 2^31, not ${buckets}`,
    );
  }
  let k = BigInt.asUintN(64, key);
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    k = BigInt.asUintN(64, k * JUMP_MULTIPLIER + 1n);
    // As the paper's C++: (b + 1) * (2^31 / ((k >> 33) + 1)) in doubles.
    j = Math.floor((b + 1) * (2 ** 31 / (Number(k >> 33n) + 1)));
  }
  return b;
}

/**
 * The shard that serves a workspace: its id's FNV-1a 64-bit hash, jumped
 * among `total` shards.
 *
 * @example
 * ```ts
 * import { shardOf } from "./shard.ts";
 * const shard = shardOf("5f0c9a7e-1d2b-4c3a-9e8f-0a1b2c3d4e5f", 3);
 * console.log(shard >= 0 && shard < 3); // true
 * ```
 *
 * @param id The workspace id.
 * @param total How many shards share the list.
 * @returns The shard, from 0 to `total - 1`.
 */
export function shardOf(id: string, total: number): number {
  return jumpHash(fnv1a64(id), total);
}

/**
 * The workspaces of a list that a shard serves, in the list's order; the
 * whole list without a shard.
 *
 * @example
 * ```ts
 * import { shareOf } from "./shard.ts";
 * const list = [{ id: "a" }, { id: "b" }, { id: "c" }, { id: "d" }];
 * const shares = [0, 1].map((index) => shareOf(list, { index, total: 2 }));
 * console.log(shares[0].length + shares[1].length); // 4: each in exactly one
 * ```
 *
 * @param workspaces The whole list.
 * @param shard This process's shard, if the list is sharded.
 * @returns Its share.
 */
export function shareOf<T extends { id: string }>(
  workspaces: T[],
  shard: Shard | undefined,
): T[] {
  if (shard === undefined || shard.total === 1) return workspaces;
  return workspaces.filter((w) => shardOf(w.id, shard.total) === shard.index);
}

/**
 * `--shard N` and `--total-shards M` (`MOLECULE_SHARD`,
 * `MOLECULE_TOTAL_SHARDS`; a flag beats its variable): both or neither.
 * Sharding splits a workspaces list (`--workspaces-file`,
 * `MOLECULE_WORKSPACES_FILE`, `MOLECULE_WORKSPACES`); a single workspace,
 * `--demo` and wrapper mode have no list to split.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * import { shardSetting } from "./shard.ts";
 * const env = (name: string) =>
 *   ({ MOLECULE_WORKSPACES: "[]", MOLECULE_TOTAL_SHARDS: "3" } as
 *     Record<string, string>)[name];
 * console.log(shardSetting(parseFlags(["--shard", "1"]), env)); // { index: 1, total: 3 }
 * ```
 *
 * @param flags The parsed flags.
 * @param env The environment.
 * @param wrapping Whether a command follows `--` (wrapper mode). @default {false}
 * @returns The shard, or `undefined` when the list is not sharded.
 * @throws {ConfigError} When only one of the two is set, either is not a
 * whole number in its range, or there is no list to split.
 */
export function shardSetting(
  flags: CliFlags,
  env: EnvReader,
  wrapping = false,
): Shard | undefined {
  const n = lookup(flags, env, "shard");
  const m = lookup(flags, env, "totalShards");
  if (n === undefined && m === undefined) return undefined;
  if (m === undefined) {
    throw new ConfigError(
      `${
        n!.where
      } is set but --total-shards (MOLECULE_TOTAL_SHARDS) is not: set both, the number of processes that share the workspaces list and this one's number among them, from 0`,
      "--total-shards",
    );
  }
  if (n === undefined) {
    throw new ConfigError(
      `${m.where} is set but --shard (MOLECULE_SHARD) is not: set both, this process's number from 0 and the number of processes that share the workspaces list`,
      "--shard",
    );
  }
  const total = read(flags, env, "totalShards")!;
  const index = /^\d+$/.test(n.raw) ? Number(n.raw) : NaN;
  if (!(index < total)) {
    throw new ConfigError(
      `${n.where} must be a whole number from 0 to ${
        total - 1
      } (${m.where} is ${total}), not "${n.raw}"`,
      n.where,
    );
  }
  const refuse = (why: string) =>
    new ConfigError(
      `${n.where} and ${m.where} split a workspaces list (--workspaces-file, MOLECULE_WORKSPACES_FILE or MOLECULE_WORKSPACES) among processes: ${why}`,
      n.where,
    );
  if (wrapping) {
    throw refuse(
      "a command after -- runs one server beside its workspaces; leave sharding out of wrapper mode",
    );
  }
  if (flags.demo) throw refuse("--demo serves one workspace");
  const source = workspacesSource(flags, env);
  if (source.kind === "id") {
    throw refuse(`${source.where} names one workspace, which is not split`);
  }
  return { index, total };
}

/**
 * A shard that owns none of the list: served with nothing (ready, its
 * health port up) until a change of the watched workspaces file gives it a
 * share, or a signal ends the run. With `once`, at once: nothing to send.
 *
 * @example
 * ```ts
 * import { waitForShare } from "./shard.ts";
 * const share = await waitForShare({}, { index: 0, total: 2 }, {
 *   listed: 1,
 *   signal: AbortSignal.abort(),
 * });
 * console.log(share); // undefined: ended before a share came
 * ```
 *
 * @param changes The watched workspaces file's hooks (as
 *   `workspacesSetting` fills them); the wait takes the listener over
 *   until it ends, and looks at the file every second.
 * @param shard This process's shard.
 * @param options How many the list holds (for the log line), `--once`, and
 *   a signal that ends the wait as SIGINT or SIGTERM do.
 * @returns The share once one comes; `undefined` when the run ends first.
 */
export function waitForShare(
  changes: WorkspacesFileChanges,
  shard: Shard,
  options: { listed: number; once?: boolean; signal?: AbortSignal },
): Promise<WorkspaceConfig[] | undefined> {
  const fields = {
    shard: shard.index,
    totalShards: shard.total,
    listed: options.listed,
  };
  if (options.once) {
    log.info(
      "--once: shard {shard} of {totalShards} owns none of the list's {listed} workspace(s): nothing to send",
      fields,
    );
    return Promise.resolve(undefined);
  }
  log.info(
    changes.watched
      ? "shard {shard} of {totalShards} owns none of the list's {listed} workspace(s): serving none until the workspaces file changes"
      : "shard {shard} of {totalShards} owns none of the list's {listed} workspace(s): serving none",
    fields,
  );
  return new Promise((resolve) => {
    // Looks at the file (nothing else does: no token is read from it),
    // and holds the event loop (there may be no health port).
    const keepAlive = setInterval(
      () => void changes.poll?.().catch(() => {}),
      FILE_POLL_MS,
    );
    const finish = (share: WorkspaceConfig[] | undefined) => {
      clearInterval(keepAlive);
      offInt();
      offTerm();
      options.signal?.removeEventListener("abort", onAbort);
      changes.listener = undefined;
      resolve(share);
    };
    const stopOn = (name: string) => () => {
      log.info("{signal}: stopping", { signal: name });
      finish(undefined);
    };
    const offInt = onSignal("SIGINT", stopOn("SIGINT"));
    const offTerm = onSignal("SIGTERM", stopOn("SIGTERM"));
    const onAbort = () => finish(undefined);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) return onAbort();
    changes.listener = (next) => {
      const share = shareOf(next, shard);
      if (share.length > 0) finish(share);
    };
  });
}

/**
 * The listener of a watched workspaces file: serves the entries of every
 * new version (this shard's share of them, when sharded) and only those:
 * entries added are served, entries removed or now another shard's stop.
 * An entry whose `platform_url` changed, or whose token was refused and is
 * changed, is served anew (its register with the new one). It looks at the
 * file every second until the heartbeat stops.
 *
 * @example
 * ```ts
 * import { startHeartbeat } from "../schedule/start_heartbeat.ts";
 * import { followShare } from "./shard.ts";
 * const hb = startHeartbeat({
 *   platformUrl: "http://127.0.0.1:9",
 *   workspaces: [{ id: "ws-1", token: "tok-0123456789" }],
 *   signal: AbortSignal.abort(),
 * });
 * const listener = followShare(hb, { index: 0, total: 1 }, {});
 * listener([{ id: "ws-1", token: "tok-0123456789" }], {
 *   token: new Set(),
 *   url: new Set(),
 * });
 * await hb.stopped;
 * ```
 *
 * @param hb The running heartbeat.
 * @param shard This process's shard, if the list is sharded.
 * @param changes The file's hooks (`poll` looks at the file).
 * @returns The listener, for `changes.listener`.
 */
export function followShare(
  hb: HeartbeatHandle,
  shard: Shard | undefined,
  changes: WorkspacesFileChanges,
): NonNullable<WorkspacesFileChanges["listener"]> {
  // The file is looked at every second while the heartbeat runs: a token
  // lookup reads it too, but a workspace on a token the platform issued
  // never looks its token up, and an empty share has no workspace at all
  // (this timer then holds the event loop: there may be no health port).
  const poll = changes.poll;
  const poller = poll &&
    setInterval(() => void poll().catch(() => {}), FILE_POLL_MS);
  void hb.stopped.then(() => clearInterval(poller));
  let empty = false;
  return (next, changed) => {
    const share = shareOf(next, shard);
    const status = hb.status().workspaces;
    const served = new Set(status.map((w) => w.workspaceId));
    const listed = new Set(share.map((w) => w.id));
    // Served anew: a new platform_url, or a new token for a refused one.
    const renewed = status.filter((w) =>
      listed.has(w.workspaceId) &&
      (changed.url.has(w.workspaceId) ||
        (w.rejectedFor === "token" && changed.token.has(w.workspaceId)))
    ).map((w) => w.workspaceId);
    for (const id of renewed) served.delete(id);
    const added = share.filter((w) => !served.has(w.id));
    const removed = [...served].filter((id) => !listed.has(id));
    for (const id of renewed) hb.removeWorkspace(id);
    for (const ws of added) hb.addWorkspace(ws);
    for (const id of removed) hb.removeWorkspace(id);
    if (renewed.length > 0) {
      log.warn(
        "workspaces file: serving {count} anew, with a changed token or platform_url: {ids}",
        { count: renewed.length, ids: summarizeIds(renewed) },
      );
    }
    if (added.length > 0) {
      log.warn("workspaces file: now serving {count} more: {ids}", {
        count: added.length,
        ids: summarizeIds(added.map((w) => w.id)),
      });
    }
    if (removed.length > 0) {
      log.warn("workspaces file: no longer serving {count}: {ids}", {
        count: removed.length,
        ids: summarizeIds(removed),
      });
    }
    // A list is never empty: only a shard's share can be.
    if (share.length > 0 || !shard) {
      empty = false;
      return;
    }
    if (empty) return;
    empty = true;
    log.info(
      "shard {shard} of {totalShards} owns none of the workspaces file's {listed} workspace(s) now: serving none until it changes",
      { shard: shard.index, totalShards: shard.total, listed: next.length },
    );
  };
}

/** A few ids, and how many more: a log line a fleet can afford. */
export function summarizeIds(ids: string[]): string {
  const shown = ids.slice(0, 5).join(", ");
  return ids.length > 5 ? `${shown} and ${ids.length - 5} more` : shown;
}
