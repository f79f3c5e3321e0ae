import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { buildAgentCard } from "../src/platform/mod.ts";
import { ConfigError } from "../src/shared/errors.ts";
import { envFromRecord } from "../src/shared/env.ts";
import { callEndpoint } from "../src/platform/http.ts";
import { parseFlags, read } from "../src/cli/flags.ts";
import { platformUrlIfSet } from "../src/cli/settings.ts";
import { parseWorkspacesJson } from "../src/cli/workspaces.ts";
import { startHeartbeat } from "../mod.ts";
import { createServer } from "node:http";
import { waitFor } from "./helpers/wait.ts";

const RUNS = { numRuns: 300 };

/** Either a value or a ConfigError; anything else escaping fails the property. */
function configOutcome<T>(fn: () => T): T | ConfigError {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ConfigError) {
      assert.ok(
        error.message.length > 0 && !error.message.includes("\n    at "),
      );
      return error;
    }
    throw error;
  }
}

const jsonish = fc.oneof(
  fc.string(),
  fc.json(),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.array(
    fc.record({
      id: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
      token: fc.oneof(fc.string(), fc.boolean()),
    }, { requiredKeys: [] }),
  )
    .map((v) => JSON.stringify(v)),
);

test("any MOLECULE_WORKSPACES string is a valid list or one clear configuration error", () => {
  fc.assert(
    fc.property(jsonish, (text) => {
      const out = configOutcome(() =>
        parseWorkspacesJson(text, "MOLECULE_WORKSPACES")
      );
      if (out instanceof ConfigError) {
        assert.match(out.message, /^MOLECULE_WORKSPACES /);
      } else {
        assert.ok(out.length > 0);
        assert.equal(new Set(out.map((w) => w.id)).size, out.length);
        for (const w of out) assert.ok(w.id.trim() && w.token.trim());
      }
    }),
    RUNS,
  );
});

test("any interval string is unset, a number of ms from 50 to 3,600,000, or one clear configuration error", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.string(), fc.double().map(String), fc.integer().map(String)),
      (raw) => {
        const out = configOutcome(() =>
          read(
            parseFlags([]),
            envFromRecord({ MOLECULE_HEARTBEAT_INTERVAL: raw }),
            "interval",
          )
        );
        if (out === undefined) assert.equal(raw.trim(), "");
        else if (!(out instanceof ConfigError)) {
          assert.ok(out >= 50 && out <= 3_600_000, `${raw} -> ${out}`);
        } else {
          assert.match(out.message, /^MOLECULE_HEARTBEAT_INTERVAL must be /);
        }
      },
    ),
    RUNS,
  );
});

test("any platform URL string is unset, an http(s) base URL, or one clear configuration error", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.webUrl(),
        fc.webUrl().map((u) => u.replace("https", "ftp")),
      ),
      (raw) => {
        const out = configOutcome(() =>
          platformUrlIfSet(
            parseFlags([]),
            envFromRecord({ PLATFORM_URL: raw }),
            [],
          )
        );
        if (out === undefined) assert.equal(raw.trim(), "");
        else if (!(out instanceof ConfigError)) {
          assert.match(out, /^https?:\/\//);
          assert.ok(!out.endsWith("/"));
        } else assert.match(out.message, /PLATFORM_URL/);
      },
    ),
    RUNS,
  );
});

test("any agent-card variables yield a card of the reference's shape", () => {
  fc.assert(
    fc.property(
      fc.string(),
      fc.option(fc.string()),
      fc.option(fc.string()),
      fc.option(fc.string()),
      (id, name, description, skills) => {
        const card = buildAgentCard(
          id,
          envFromRecord({
            MOLECULE_AGENT_NAME: name ?? undefined,
            MOLECULE_AGENT_DESCRIPTION: description ?? undefined,
            MOLECULE_AGENT_SKILLS: skills ?? undefined,
          }),
        );
        assert.equal(typeof card.name, "string");
        assert.ok(card.name.length > 0);
        assert.ok(Array.isArray(card.skills));
        for (const s of card.skills) {
          assert.ok(
            s.name.length > 0 && s.name === s.name.trim() &&
              !s.name.includes(","),
          );
        }
        if ("description" in card) {
          assert.ok(
            (card.description as string).length > 0,
          );
        }
      },
    ),
    RUNS,
  );
});

test("any bytes as a platform answer leave the heartbeat loop running", async () => {
  let next: { status: number; body: Uint8Array } = {
    status: 200,
    body: new Uint8Array(),
  };
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      // Register is always accepted (a 401 there would drop the workspace, by design);
      // every heartbeat answer is fuzzed.
      if (req.url === "/registry/register") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end('{"status":"registered"}');
      }
      res.writeHead(next.status, { "content-type": "application/json" });
      res.end(next.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  const url = `http://127.0.0.1:${port}`;
  const hb = startHeartbeat({
    platformUrl: url,
    workspaces: [{ id: "ws", token: "fuzz-token-1" }],
    intervalMs: 20,
  });
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 503),
        fc.oneof(
          fc.uint8Array({ maxLength: 2048 }),
          fc.jsonValue().map((v) =>
            new TextEncoder().encode(JSON.stringify(v))
          ),
        ),
        async (status, body) => {
          next = { status: status === 204 ? 200 : status, body };
          const got = await callEndpoint(
            { platformUrl: url, token: "t", timeoutMs: 2000 },
            "POST",
            "/registry/heartbeat",
            {},
          );
          if (!got.answer) throw new Error(got.reason);
          assert.equal(got.answer.status, next.status);
        },
      ),
      { numRuns: 150 },
    );
    const before = hb.status().workspaces[0].beatsSent;
    next = { status: 200, body: new TextEncoder().encode('{"status":"ok"}') };
    await waitFor(
      () => hb.status().workspaces[0].beatsSent > before + 2,
      5000,
      "the loop to keep beating",
    );
  } finally {
    await hb.stop();
    // Deno's node:http waits for idle kept-alive connections to time out
    // (90 s) before close() calls back: close them first.
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
