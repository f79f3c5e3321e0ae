// The scheduler's property (issue 20): over random sequences of workspaces
// added and removed, platform answers (accepted, refused, 5xx, hang), cap
// sizes, late timers and sleeps, every workspace that is served and not
// refused is accepted at least once within two intervals of the platform
// answering again; nothing served is ever left with no beat armed; no
// workspace has two beats (or two registers, or two questions) in flight;
// and stop() always resolves.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { startHeartbeat } from "../mod.ts";
import { FakeClock } from "./helpers/fake_clock.ts";
import { captureLogs } from "./helpers/logs.ts";

const INTERVAL = 1_000;
const TIMEOUT = 300;

type Mode = "ok" | "refused" | "5xx" | "hang";

type Op =
  | { op: "add" }
  | { op: "remove"; i: number }
  | { op: "mode"; i: number; mode: Mode }
  | { op: "advance"; ms: number }
  | { op: "late"; ms: number }
  | { op: "sleep"; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.constant({ op: "add" as const }),
  fc.record({ op: fc.constant("remove" as const), i: fc.nat(20) }),
  fc.record({
    op: fc.constant("mode" as const),
    i: fc.nat(20),
    mode: fc.constantFrom<Mode>("ok", "refused", "5xx", "hang"),
  }),
  fc.record({ op: fc.constant("advance" as const), ms: fc.nat(4_000) }),
  fc.record({ op: fc.constant("late" as const), ms: fc.nat(10_000) }),
  fc.record({ op: fc.constant("sleep" as const), ms: fc.nat(600_000) }),
);

function kindOf(path: string): "beat" | "register" | "question" {
  if (path === "/registry/heartbeat") return "beat";
  if (path === "/registry/register") return "register";
  return "question";
}

async function scenario(
  cap: number,
  initial: number,
  ops: Op[],
): Promise<void> {
  const clock = new FakeClock();
  let slept = 0;
  const modes = new Map<string, Mode>();
  const inFlight = new Map<string, number>();
  const accepted = new Map<string, number[]>();
  let overlap: string | undefined;
  const fetch = (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    const body = init?.body ? JSON.parse(String(init.body)) : {};
    const id = String(
      body.workspace_id ?? body.id ?? url.pathname.split("/")[2],
    );
    const kind = kindOf(url.pathname);
    const key = `${id} ${kind}`;
    const n = (inFlight.get(key) ?? 0) + 1;
    inFlight.set(key, n);
    if (n > 1) overlap ??= `${key}: ${n} in flight`;
    const done = () => inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
    const mode = modes.get(id) ?? "ok";
    return new Promise<Response>((resolve, reject) => {
      const signal = init?.signal;
      const timer: { answer?: unknown } = {};
      const onAbort = () => {
        if (timer.answer !== undefined) clock.clearTimeout(timer.answer);
        done();
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      if (mode === "hang") return;
      timer.answer = clock.setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        done();
        if (signal?.aborted) return reject(signal.reason);
        const lookup = kind === "question" && !url.pathname.endsWith("/state");
        const status = mode === "5xx"
          ? 503
          : mode === "refused" && !lookup
          ? 401
          : 200;
        if (status === 200 && kind === "beat") {
          accepted.set(id, [...(accepted.get(id) ?? []), clock.now()]);
        }
        resolve(Response.json(
          status === 200
            ? kind === "question"
              ? {
                id,
                workspace_id: id,
                status: "online",
                paused: false,
                deleted: false,
              }
              : { status: "ok" }
            : { error: "no" },
          { status },
        ));
      }, 5);
    });
  };
  let next = 0;
  const newId = () => `ws-${next++}`;
  const hb = startHeartbeat({
    platformUrl: "http://platform.test",
    workspaces: Array.from({ length: initial }, () => ({
      id: newId(),
      token: `tok-${next}-000000`,
    })),
    intervalMs: INTERVAL,
    timeoutMs: TIMEOUT,
    maxInFlight: cap,
    staleWindowMs: 3_000,
    statePollEvery: 3,
    clock,
    wallClock: () => 1_700_000_000_000 + clock.now() + slept,
    fetch,
  });
  const served = () => hb.status().workspaces.map((w) => w.workspaceId);
  const check = (when: string) => {
    assert.equal(overlap, undefined, overlap);
    assert.equal(hb.metrics().unarmed, 0, `unarmed after ${when}`);
  };
  await captureLogs(async () => {
    for (const op of ops) {
      const ids = served();
      if (op.op === "add") {
        const id = newId();
        hb.addWorkspace({ id, token: `tok-${id}-000000` });
      } else if (op.op === "remove" && ids.length > 0) {
        hb.removeWorkspace(ids[op.i % ids.length]);
      } else if (op.op === "mode" && ids.length > 0) {
        modes.set(ids[op.i % ids.length], op.mode);
      } else if (op.op === "advance") {
        await clock.advanceFast(op.ms);
      } else if (op.op === "late") {
        clock.jump(op.ms); // a timer resumed late: the monotonic clock jumped
        await clock.advanceFast(0);
      } else if (op.op === "sleep") {
        slept += op.ms; // suspended: only the wall clock moved
        await clock.advanceFast(0);
      }
      check(JSON.stringify(op));
    }
    // The platform answers again, for everyone.
    modes.clear();
    const healedAt = clock.now();
    await clock.advanceFast(2 * INTERVAL + TIMEOUT + 100);
    check("healing");
    for (const w of hb.status().workspaces) {
      if (w.rejected || w.deleted) continue;
      const times = accepted.get(w.workspaceId) ?? [];
      assert.ok(
        times.some((t) => t >= healedAt),
        `${w.workspaceId} (${w.state}) not accepted within two intervals of healing`,
      );
    }
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stopped = await Promise.race([
    hb.stop().then(() => true),
    new Promise<boolean>((r) => timer = setTimeout(() => r(false), 3_000)),
  ]);
  clearTimeout(timer);
  assert.ok(stopped, "stop() resolved");
  assert.equal(clock.timers.length, 0, "no timer left");
}

test("property: random fleets, answers, caps, late timers and sleeps: every served workspace is accepted within two intervals of healing, nothing is unarmed, no request of a kind twice in flight, stop() resolves", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 1, max: 6 }),
      fc.array(opArb, { minLength: 1, maxLength: 25 }),
      scenario,
    ),
    { numRuns: 40 },
  );
});
