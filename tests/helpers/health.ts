import { Buffer } from "node:buffer";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { type Running, startScript } from "./runtime.ts";
import { waitFor } from "./wait.ts";

/** The command as `deno run jsr:@molecule/heartbeat` runs it. */
export const MOD = fileURLToPath(new URL("../../mod.ts", import.meta.url));

const HEALTH_LINE = /health: (http:\/\/\S+?)\/healthz/;

/** Starts the command with a health port and waits for its URL. */
export async function startWithHealth(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<{ run: Running; base: string }> {
  const run = startScript(MOD, {
    args: ["--health-port", "0", "--verbose", ...args],
    env,
    timeoutMs,
  });
  await waitFor(
    () => HEALTH_LINE.test(run.stderr()),
    15_000,
    "the health URL in the log",
  );
  return { run, base: HEALTH_LINE.exec(run.stderr())![1] };
}

/** Status and parsed JSON body of a GET. */
export async function getJson(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const answer = await fetch(url, {
    ...init,
    signal: AbortSignal.timeout(5_000),
  });
  return { status: answer.status, body: await answer.json() };
}

/**
 * Sends raw bytes on a new connection and collects everything the server
 * sends until it closes the connection, or `timeoutMs` passes.
 */
export function rawExchange(
  port: number,
  bytes: string | Uint8Array,
  timeoutMs = 5_000,
): Promise<{ text: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const start = performance.now();
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({
        text: Buffer.concat(chunks).toString("latin1"),
        closed,
        ms: performance.now() - start,
      });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", () => finish(true));
    socket.on("close", () => finish(true));
    socket.on("connect", () => socket.write(bytes));
  });
}

/** The status codes of every answer in a raw HTTP/1.1 byte stream, in order. */
export function statusCodes(text: string): number[] {
  return [...text.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]));
}
