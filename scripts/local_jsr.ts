/**
 * A JSR-protocol registry on loopback, for the release check.
 *
 * It speaks the part of JSR's protocol that a real `deno publish` and Deno's
 * module loader use, so that `JSR_URL=http://127.0.0.1:PORT/ deno publish`
 * and `deno run -A jsr:@scope/name` work against it without the internet:
 *
 * - `GET  /api/scopes/:scope/packages/:name`: the package exists (any
 *   package does: there is no account to create it in);
 * - `GET  /api/scopes/:scope/packages/:name/versions/:version`: 200 once
 *   published, 404 before (Deno asks this first, to skip a published version);
 * - `POST /api/scopes/:scope/packages/:name/versions/:version?config=…`: the
 *   gzipped tarball `deno publish` uploads (bearer token required when
 *   `token` is set). It is unpacked at once and its task answered
 *   `success`, or `failure` with the reason;
 * - `GET  /api/publish_status/:task`: that task;
 * - `GET  /@scope/name/meta.json`: the versions and the latest one;
 * - `GET  /@scope/name/<version>_meta.json`: every file's size and `sha256`
 *   checksum (Deno verifies each file it loads against it) and the exports;
 * - `GET  /@scope/name/<version>/<path>`: the files as uploaded.
 *
 * What was published lives under `dir` as `@scope/name/<version>/…` next to
 * the two metadata files, so another tool (the npm layer of the release
 * check) can read it back. Not served: the web pages, the npm compatibility
 * registry (`npm.jsr.io`), provenance, the module graph hints of `meta`
 * files (Deno builds the graph itself when they are absent).
 *
 * Run it alone with `deno run -A scripts/local_jsr.ts --dir DIR [--port N]
 * [--token T]`; it prints its URL and serves until interrupted.
 *
 * @module
 */

import { concatBytes } from "../src/shared/_bytes.ts";

/** Options for {@linkcode startLocalJsr}. */
export interface LocalJsrOptions {
  /** Directory that holds what was published (created if missing). */
  dir: string;
  /** Bearer token publishing requires. Default: any token is accepted. */
  token?: string;
  /** Port on 127.0.0.1. Default: 0 (a free port). */
  port?: number;
  /** Called with one line per request, for a log. Default: silent. */
  onRequest?: (line: string) => void;
}

/** A running registry. */
export interface LocalJsr {
  /** Its base URL, ending in `/`: the value for `JSR_URL`. */
  url: string;
  /** `@scope/name@version` of every version published since it started. */
  published: string[];
  /** Stops serving. */
  close(): Promise<void>;
}

/** A version's metadata, as `<version>_meta.json` serves it. */
export interface VersionMeta {
  /** Every file: its size in bytes and `sha256-<hex>` checksum. */
  manifest: Record<string, { size: number; checksum: string }>;
  /** The package's exports, `"."`-keyed, from its config file. */
  exports: Record<string, string>;
}

interface Task {
  id: string;
  status: "success" | "failure";
  error: { code: string; message: string } | null;
}

const SCOPE = "[a-z0-9][a-z0-9-]*";
const NAME = "[a-z0-9][a-z0-9-]*";
const VERSION = "\\d+\\.\\d+\\.\\d+(?:-[0-9A-Za-z.-]+)?(?:\\+[0-9A-Za-z.-]+)?";
const API_PACKAGE = new RegExp(`^/api/scopes/(${SCOPE})/packages/(${NAME})$`);
const API_VERSION = new RegExp(
  `^/api/scopes/(${SCOPE})/packages/(${NAME})/versions/(${VERSION})$`,
);
const API_TASK = /^\/api\/publish_status\/([0-9a-f-]+)$/;
const PACKAGE_META = new RegExp(`^/@(${SCOPE})/(${NAME})/meta\\.json$`);
const VERSION_META = new RegExp(
  `^/@(${SCOPE})/(${NAME})/(${VERSION})_meta\\.json$`,
);
const FILE = new RegExp(`^/@(${SCOPE})/(${NAME})/(${VERSION})(/.+)$`);
/** Largest upload accepted: JSR's own limit is 20 MiB per package. */
const MAX_UPLOAD = 20 * 1024 * 1024;

/**
 * Starts the registry on 127.0.0.1.
 *
 * @example
 * ```ts ignore
 * const jsr = await startLocalJsr({ dir: await Deno.makeTempDir() });
 * // JSR_URL=jsr.url deno publish --token any; deno run -A jsr:@scope/name
 * await jsr.close();
 * ```
 */
export async function startLocalJsr(
  options: LocalJsrOptions,
): Promise<LocalJsr> {
  const { dir, token, onRequest } = options;
  await Deno.mkdir(dir, { recursive: true });
  const tasks = new Map<string, Task>();
  const published: string[] = [];

  const handler = async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    onRequest?.(`${req.method} ${path}`);
    const authorized = token === undefined ||
      req.headers.get("authorization") === `Bearer ${token}`;
    let m: RegExpMatchArray | null;
    if (req.method === "GET" && (m = path.match(API_PACKAGE))) {
      if (!authorized) return apiError(401, "invalidBearerToken", "bad token");
      return Response.json({ scope: m[1], name: m[2] });
    }
    if ((m = path.match(API_VERSION))) {
      const [, scope, name, version] = m;
      const versionDir = `${dir}/@${scope}/${name}/${version}`;
      if (req.method === "GET") {
        return await exists(versionDir)
          ? Response.json({ scope, package: name, version })
          : apiError(404, "packageVersionNotFound", "not published");
      }
      if (req.method !== "POST") return new Response(null, { status: 405 });
      if (!authorized) return apiError(401, "invalidBearerToken", "bad token");
      if (await exists(versionDir)) {
        return apiError(
          409,
          "duplicateVersionPublish",
          `@${scope}/${name}@${version} is already published`,
        );
      }
      const task: Task = {
        id: crypto.randomUUID(),
        status: "success",
        error: null,
      };
      try {
        const body = await readBounded(req, MAX_UPLOAD);
        const gz = req.headers.get("content-encoding") === "gzip";
        const tar = gz ? await gunzip(body) : body;
        await publishVersion(dir, scope, name, version, untar(tar));
        published.push(`@${scope}/${name}@${version}`);
      } catch (err) {
        task.status = "failure";
        task.error = { code: "invalidTarball", message: String(err) };
      }
      tasks.set(task.id, task);
      return Response.json(task, { status: 202 });
    }
    if (req.method === "GET" && (m = path.match(API_TASK))) {
      const task = tasks.get(m[1]);
      return task
        ? Response.json(task)
        : apiError(404, "publishNotFound", "no such task");
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response(null, { status: 405 });
    }
    if (
      (m = path.match(PACKAGE_META)) || (m = path.match(VERSION_META)) ||
      (m = path.match(FILE))
    ) {
      // The patterns admit no "..": a path cannot leave the package's dir.
      const rel = decodeURIComponent(path.slice(1));
      if (rel.split("/").some((p) => p === ".." || p === "." || p === "")) {
        return new Response("not found", { status: 404 });
      }
      try {
        const bytes = await Deno.readFile(`${dir}/${rel}`);
        return new Response(bytes, {
          headers: { "content-type": contentType(rel) },
        });
      } catch {
        return new Response("not found", { status: 404 });
      }
    }
    return new Response("not found", { status: 404 });
  };

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    onListen: () => {},
  }, handler);
  const addr = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${addr.port}/`,
    published,
    close: () => server.shutdown(),
  };
}

function apiError(status: number, code: string, message: string): Response {
  return Response.json({ code, message }, { status });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function readBounded(req: Request, max: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body ?? []) {
    size += chunk.byteLength;
    if (size > max) throw new Error(`upload larger than ${max} bytes`);
    chunks.push(chunk);
  }
  return concatBytes(chunks, size);
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A file of a tarball: its path inside the package, from "/". */
export interface TarFile {
  /** Path from the package root, starting with "/". */
  path: string;
  /** The file's bytes. */
  bytes: Uint8Array;
}

/**
 * Reads the regular files of a POSIX (ustar) tarball, with GNU long names
 * and pax `path` records, which is what `deno publish` writes. Rejects a
 * path that is absolute or climbs out with "..".
 */
export function untar(tar: Uint8Array): TarFile[] {
  const files: TarFile[] = [];
  const text = new TextDecoder();
  const field = (h: Uint8Array, at: number, len: number) =>
    text.decode(h.subarray(at, at + len)).replace(/\0.*$/s, "");
  let at = 0;
  let longName: string | undefined;
  while (at + 512 <= tar.length) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const size = parseInt(field(header, 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(header[156] || 48);
    const body = tar.subarray(at + 512, at + 512 + size);
    if (body.length !== size) throw new Error("truncated tarball");
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === "L") {
      longName = text.decode(body).replace(/\0.*$/s, "");
      continue;
    }
    if (type === "x") {
      const path = text.decode(body).match(/^\d+ path=(.*)$/m);
      if (path) longName = path[1];
      continue;
    }
    const prefix = field(header, 345, 155);
    let name = longName ?? (prefix ? `${prefix}/` : "") + field(header, 0, 100);
    longName = undefined;
    if (type !== "0") continue; // directories, links: not part of a package
    name = "/" + name.replace(/^\.?\/+/, "");
    if (name.split("/").slice(1).some((p) => p === ".." || p === "")) {
      throw new Error(`unsafe path in tarball: ${JSON.stringify(name)}`);
    }
    files.push({ path: name, bytes: body.slice() });
  }
  return files;
}

async function publishVersion(
  dir: string,
  scope: string,
  name: string,
  version: string,
  files: TarFile[],
): Promise<void> {
  const config = files.find((f) =>
    f.path === "/deno.json" || f.path === "/jsr.json"
  );
  if (!config) throw new Error("no deno.json or jsr.json in the tarball");
  const parsed = JSON.parse(new TextDecoder().decode(config.bytes));
  if (parsed.name !== `@${scope}/${name}` || parsed.version !== version) {
    throw new Error(
      `config says ${parsed.name}@${parsed.version}, URL says @${scope}/${name}@${version}`,
    );
  }
  const exports = typeof parsed.exports === "string"
    ? { ".": parsed.exports }
    : parsed.exports;
  const manifest: VersionMeta["manifest"] = {};
  const packageDir = `${dir}/@${scope}/${name}`;
  const staging = `${packageDir}/.${version}.partial`;
  for (const f of files) {
    const target = staging + f.path;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), {
      recursive: true,
    });
    await Deno.writeFile(target, f.bytes);
    const digest = await crypto.subtle.digest(
      "SHA-256",
      f.bytes as BufferSource,
    );
    manifest[f.path] = {
      size: f.bytes.byteLength,
      checksum: "sha256-" + [...new Uint8Array(digest)]
        .map((b) => b.toString(16).padStart(2, "0")).join(""),
    };
  }
  const meta: VersionMeta = { manifest, exports };
  await Deno.writeTextFile(
    `${packageDir}/${version}_meta.json`,
    JSON.stringify(meta, null, 2),
  );
  await Deno.rename(staging, `${packageDir}/${version}`);
  const versions: Record<string, Record<string, never>> = {};
  for await (const e of Deno.readDir(packageDir)) {
    const v = e.name.match(new RegExp(`^(${VERSION})_meta\\.json$`));
    if (v) versions[v[1]] = {};
  }
  const latest = Object.keys(versions).filter((v) => !v.includes("-"))
    .sort(compareVersions).at(-1);
  await Deno.writeTextFile(
    `${packageDir}/meta.json`,
    JSON.stringify({ scope, name, latest, versions }, null, 2),
  );
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/).slice(0, 3).map(Number);
  const pb = b.split(/[.+-]/).slice(0, 3).map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}

function contentType(path: string): string {
  if (path.endsWith(".json")) return "application/json";
  if (/\.[mc]?ts$/.test(path)) return "application/typescript";
  if (/\.[mc]?js$/.test(path)) return "application/javascript";
  if (path.endsWith(".md")) return "text/markdown";
  return "application/octet-stream";
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      port: { type: "string", default: "0" },
      token: { type: "string" },
    },
  });
  if (!values.dir) {
    console.error("usage: local_jsr.ts --dir DIR [--port N] [--token T]");
    Deno.exit(2);
  }
  const jsr = await startLocalJsr({
    dir: values.dir,
    port: Number(values.port),
    token: values.token,
    onRequest: (line) => console.error(line),
  });
  console.log(jsr.url);
}
