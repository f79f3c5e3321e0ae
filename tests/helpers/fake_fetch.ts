import type { FetchLike } from "../../src/platform/mod.ts";

/** One request the fake fetch saw. */
export interface SeenRequest {
  url: string;
  path: string;
  headers: Headers;
  body: Record<string, unknown>;
  at: number;
}

/** What to answer: a status and a JSON body, headers, or a thrown error. */
export type FakeAnswer =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | { error: Error };

/**
 * A fetch that records requests and answers from a function, at once.
 * For unit tests of the schedule only; integration tests use the emulator.
 */
export function fakeFetch(
  answer: (req: SeenRequest) => FakeAnswer,
  now: () => number = () => 0,
): FetchLike & { seen: SeenRequest[] } {
  const seen: SeenRequest[] = [];
  const fn = (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input);
    const req: SeenRequest = {
      url,
      path: new URL(url).pathname,
      headers: new Headers(init?.headers),
      body: init?.body === undefined || init.body === null
        ? {}
        : JSON.parse(String(init.body)),
      at: now(),
    };
    seen.push(req);
    const a = answer(req);
    if ("error" in a) return Promise.reject(a.error);
    return Promise.resolve(
      new Response(a.body === undefined ? null : JSON.stringify(a.body), {
        status: a.status,
        headers: a.headers,
      }),
    );
  };
  return Object.assign(fn, { seen });
}
