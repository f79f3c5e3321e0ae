import { test } from "node:test";
import assert from "node:assert/strict";
import { startHeartbeat } from "../mod.ts";
import { startPlatformEmulator } from "../src/testing/emulator.ts";
import { waitFor } from "./helpers/wait.ts";

test("metrics(): counts agree with status(): beats by outcome and reason, registers, durations, workspaces by state", async () => {
  await using platform = await startPlatformEmulator({
    uuidIds: false,
    workspaces: {
      "ws-ok": "tok-ok-0123456789",
      "ws-bad": "tok-bad-0123456789",
    },
  });
  const hb = startHeartbeat({
    platformUrl: platform.url,
    workspaces: [
      { id: "ws-ok", token: "tok-ok-0123456789" },
      { id: "ws-bad", token: "tok-bad-0123456789" },
    ],
    intervalMs: 100,
    timeoutMs: 5_000,
    // No scheduled /state: one refused just after the revoke, while beats
    // were still accepted, would send a register (refused, counted).
    statePollEvery: 0,
  });
  try {
    await hb.ready;
    // Refused from now on: its beats count as refused, reason auth.
    platform.revoke("ws-bad");
    // The escalation needs refusals over a few seconds (a 401 can be a blip).
    await waitFor(
      () =>
        hb.status().workspaces.every((w) => w.beatsSent >= 5) &&
        hb.metrics().authEscalations >= 1,
      10_000,
      "five beats each, and an escalation",
    );
    const status = hb.status();
    const m = hb.metrics();
    const sent = status.workspaces.reduce((n, w) => n + w.beatsSent, 0);
    const accepted = status.workspaces.reduce((n, w) => n + w.beatsAccepted, 0);
    assert.ok(Math.abs(m.beats.accepted - accepted) <= 2);
    assert.ok(
      Math.abs(m.beats.accepted + m.beats.refused + m.beats.failed - sent) <= 2,
    );
    assert.ok(m.beats.refused >= 3);
    assert.equal(m.beatFailures.auth, m.beats.refused);
    assert.equal(m.beatFailures.http_5xx, 0);
    assert.equal(m.registers.accepted, 2);
    assert.equal(m.registers.refused, 0);
    assert.equal(
      m.beatDuration.counts.length,
      m.beatDuration.bounds.length + 1,
    );
    assert.equal(
      m.beatDuration.counts.reduce((a, b) => a + b, 0),
      m.beatDuration.count,
    );
    assert.ok(m.beatDuration.count >= 10 && m.beatDuration.sum > 0);
    assert.ok(m.authEscalations >= 1);
    assert.deepEqual(m.workspaces, {
      beating: 2,
      registering: 0,
      paused: 0,
      deleted: 0,
      rejected: 0,
    });
    // ws-bad has not been accepted since the revocation.
    assert.ok(m.oldestAcceptedBeatAgeSeconds > 0.1);
    assert.ok(m.retryBudgetTokens >= 0);
    assert.equal(m.unarmed, 0);
    assert.equal(m.stopped, false);
  } finally {
    await hb.stop();
  }
  assert.equal(hb.metrics().stopped, true);
});
