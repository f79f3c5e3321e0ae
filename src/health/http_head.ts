/**
 * HTTP/1.1 request heads for the Deno health server: where a head ends,
 * found by scanning each byte once as it arrives, and what it says, decoded
 * once it is whole.
 *
 * @module
 */

/** Most bytes of a request head (request line, headers, blank line). */
export const MAX_HEAD_BYTES = 8 * 1024;

const LF = 10;
const CR = 13;

/**
 * Where the head in `bytes[0, length)` ends (the index after its blank
 * line), or -1 while it is incomplete. Only bytes from `from` on are
 * scanned: pass the previous `length` to go on where the last call stopped,
 * so a head that arrives a byte at a time is still scanned once. A bare LF
 * ends a line as CRLF does (RFC 9112 §2.2).
 *
 * @example
 * ```ts
 * import { findHeadEnd } from "./http_head.ts";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\n\r\nGET");
 * console.log(findHeadEnd(bytes, 0, bytes.length)); // 18
 * ```
 *
 * @param bytes The buffer.
 * @param from Where to start scanning.
 * @param length How many bytes of the buffer are filled.
 * @returns The end of the head, or -1.
 */
export function findHeadEnd(
  bytes: Uint8Array,
  from: number,
  length: number,
): number {
  for (let i = Math.max(1, from); i < length; i++) {
    if (bytes[i] !== LF) continue;
    if (bytes[i - 1] === LF) return i + 1;
    if (bytes[i - 1] === CR && i >= 2 && bytes[i - 2] === LF) return i + 1;
  }
  return -1;
}

/** A parsed request head. */
export interface RequestHead {
  /** The method, such as `GET`. */
  method: string;
  /** The request target, such as `/readyz?verbose`. */
  target: string;
  /** The minor HTTP version: 1 for HTTP/1.1, 0 for HTTP/1.0. */
  minor: number;
  /** Header names (lower case) to values; repeated names joined with `, `. */
  headers: Map<string, string>;
}

/** A head that cannot be answered: the status to answer with. */
export interface BadHead {
  /** 400, or 505 for a version other than HTTP/1.x. */
  error: 400 | 505;
}

const decoder = new TextDecoder();
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\/\S*) HTTP\/(\d)\.(\d)$/;
const HEADER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;

/**
 * Parses a whole head (what {@link findHeadEnd} delimited), decoding it
 * once. Empty lines before the request line are skipped (RFC 9112 §2.2);
 * a folded header line, a header without a colon, a target that is not a
 * path, or a `Content-Length` that is not a number is 400.
 *
 * @example
 * ```ts
 * import { parseHead } from "./http_head.ts";
 * const head = parseHead(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
 * console.log("error" in head ? head.error : head.target); // "/healthz"
 * ```
 *
 * @param bytes The head, blank line included.
 * @returns The head, or the error status.
 */
export function parseHead(bytes: Uint8Array): RequestHead | BadHead {
  const lines = decoder.decode(bytes).split(/\r?\n/);
  let i = 0;
  while (i < lines.length && lines[i] === "") i++;
  const start = REQUEST_LINE.exec(lines[i++] ?? "");
  if (!start) return { error: 400 };
  if (start[3] !== "1") return { error: 505 };
  const headers = new Map<string, string>();
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (line === "") break;
    const header = HEADER.exec(line);
    if (!header) return { error: 400 };
    const name = header[1].toLowerCase();
    const before = headers.get(name);
    headers.set(
      name,
      before === undefined ? header[2] : `${before}, ${header[2]}`,
    );
  }
  // Request bodies are not read; a length that is not one is 400.
  const length = headers.get("content-length");
  if (length !== undefined && !/^\d+$/.test(length)) return { error: 400 };
  return {
    method: start[1],
    target: start[2],
    minor: Number(start[4]),
    headers,
  };
}
