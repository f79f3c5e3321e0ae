/**
 * The health server's listener on Node: `node:net`, its connections handed
 * to the same HTTP/1.1 server as on Deno. `maxConnections` is a backstop at
 * twice the cap, because Node counts a socket the cap closed until its
 * `close` event, a turn of the loop later, while its descriptor is freed at
 * once.
 *
 * @module
 */
import { createServer, type Socket } from "node:net";
import type { Conn, HttpServer, Listener } from "./http_server.ts";

/**
 * Listens with `node:net`.
 *
 * @example
 * ```ts
 * import { createHttpServer } from "./http_server.ts";
 * import { listenNode } from "./server_node.ts";
 * const body = new TextEncoder().encode("hi\n");
 * const http = createHttpServer(
 *   () => Promise.resolve({ status: 200, headers: {}, parts: [body] }),
 * );
 * const listener = await listenNode(http, { host: "127.0.0.1", port: 0 });
 * const answer = await fetch(`http://127.0.0.1:${listener.port}/`);
 * console.log(await answer.text()); // "hi\n"
 * const stopped = listener.close();
 * await http.close();
 * await stopped;
 * ```
 *
 * @param http Where its connections go.
 * @param at Where to listen.
 * @returns The listener.
 * @throws {Error} When the port cannot be bound.
 */
export async function listenNode(
  http: HttpServer,
  at: { port: number; host: string },
): Promise<Listener> {
  const server = createServer({ noDelay: true }, (socket) => {
    void http.take(socketConn(socket));
  });
  server.maxConnections = http.maxConnections * 2;
  server.on("drop", () => http.count("over_cap"));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : at.port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A socket as a {@link Conn}: read as it comes, written as it drains. */
function socketConn(socket: Socket): Conn {
  socket.on("error", () => {}); // a read or a write fails with it
  const chunks = socket[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  let rest: Uint8Array = new Uint8Array(0);
  return {
    async read(p) {
      if (rest.length === 0) {
        const next = await chunks.next();
        if (next.done) return null;
        rest = next.value;
      }
      const n = Math.min(p.length, rest.length);
      p.set(rest.subarray(0, n));
      rest = rest.subarray(n);
      return n;
    },
    write: (p) =>
      new Promise((resolve, reject) =>
        socket.write(p, (error) => error ? reject(error) : resolve(p.length))
      ),
    close: () => socket.destroy(),
  };
}
