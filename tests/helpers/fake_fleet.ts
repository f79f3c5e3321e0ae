import { type HeartbeatOptions, startHeartbeat } from "../../mod.ts";
import { FakeClock } from "./fake_clock.ts";
import { type FakeAnswer, fakeFetch, type SeenRequest } from "./fake_fetch.ts";

/** The base URL the fake platform answers at. */
export const FAKE_URL = "http://platform.test";

/** An accepted heartbeat. */
export const ok = (): FakeAnswer => ({ status: 200, body: { status: "ok" } });

/**
 * One workspace heartbeating every 20 s against a fake platform on a fake
 * clock (jitter fixed at the middle): the scheduler's tests' start.
 */
export function fakeFleet(
  answer: (req: SeenRequest) => FakeAnswer,
  extra: Partial<HeartbeatOptions> = {},
  token = "tok-1",
) {
  const clock = new FakeClock();
  const fetch = fakeFetch(answer, clock.now);
  const hb = startHeartbeat({
    platformUrl: FAKE_URL,
    workspaces: [{ id: "ws-1", token }],
    intervalMs: 20_000,
    clock,
    fetch,
    random: () => 0.5,
    ...extra,
  });
  const beats = () =>
    fetch.seen.filter((r) => r.path === "/registry/heartbeat");
  return { clock, fetch, hb, beats };
}
