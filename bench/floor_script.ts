// The floor for bench/beside_mcp.ts: what any wrapper of an MCP server that
// heartbeats must do, with the runtime's own APIs and none of this project's
// code. It starts `sleep 600` with piped stdio in a process group of its
// own and relays our stdin to it and its output to ours, handles SIGINT and
// SIGTERM, writes one 0600 file in CONFIGS_DIR, and asks the platform
// (GET PLATFORM_URL/workspaces/WORKSPACE_ID) at once and then every 20 s.
// With `--logtape` it also loads and configures LogTape, as the library and
// the command do. Run as the wrapper is: `deno run -A`, or `node x.ts`.

interface DenoFloor {
  env: { get(name: string): string | undefined };
  args: string[];
  Command: new (cmd: string, options: Record<string, unknown>) => {
    spawn(): {
      pid: number;
      stdin: WritableStream<Uint8Array>;
      stdout: ReadableStream<Uint8Array>;
      stderr: ReadableStream<Uint8Array>;
    };
  };
  stdin: { readable: ReadableStream<Uint8Array> };
  stdout: { writable: WritableStream<Uint8Array> };
  stderr: { writable: WritableStream<Uint8Array> };
  kill(pid: number, signal: string): void;
  exit(code: number): never;
  addSignalListener(signal: string, handler: () => void): void;
  writeTextFile(path: string, text: string, o: { mode: number }): Promise<void>;
}

const deno = (globalThis as { Deno?: DenoFloor }).Deno;
const nodeProcess = (globalThis as unknown as {
  process: {
    env: Record<string, string | undefined>;
    argv: string[];
    exit(code: number): never;
    kill(pid: number, signal: string): void;
    on(event: string, handler: () => void): void;
    stdin: { pipe(to: unknown): void };
    stdout: unknown;
    stderr: unknown;
  };
}).process;
const env = (name: string) => deno ? deno.env.get(name) : nodeProcess.env[name];
const args = deno ? deno.args : nodeProcess.argv.slice(2);

if (args.includes("--logtape")) {
  const { configure, getLogger } = await import("@logtape/logtape");
  await configure({
    sinks: { stderr: () => {} },
    loggers: [{
      category: ["floor"],
      lowestLevel: "warning",
      sinks: ["stderr"],
    }],
  });
  getLogger(["floor"]).info("started");
}

const url = `${env("PLATFORM_URL")}/workspaces/${env("WORKSPACE_ID")}`;
const ask = () =>
  fetch(url, {
    headers: { authorization: `Bearer ${env("MOLECULE_WORKSPACE_TOKEN")}` },
  }).then((r) => r.text(), () => "");
const file = `${env("CONFIGS_DIR")}/.floor`;

if (deno) {
  const child = new deno.Command("sleep", {
    args: ["600"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  void deno.stdin.readable.pipeTo(child.stdin).catch(() => {});
  void child.stdout.pipeTo(deno.stdout.writable).catch(() => {});
  void child.stderr.pipeTo(deno.stderr.writable).catch(() => {});
  for (const signal of ["SIGINT", "SIGTERM"]) {
    deno.addSignalListener(signal, () => {
      deno.kill(-child.pid, "SIGTERM");
      deno.exit(0);
    });
  }
  await deno.writeTextFile(file, "floor", { mode: 0o600 });
} else {
  const { spawn } = await import("node:child_process");
  const { writeFile } = await import("node:fs/promises");
  const child = spawn("sleep", ["600"], {
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  nodeProcess.stdin.pipe(child.stdin);
  child.stdout.pipe(nodeProcess.stdout as NodeJS.WritableStream);
  child.stderr.pipe(nodeProcess.stderr as NodeJS.WritableStream);
  for (const signal of ["SIGINT", "SIGTERM"]) {
    nodeProcess.on(signal, () => {
      nodeProcess.kill(-child.pid!, "SIGTERM");
      nodeProcess.exit(0);
    });
  }
  await writeFile(file, "floor", { mode: 0o600 });
}
await ask();
setInterval(ask, 20_000);
