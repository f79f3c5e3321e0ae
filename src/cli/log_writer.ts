/**
 * Log lines to stderr that never stop the work: a bounded queue written
 * asynchronously. When the reader stalls, lines are dropped and counted; when
 * it goes away (EPIPE), logging ends, the process does not.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * A log writer over a stream (our stderr, through the process adapter, whose
 * writes never block the event loop). Lines are written in batches of at
 * most 64 KiB, one write at a time. When lines had to be dropped, a line
 * saying how many follows as soon as the reader catches up.
 *
 * @param stream Where the lines go.
 * @param options Lines held at most while the reader is slow (default
 *   1000), and bytes (UTF-16 code units) held at most (default 1 MiB).
 */
export function createLogWriter(
  stream: WritableStream<Uint8Array>,
  options: { maxLines?: number; maxChars?: number } = {},
) {
  const maxLines = options.maxLines ?? 1000;
  const maxChars = options.maxChars ?? 1024 * 1024;
  const writer = stream.getWriter();
  let queue: string[] = [];
  let chars = 0;
  let dropped = 0;
  let unreported = 0;
  let closed = false;
  let pumping: Promise<void> | undefined;

  const pump = async () => {
    while (queue.length > 0 && !closed) {
      let batch = "";
      let n = 0;
      while (n < queue.length && batch.length < 64 * 1024) batch += queue[n++];
      queue = queue.slice(n);
      chars -= batch.length;
      try {
        await writer.write(encoder.encode(batch));
      } catch {
        closed = true; // the reader is gone: logging ends here
        dropped += n + queue.length;
        queue = [];
        chars = 0;
        return;
      }
      if (unreported > 0 && queue.length < maxLines) {
        const line =
          `${unreported} log line(s) were dropped: stderr was not being read fast enough\n`;
        unreported = 0;
        queue.push(line);
        chars += line.length;
      }
    }
  };

  // Runs the pump unless it runs; a line queued while it was finishing
  // starts it again.
  const kick = (): void => {
    pumping ??= pump().finally(() => {
      pumping = undefined;
      if (queue.length > 0 && !closed) kick();
    });
  };

  return {
    /** Queues one line (a newline is added); never blocks, never throws. */
    write(line: string) {
      if (closed) {
        dropped++;
        return;
      }
      const text = line.endsWith("\n") ? line : `${line}\n`;
      if (queue.length >= maxLines || chars + text.length > maxChars) {
        dropped++;
        unreported++;
        return;
      }
      queue.push(text);
      chars += text.length;
      kick();
    },
    /** Waits until the queue is written, or `timeoutMs` has passed. */
    async flush(timeoutMs: number) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      while (pumping && !closed) {
        const done = await Promise.race([pumping.then(() => true), deadline]);
        if (done !== true) break;
      }
      clearTimeout(timer);
    },
    /** Lines dropped so far because the queue was full or the reader gone. */
    get dropped() {
      return dropped;
    },
    /** Whether the reader went away (a write failed); nothing is written since. */
    get closed() {
      return closed;
    },
  };
}
