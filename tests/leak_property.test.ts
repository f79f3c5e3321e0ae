// The leak property (issue 10): random tokens and secrets, embedded in
// random platform answers (bodies, cut-off bodies, Locations, any status)
// and in configuration mistakes; no piece of 6 characters or more of a token
// or secret ever appears in any output: log lines as the command writes them
// (text and JSON), status snapshots, event details, configuration errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import fc from "fast-check";
import { startHeartbeat } from "../mod.ts";
import { ConfigError } from "../src/shared/errors.ts";
import { parseWorkspacesJson } from "../src/cli/workspaces.ts";
import { formatLine } from "../src/cli/logging.ts";
import { captureLogs } from "./helpers/logs.ts";
import { waitFor } from "./helpers/wait.ts";

const ALPHABET = [
  ..."ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789_+/=.~-",
];

/** A credential-like value: 12 to 48 characters, at least 8 different ones. */
const credential = fc.array(fc.constantFrom(...ALPHABET), {
  minLength: 12,
  maxLength: 48,
}).map((chars) => chars.join("")).filter((v) => new Set(v).size >= 8);

function pieces(value: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 6 <= value.length; i++) out.push(value.slice(i, i + 6));
  return out;
}

function leaks(outputs: string[], values: string[]): string | undefined {
  for (const value of values) {
    for (const piece of pieces(value)) {
      const hit = outputs.find((o) => o.includes(piece));
      if (hit !== undefined) return `${piece} in: ${hit}`;
    }
  }
  return undefined;
}

/** Filler text that holds no piece of the values by itself. */
const filler = fc.string({ maxLength: 300 });

interface Answer {
  status: number;
  body: string;
  location?: string;
}

test("leak property: hostile platform answers never put a token or secret into logs, status or events", async () => {
  let answer: Answer = { status: 500, body: "" };
  let secret = "";
  // A secret can only be masked once received: the hostile answers start
  // once the client has registered (beats do not wait on register).
  let hostile = false;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url === "/registry/register" || !hostile) {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(JSON.stringify({
          status: "registered",
          platform_inbound_secret: secret,
        }));
      }
      if (req.url?.startsWith("/workspaces/")) {
        res.writeHead(500);
        return res.end(answer.body);
      }
      const headers: Record<string, string> = {};
      if (answer.location !== undefined) headers.location = answer.location;
      res.writeHead(answer.status, headers);
      res.end(answer.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  try {
    await fc.assert(
      fc.asyncProperty(
        credential,
        credential,
        fc.constantFrom(400, 401, 403, 404, 409, 429, 500, 502, 503, 301, 307),
        filler,
        filler,
        fc.constantFrom("whole", "cut", "location", "twice"),
        fc.nat(40),
        async (token, inbound, status, before, after, how, cut) => {
          fc.pre(!leaks([before, after], [token, inbound]));
          secret = inbound;
          hostile = false;
          const body = how === "cut"
            ? before + token.slice(0, Math.max(6, token.length - cut % 6))
            : how === "twice"
            ? before + token + after + inbound + token
            : before + inbound + after + token;
          answer = {
            status,
            body,
            location: how === "location" || status < 400
              ? `https://elsewhere.example/${before.length}?t=${token}&s=${inbound}`
              : undefined,
          };
          const outputs: string[] = [];
          await captureLogs(async (records) => {
            const hb = startHeartbeat({
              platformUrl: `http://127.0.0.1:${port}`,
              workspaces: [{ id: "ws-leak", token }],
              intervalMs: 60,
            });
            for (
              const type of [
                "failure",
                "register-failed",
                "auth-escalation",
                "secret-failed",
                "state",
              ]
            ) {
              hb.addEventListener(type, (e) => {
                outputs.push(JSON.stringify((e as CustomEvent).detail));
              });
            }
            await waitFor(() => hb.status().workspaces[0].registered);
            hostile = true;
            // (A 403 that is not the platform's JSON is the CORS layer: it
            // is tried again in minutes, and said once.)
            await waitFor(
              () =>
                hb.status().workspaces[0].consecutiveFailures >=
                  (status === 403 ? 1 : 2),
              5_000,
              "two failed beats",
            );
            outputs.push(JSON.stringify(hb.status()));
            await hb.stop();
            for (const record of records) {
              outputs.push(formatLine(record, "text"));
              outputs.push(formatLine(record, "json"));
            }
          });
          const leak = leaks(outputs, [token, inbound]);
          assert.equal(leak, undefined, leak);
        },
      ),
      { numRuns: 25 },
    );
  } finally {
    // Deno's node:http waits for idle kept-alive connections to time out
    // (90 s) before close() calls back: close them first.
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test("leak property: configuration mistakes never quote a token", () => {
  fc.assert(
    fc.property(
      fc.array(credential, { minLength: 1, maxLength: 4 }),
      fc.nat(),
      fc.constantFrom(
        "trailing-comma",
        "cut",
        "quote",
        "newline",
        "control",
        "duplicate",
      ),
      (tokens, at, mistake) => {
        const entries = tokens.map((token, i) => ({ id: `ws-${i}`, token }));
        let text = JSON.stringify(entries);
        const i = at % text.length;
        switch (mistake) {
          case "trailing-comma":
            text = text.slice(0, -1) + ",]";
            break;
          case "cut":
            text = text.slice(0, i);
            break;
          case "quote":
            text = text.slice(0, i) + '"' + text.slice(i);
            break;
          case "newline":
            text = text.replace(
              tokens[0],
              tokens[0].slice(0, 6) + "\\n" + tokens[0].slice(6),
            );
            break;
          case "control":
            text = text.replace(tokens[0], tokens[0] + "\\u0001");
            break;
          case "duplicate":
            text = JSON.stringify([...entries, entries[0]]);
            break;
        }
        try {
          parseWorkspacesJson(text, "MOLECULE_WORKSPACES");
        } catch (error) {
          assert.ok(error instanceof ConfigError, String(error));
          const leak = leaks([error.message], tokens);
          assert.equal(leak, undefined, leak);
        }
      },
    ),
    { numRuns: 500 },
  );
});
